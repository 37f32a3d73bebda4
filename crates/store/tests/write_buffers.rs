//! `EmbeddedStore::apply` marks the allocations of a batch's values and memtable
//! entries as write buffers (`guildhall_store::heap`), and nothing else. Checked
//! with a global allocator that counts the bytes allocated under the mark.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use guildhall_domain::entity::Message;
use guildhall_model::id::Id;
use guildhall_store::heap::in_write_buffers;
use guildhall_store::{EmbeddedStore, EmbeddedStoreConfig, Mutation, Store};

struct Counting;

static MARKED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if in_write_buffers() {
            MARKED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[tokio::test]
async fn a_batch_is_allocated_as_write_buffers_and_the_mark_ends_with_apply() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), EmbeddedStoreConfig::default()).unwrap();
    let text = "z".repeat(1000);
    let batch: Vec<Mutation> = (1..=100u64)
        .map(|i| Mutation::PutMessage(Message::plain(Id::new(i << 22), Id::new(9), None, Id::new(7), text.clone())))
        .collect();

    let before = MARKED.load(Ordering::Relaxed);
    let durable = store.apply(batch);
    let during = MARKED.load(Ordering::Relaxed) - before;
    assert!(!in_write_buffers(), "the mark ends when apply returns");
    durable.await.unwrap();
    // 100 values of > 1,000 bytes each, copied into the memtable, at least.
    assert!(during >= 100_000, "only {during} bytes were allocated as write buffers");

    let before = MARKED.load(Ordering::Relaxed);
    let page = store.messages(Id::new(9), guildhall_store::HistoryQuery::Latest, 100).unwrap();
    assert_eq!(page.len(), 100);
    let unrelated = vec![0u8; 1 << 20];
    drop(unrelated);
    assert_eq!(MARKED.load(Ordering::Relaxed), before, "reads and other allocations are not write buffers");
}
