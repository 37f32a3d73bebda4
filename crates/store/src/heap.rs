//! Which allocations are the store's write buffers.
//!
//! A memtable lives until its flush, minutes, then goes all at once. Allocated on
//! the callers' threads, its entries share allocator pages with whatever those
//! threads allocate meanwhile (connections, sessions), and after the flush those
//! pages stay resident, partly used, for as long as their other tenants live. So
//! [`EmbeddedStore::apply`](crate::EmbeddedStore) marks the thread while it encodes
//! and commits a batch, and a global allocator that keeps a separate heap for the
//! marked allocations (the `guildhall` binary's) gives a flushed memtable's pages
//! back whole, like RocksDB's memtable arena. Without such an allocator the mark
//! does nothing.
//!
//! Such an allocator can also count what it holds under the mark and register
//! the count with [`set_meter`]; [`StoreStats::write_buffer_heap_bytes`]
//! reports it.
//!
//! [`StoreStats::write_buffer_heap_bytes`]: crate::StoreStats::write_buffer_heap_bytes

use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    // `const` with no destructor: reading it never allocates and works at any
    // point of a thread's life, as a global allocator needs.
    static WRITE_BUFFERS: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is allocating for the store's write buffers. Cheap
/// (a thread-local read) and allocation-free: meant for a global allocator.
#[inline]
pub fn in_write_buffers() -> bool {
    WRITE_BUFFERS.with(Cell::get)
}

/// Marks the thread until dropped (nests).
pub struct WriteBuffers(bool);

impl WriteBuffers {
    pub fn enter() -> WriteBuffers {
        WriteBuffers(WRITE_BUFFERS.with(|c| c.replace(true)))
    }
}

impl Drop for WriteBuffers {
    fn drop(&mut self) {
        WRITE_BUFFERS.with(|c| c.set(self.0));
    }
}

static METER: OnceLock<fn() -> u64> = OnceLock::new();

/// Registers the allocator's count of bytes live under the mark (allocated while
/// marked, not yet freed). The first registration stays.
pub fn set_meter(bytes: fn() -> u64) {
    let _ = METER.set(bytes);
}

/// The registered count, if an allocator keeps the write buffers apart.
pub fn metered() -> Option<u64> {
    METER.get().map(|bytes| bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_nests_and_is_per_thread() {
        assert!(!in_write_buffers());
        {
            let _outer = WriteBuffers::enter();
            assert!(in_write_buffers());
            {
                let _inner = WriteBuffers::enter();
                assert!(in_write_buffers());
            }
            assert!(in_write_buffers(), "leaving the inner scope keeps the outer mark");
            assert!(!std::thread::spawn(in_write_buffers).join().unwrap(), "another thread is not marked");
        }
        assert!(!in_write_buffers());
    }
}
