//! The plugin's memory allocator inside the host (cargo feature `allocator`,
//! on by default): small blocks in power-of-two size classes, each class with
//! its own free list; a class's new blocks come from the standard allocator.
//!
//! Why: every hook call allocates and frees a dozen small blocks before the
//! plugin's own code runs (the host copies each string of the input into the
//! guest through `cabi_realloc`, and frees the output after), and with the
//! standard allocator (dlmalloc) that bookkeeping was about 45 % of a warm
//! commission call's fuel; `talc` and `rlsf` measured slower still. Here an
//! allocation or a free of a small block is a few instructions: pop or push one
//! free list (docs/performance.md has the figures).
//!
//! The cost is memory: a block is rounded up to a power of two (at least 8
//! bytes) and freed blocks are kept for their size class, never returned to
//! the standard allocator. The host bounds an instance's memory and its number
//! of calls, so this is what a plugin instance wants. Blocks above
//! [`MAX_BLOCK`] bytes, or aligned to more than 8, go to the standard
//! allocator unchanged. Blocks are taken one at a time, not in chunks ahead of
//! need: a chunk made every fresh instance grow its memory by a page, which
//! cost more than the allocator saved on a fresh-store call. A plugin that brings its own `#[global_allocator]`
//! turns this off with `default-features = false` on `veneer-sdk`.

// An allocator hands out raw memory: the one module of the SDK that needs
// `unsafe`, each use with its reason.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// log2 of the smallest block: a free block holds the next free block's address.
const MIN_SHIFT: u32 = 3;
/// Size classes: 8, 16, 32, ... [`MAX_BLOCK`] bytes.
const CLASSES: usize = 9;
/// The largest block served from a size class.
pub(crate) const MAX_BLOCK: usize = 1 << (MIN_SHIFT as usize + CLASSES - 1);
/// The alignment of every block: layouts aligned to more go to the standard
/// allocator (on wasm32 only `u128`-like types ask for more than 8).
const ALIGN: usize = 8;

/// A size-class allocator in front of `B` (the standard allocator in a plugin).
/// Not thread-safe: a plugin instance runs on one thread.
pub(crate) struct SizeClassAlloc<B> {
    backing: B,
    state: UnsafeCell<State>,
}

struct State {
    /// The head of each class's free list (null when empty).
    free: [*mut u8; CLASSES],
}

// A wasm32 plugin without the threads proposal has exactly one thread, which
// is what a `#[global_allocator]` static needs to be shared.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
unsafe impl<B: Sync> Sync for SizeClassAlloc<B> {}

/// The size class of `layout`, or `None` when the standard allocator serves it.
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size();
    if size > MAX_BLOCK || layout.align() > ALIGN {
        return None;
    }
    let size = size.max(1 << MIN_SHIFT);
    // ceil(log2(size)) - MIN_SHIFT
    Some((usize::BITS - (size - 1).leading_zeros() - MIN_SHIFT) as usize)
}

/// The block size of class `class`.
const fn block_size(class: usize) -> usize {
    1 << (MIN_SHIFT as usize + class)
}

impl<B> SizeClassAlloc<B> {
    /// An allocator with empty free lists, taking new blocks from `backing`.
    pub(crate) const fn new(backing: B) -> Self {
        Self {
            backing,
            state: UnsafeCell::new(State {
                free: [ptr::null_mut(); CLASSES],
            }),
        }
    }
}

unsafe impl<B: GlobalAlloc> GlobalAlloc for SizeClassAlloc<B> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class(layout) else {
            // SAFETY: forwarded with the caller's guarantees.
            return unsafe { self.backing.alloc(layout) };
        };
        // SAFETY: single-threaded (see the Sync impl); no reference to the
        // state outlives this call.
        let state = unsafe { &mut *self.state.get() };
        let head = state.free[class];
        if head.is_null() {
            // A new block from the backing allocator, at its usual alignment:
            // a fresh instance grows its memory no more than it would without
            // this allocator (no chunk ahead of need).
            // SAFETY: a non-zero size and an alignment that is a power of two.
            return unsafe {
                self.backing
                    .alloc(Layout::from_size_align_unchecked(block_size(class), ALIGN))
            };
        }
        // SAFETY: a free block of this class holds the next one's address.
        state.free[class] = unsafe { head.cast::<*mut u8>().read() };
        head
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class(layout) else {
            // SAFETY: the backing allocator handed this block out for `layout`.
            return unsafe { self.backing.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`.
        let state = unsafe { &mut *self.state.get() };
        // SAFETY: the block is at least 8 bytes, aligned to its size, and no
        // longer in use.
        unsafe { block.cast::<*mut u8>().write(state.free[class]) };
        state.free[class] = block;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees new_size, rounded up to the alignment,
        // does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new_layout)) {
            // Same class: the block already has room.
            (Some(old), Some(new)) if old == new => block,
            // SAFETY: both with the backing allocator, the caller's guarantees.
            (None, None) => unsafe { self.backing.realloc(block, layout, new_size) },
            _ => {
                // SAFETY: as for alloc and dealloc; the blocks do not overlap.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::System;

    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_round_up_to_powers_of_two_from_eight() {
        assert_eq!(class(layout(1, 1)), Some(0));
        assert_eq!(class(layout(8, 8)), Some(0));
        assert_eq!(class(layout(9, 1)), Some(1));
        assert_eq!(class(layout(16, 1)), Some(1));
        assert_eq!(
            class(layout(3, 16)),
            None,
            "over-aligned: the standard allocator"
        );
        assert_eq!(class(layout(MAX_BLOCK, 1)), Some(CLASSES - 1));
        assert_eq!(class(layout(MAX_BLOCK + 1, 1)), None);
        assert_eq!(block_size(CLASSES - 1), MAX_BLOCK);
    }

    #[test]
    fn blocks_are_aligned_distinct_and_reused_after_free() {
        let a = SizeClassAlloc::new(System);
        unsafe {
            let mut blocks = Vec::new();
            for (size, align) in [
                (1, 1),
                (8, 8),
                (24, 8),
                (100, 4),
                (3, 64),
                (2048, 1),
                (5, 1),
            ] {
                let l = layout(size, align);
                let p = a.alloc(l);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "{size}/{align} aligned");
                ptr::write_bytes(p, 0xAB, size);
                blocks.push((p, l));
            }
            // No two live blocks overlap.
            let mut spans: Vec<_> = blocks
                .iter()
                .map(|(p, l)| (*p as usize, *p as usize + l.size()))
                .collect();
            spans.sort();
            assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");
            // A freed block is the next one handed out for its class.
            let (p, l) = blocks[2];
            a.dealloc(p, l);
            assert_eq!(a.alloc(layout(30, 1)), p);
            for (p, l) in blocks.into_iter().skip(3) {
                a.dealloc(p, l);
            }
        }
    }

    #[test]
    fn large_blocks_go_to_the_backing_allocator() {
        let a = SizeClassAlloc::new(System);
        unsafe {
            let l = layout(64 << 10, 8);
            let p = a.alloc(l);
            assert!(!p.is_null());
            ptr::write_bytes(p, 1, l.size());
            a.dealloc(p, l);
            let over_aligned = layout(16, 4 * MAX_BLOCK);
            let q = a.alloc(over_aligned);
            assert_eq!(q as usize % (4 * MAX_BLOCK), 0);
            a.dealloc(q, over_aligned);
        }
    }

    #[test]
    fn realloc_keeps_the_contents_within_and_across_classes() {
        let a = SizeClassAlloc::new(System);
        unsafe {
            let l = layout(10, 1);
            let p = a.alloc(l);
            ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10);
            // 10 -> 16 bytes: the same 16-byte block.
            assert_eq!(a.realloc(p, l, 16), p);
            // 16 -> 100 bytes: moved, contents kept.
            let q = a.realloc(p, layout(16, 1), 100);
            assert_ne!(q, p);
            assert_eq!(std::slice::from_raw_parts(q, 10), b"0123456789");
            // Up into the backing allocator and back down.
            let r = a.realloc(q, layout(100, 1), 10_000);
            assert_eq!(std::slice::from_raw_parts(r, 10), b"0123456789");
            let s = a.realloc(r, layout(10_000, 1), 12);
            assert_eq!(std::slice::from_raw_parts(s, 10), b"0123456789");
            a.dealloc(s, layout(12, 1));
        }
    }

    #[test]
    fn many_live_blocks_keep_their_contents() {
        let a = SizeClassAlloc::new(System);
        unsafe {
            let l = layout(MAX_BLOCK, 1);
            let blocks: Vec<_> = (0..48)
                .map(|i| {
                    let p = a.alloc(l);
                    assert!(!p.is_null());
                    ptr::write_bytes(p, i as u8, MAX_BLOCK);
                    p
                })
                .collect();
            for (i, p) in blocks.iter().enumerate() {
                assert!(
                    std::slice::from_raw_parts(*p, MAX_BLOCK)
                        .iter()
                        .all(|b| *b == i as u8)
                );
            }
            for p in blocks {
                a.dealloc(p, l);
            }
        }
    }
}
