//! The `guildhall` binary's global allocator: mimalloc, with a heap of its own for
//! the store's write buffers.
//!
//! mimalloc instead of glibc malloc: see "Known trade-offs" in ARCHITECTURE.md.
//! Allocations made while [`guildhall_store::heap::in_write_buffers`] (the store
//! encoding and committing a batch: the values and skip-list nodes of its
//! memtables) come from a separate first-class heap (mimalloc v3 heaps allocate
//! from any thread), so they never share a page with connection or session
//! objects and a flushed memtable's pages are freed whole and returned to the OS.
//! Frees need no routing: mimalloc finds a block's heap from its address.
//!
//! The allocator also counts the bytes live in that heap ([`write_buffer_bytes`]):
//! what the store's write buffers really take, where the engine's own figure is an
//! estimate that leaves out its skip-list nodes. The count costs each free one
//! page-map lookup (`mi_heap_of`), and only once the heap exists.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use guildhall_store::heap::in_write_buffers;
use libmimalloc_sys as mi;

pub struct Allocator;

unsafe extern "C" {
    /// mimalloc v3: the heap a block belongs to (not in the -sys bindings).
    fn mi_heap_of(p: *const c_void) -> *mut mi::mi_heap_t;
}

static WRITE_BUFFERS: AtomicPtr<mi::mi_heap_t> = AtomicPtr::new(std::ptr::null_mut());

/// Usable bytes of the blocks live in the write buffers' heap.
static WRITE_BUFFER_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes of the blocks allocated for the store's write buffers and not yet freed
/// (usable sizes, so allocation rounding included). For
/// [`guildhall_store::heap::set_meter`].
pub fn write_buffer_bytes() -> u64 {
    WRITE_BUFFER_BYTES.load(Ordering::Relaxed) as u64
}

/// A live block's usable size if it belongs to the write buffers' heap, else 0.
#[inline]
fn write_buffer_size(p: *mut u8) -> usize {
    let heap = WRITE_BUFFERS.load(Ordering::Relaxed);
    // SAFETY: `p` is a live mimalloc block; both calls only read its page's metadata.
    if heap.is_null() || p.is_null() || unsafe { mi_heap_of(p.cast()) } != heap {
        0
    } else {
        unsafe { mi::mi_usable_size(p.cast()) }
    }
}

/// Counts a block just allocated from the write buffers' heap.
#[inline]
fn counted(p: *mut u8) -> *mut u8 {
    if !p.is_null() {
        // SAFETY: `p` is a live mimalloc block.
        WRITE_BUFFER_BYTES.fetch_add(unsafe { mi::mi_usable_size(p.cast()) }, Ordering::Relaxed);
    }
    p
}

/// Uncounts a block about to be freed or moved, if it is a write buffer.
#[inline]
fn uncount(p: *mut u8) {
    let n = write_buffer_size(p);
    if n != 0 {
        WRITE_BUFFER_BYTES.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The write buffers' heap, made on first use.
fn write_buffers() -> *mut mi::mi_heap_t {
    let heap = WRITE_BUFFERS.load(Ordering::Acquire);
    if !heap.is_null() {
        return heap;
    }
    // SAFETY: mimalloc's own allocation; it does not call back into this allocator.
    let new = unsafe { mi::mi_heap_new() };
    if new.is_null() {
        return new;
    }
    match WRITE_BUFFERS.compare_exchange(std::ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => new,
        Err(won) => {
            // SAFETY: `new` is ours and nothing was allocated from it.
            unsafe { mi::mi_heap_delete(new) };
            won
        }
    }
}

/// The heap for an allocation made now, if not the thread's default.
#[inline]
fn routed() -> Option<*mut mi::mi_heap_t> {
    if in_write_buffers() {
        let heap = write_buffers();
        (!heap.is_null()).then_some(heap)
    } else {
        None
    }
}

// SAFETY: every path is a mimalloc allocation function with the layout's size and
// alignment; `mi_free` and `mi_realloc_aligned` accept blocks of any heap.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            match routed() {
                Some(heap) => counted(mi::mi_heap_malloc_aligned(heap, layout.size(), layout.align()).cast()),
                None => mi::mi_malloc_aligned(layout.size(), layout.align()).cast(),
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            match routed() {
                Some(heap) => counted(mi::mi_heap_zalloc_aligned(heap, layout.size(), layout.align()).cast()),
                None => mi::mi_zalloc_aligned(layout.size(), layout.align()).cast(),
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        uncount(ptr);
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Uncounted before and recounted after: the block may grow in place, move
        // into the heap or out of it. On failure the old block stays, counted again.
        let old = write_buffer_size(ptr);
        let new: *mut u8 = unsafe {
            match routed() {
                Some(heap) => mi::mi_heap_realloc_aligned(heap, ptr.cast(), new_size, layout.align()).cast(),
                None => mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast(),
            }
        };
        let now = if new.is_null() { old } else { write_buffer_size(new) };
        if now >= old {
            WRITE_BUFFER_BYTES.fetch_add(now - old, Ordering::Relaxed);
        } else {
            WRITE_BUFFER_BYTES.fetch_sub(old - now, Ordering::Relaxed);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildhall_store::heap::WriteBuffers;

    /// Whether `p` is a block of the write buffers' heap.
    fn in_heap(p: *mut u8) -> bool {
        unsafe { mi_heap_of(p.cast::<c_void>()) == write_buffers() }
    }

    #[test]
    fn allocations_under_the_stores_mark_come_from_their_own_heap_and_no_others_do() {
        let a = Allocator;
        let layout = Layout::from_size_align(480, 8).unwrap();
        let outside = unsafe { a.alloc(layout) };
        assert!(!outside.is_null());
        assert!(!in_heap(outside), "an ordinary allocation is not a write buffer");
        let base = write_buffer_bytes();
        let (inside, zeroed) = {
            let _mark = WriteBuffers::enter();
            unsafe { (a.alloc(layout), a.alloc_zeroed(layout)) }
        };
        assert!(in_heap(inside), "an allocation under the store's mark comes from its heap");
        assert!(in_heap(zeroed));
        assert!(unsafe { std::slice::from_raw_parts(zeroed, 480) }.iter().all(|&b| b == 0));
        let usable = |p: *mut u8| unsafe { mi::mi_usable_size(p.cast()) } as u64;
        assert!(usable(inside) >= 480);
        assert_eq!(write_buffer_bytes() - base, usable(inside) + usable(zeroed), "both blocks are counted");
        let grown = unsafe { a.realloc(inside, layout, 64 << 10) };
        assert!(!in_heap(grown), "a realloc outside the mark moves to the default heap");
        assert_eq!(write_buffer_bytes() - base, usable(zeroed), "the block that moved out is no longer counted");
        let other_thread = std::thread::spawn(move || {
            let _mark = WriteBuffers::enter();
            unsafe { Allocator.alloc(layout) as usize }
        });
        let from_other = other_thread.join().unwrap() as *mut u8;
        assert!(in_heap(from_other), "any thread allocates from the one write-buffer heap");
        assert_eq!(write_buffer_bytes() - base, usable(zeroed) + usable(from_other));
        let regrown = {
            let _mark = WriteBuffers::enter();
            unsafe { a.realloc(zeroed, layout, 4 << 10) }
        };
        assert!(in_heap(regrown));
        assert_eq!(
            write_buffer_bytes() - base,
            usable(regrown) + usable(from_other),
            "a realloc in the heap is recounted"
        );
        unsafe {
            a.dealloc(outside, layout);
            a.dealloc(regrown, Layout::from_size_align(4 << 10, 8).unwrap());
            assert_eq!(write_buffer_bytes() - base, usable(from_other), "a freed write buffer is uncounted");
            a.dealloc(from_other, layout);
            a.dealloc(grown, Layout::from_size_align(64 << 10, 8).unwrap());
        }
        assert_eq!(write_buffer_bytes(), base, "frees outside the heap leave the count alone");
    }
}
