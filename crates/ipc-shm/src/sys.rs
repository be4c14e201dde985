//! Futex calls (nix has none), on words in memory shared between processes:
//! the shared (not `_PRIVATE`) operations, keyed by the physical page.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Sleeps while `*word == expected`, at most `timeout`. Returns early on a
/// wake-up, a changed word, a signal or the timeout; the caller re-checks.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 4-byte atomic for the whole call (a
    // reference guarantees it); FUTEX_WAIT only reads it and sleeps; `ts` is a
    // valid timespec on our stack. Errors (EAGAIN, EINTR, ETIMEDOUT) all mean
    // "re-check", which every caller does.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes every waiter sleeping on `word`.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key and touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

// Asymmetric fences, after membarrier(2) and liburcu: the side that runs per
// message (a producer publishing a frame, a consumer freeing room) orders
// its publication before its look at the other side's sleep flag with a
// compiler fence only, and the side about to sleep, which already pays a
// system call, pays a `membarrier` that makes every registered process's
// running threads pass a full barrier. That takes a locked instruction off
// every message. The commands, from <linux/membarrier.h>:
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
const MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED: libc::c_long = 1 << 2;

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier takes two integers (the command and flags 0), reads
    // and writes no memory of ours, and reports failure by its return value.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            cmd,
            0 as libc::c_long,
            0 as libc::c_long,
        )
    }
}

/// Whether this process takes part in asymmetric fences: registered, once,
/// to receive the `membarrier` of a side about to sleep. When it is not (an
/// old kernel, a seccomp filter), the per-message side keeps a full fence.
pub(crate) fn light_fences() -> bool {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *REGISTERED.get_or_init(|| {
        let supported = membarrier(MEMBARRIER_CMD_QUERY);
        supported > 0
            && supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED != 0
            && membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0
    })
}

/// The heavy half of an asymmetric fence: a full barrier here and in every
/// running thread of the registered processes (the peer's included). If the
/// kernel refuses, a full fence here; the sleeps it guards are bounded, so a
/// wake-up missed then costs time, never a hang.
pub(crate) fn heavy_fence() {
    if membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}
