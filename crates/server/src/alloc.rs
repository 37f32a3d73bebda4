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

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::sync::atomic::{AtomicPtr, Ordering};

use guildhall_store::heap::in_write_buffers;
use libmimalloc_sys as mi;

pub struct Allocator;

static WRITE_BUFFERS: AtomicPtr<mi::mi_heap_t> = AtomicPtr::new(std::ptr::null_mut());

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
                Some(heap) => mi::mi_heap_malloc_aligned(heap, layout.size(), layout.align()).cast(),
                None => mi::mi_malloc_aligned(layout.size(), layout.align()).cast(),
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            match routed() {
                Some(heap) => mi::mi_heap_zalloc_aligned(heap, layout.size(), layout.align()).cast(),
                None => mi::mi_zalloc_aligned(layout.size(), layout.align()).cast(),
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            match routed() {
                Some(heap) => mi::mi_heap_realloc_aligned(heap, ptr.cast(), new_size, layout.align()).cast(),
                None => mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildhall_store::heap::WriteBuffers;

    unsafe extern "C" {
        /// mimalloc v3: the heap a block belongs to (not in the -sys bindings).
        fn mi_heap_of(p: *const c_void) -> *mut mi::mi_heap_t;
    }

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
        let (inside, zeroed) = {
            let _mark = WriteBuffers::enter();
            unsafe { (a.alloc(layout), a.alloc_zeroed(layout)) }
        };
        assert!(in_heap(inside), "an allocation under the store's mark comes from its heap");
        assert!(in_heap(zeroed));
        assert!(unsafe { std::slice::from_raw_parts(zeroed, 480) }.iter().all(|&b| b == 0));
        let grown = unsafe { a.realloc(inside, layout, 64 << 10) };
        assert!(!in_heap(grown), "a realloc outside the mark moves to the default heap");
        let other_thread = std::thread::spawn(move || {
            let _mark = WriteBuffers::enter();
            unsafe { Allocator.alloc(layout) as usize }
        });
        let from_other = other_thread.join().unwrap() as *mut u8;
        assert!(in_heap(from_other), "any thread allocates from the one write-buffer heap");
        unsafe {
            a.dealloc(outside, layout);
            a.dealloc(zeroed, layout);
            a.dealloc(from_other, layout);
            a.dealloc(grown, Layout::from_size_align(64 << 10, 8).unwrap());
        }
    }
}
