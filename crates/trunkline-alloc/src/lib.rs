//! The node's allocator: [mimalloc](https://github.com/microsoft/mimalloc), tuned to hand
//! freed memory back to the system within a few milliseconds.
//!
//! Why not glibc's malloc: a lookup allocates and frees many small strings and messages on
//! every worker thread, and under a RouteStream load glibc spent about a third of the node's
//! CPU consolidating and unlinking chunks (issue 15's profile; `docs/performance.md`).
//!
//! Why tuned: with its defaults mimalloc keeps freed memory committed for a while (purging
//! after a delay, and committing whole arenas eagerly), so under the stalled-bodies attack
//! (`trunkline-node/tests/limits.rs`: 200 stalled ~4 MiB request bodies against a 64 MiB
//! budget) the node's resident memory grew 336 MiB against a bound of 156 MiB, where glibc
//! grew 83 MiB. With arenas committed on demand it grows about 72 MiB purging at once and
//! 87 MiB purging after 10 ms, which is the setting: purging at once turned freed pages over
//! so often (madvise, then page faults and zeroing) that, on a 2-core machine running
//! Kamailio, sipp and three nodes at saturation, calls per second fell from 0.61 of the
//! static route list's to 0.55 (glibc: 0.67). Lookups over RouteStream with call records run
//! 35-40k/s at 27-35 µs of node CPU with it against 22.7k/s at 56.7 µs with glibc on the same
//! quiet machine. The options must be set before mimalloc's
//! first arena is made, which is its first allocation; [`Allocator`] sets them then, so no
//! environment variable or start-up order is involved.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_long;
use std::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};
use mimalloc::MiMalloc;

/// mimalloc 3.x's `mi_option_arena_eager_commit` (`mimalloc.h`, `mi_option_e`); the Rust
/// bindings name only the options whose numbers are stable across versions, and
/// `Cargo.lock` pins the version these numbers are read from (libmimalloc-sys 0.1.49,
/// mimalloc 3.3.2). `tests/options.rs` reads them back.
const ARENA_EAGER_COMMIT: mi_option_t = 4;
/// mimalloc 3.x's `mi_option_purge_delay`, in milliseconds (arenas purge after this times
/// `arena_purge_mult`, 10: arenas after 100 ms).
const PURGE_DELAY: mi_option_t = 15;

/// The options [`Allocator`] sets, as mimalloc reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// 0: arenas are committed as they are used, not all at once.
    pub arena_eager_commit: c_long,
    /// Freed pages go back to the system after this many milliseconds.
    pub purge_delay_ms: c_long,
}

/// What [`Allocator`] sets before its first allocation.
pub const TUNED: Options = Options {
    arena_eager_commit: 0,
    purge_delay_ms: 10,
};

/// mimalloc's options as they stand now.
pub fn options() -> Options {
    // SAFETY: `mi_option_get` reads one entry of mimalloc's option table by a valid index
    // (both constants are below `_mi_option_last`); it has no other effect.
    #[allow(unsafe_code)]
    let (arena_eager_commit, purge_delay_ms) = unsafe {
        (
            mi_option_get(ARENA_EAGER_COMMIT),
            mi_option_get(PURGE_DELAY),
        )
    };
    Options {
        arena_eager_commit,
        purge_delay_ms,
    }
}

static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// Sets the options before the first allocation; afterwards one relaxed load per allocation.
#[inline(always)]
fn configure() {
    if !CONFIGURED.load(Ordering::Relaxed) {
        configure_first();
    }
}

#[cold]
#[inline(never)]
fn configure_first() {
    if CONFIGURED
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: `mi_option_set` writes one entry of mimalloc's option table by a valid
        // index. It is not synchronised, so it must not race another thread using mimalloc:
        // this runs at the process's first allocation, before any thread of ours exists, and
        // the compare-exchange lets only one caller in.
        #[allow(unsafe_code)]
        unsafe {
            mi_option_set(ARENA_EAGER_COMMIT, TUNED.arena_eager_commit);
            mi_option_set(PURGE_DELAY, TUNED.purge_delay_ms);
        }
    }
}

/// The global allocator of the `trunkline` binary: `#[global_allocator] static ALLOCATOR:
/// trunkline_alloc::Allocator = trunkline_alloc::Allocator;`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Allocator;

// SAFETY: every method hands its arguments unchanged to mimalloc's `GlobalAlloc`, which
// upholds the trait's contract; `configure` only sets options and allocates nothing.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        configure();
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { MiMalloc.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        configure();
        // SAFETY: as above.
        unsafe { MiMalloc.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above; `ptr` came from this allocator, so mimalloc is configured.
        unsafe { MiMalloc.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        unsafe { MiMalloc.realloc(ptr, layout, new_size) }
    }
}
