//! The floor under the signals transport: a ping-pong of one real-time
//! signal each way between this thread and a forked child (`sigqueue` to
//! the child, `rt_tgsigqueueinfo` back to this very thread, each taken with
//! `sigwaitinfo` while blocked), carrying the round trip's number in
//! `si_value`; no framing, no checks, no harness.

use std::time::Instant;

/// A signal set holding `signals`.
fn set_of(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it and
    // sigaddset only sets bits in it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Waits for a signal of `set` (blocked) and returns its value.
fn wait(set: &libc::sigset_t) -> Option<u64> {
    loop {
        // SAFETY: siginfo_t is plain data the kernel fills; the set lives
        // on the caller's stack for the call.
        let (r, info) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            (libc::sigwaitinfo(set, &mut info), info)
        };
        if r > 0 {
            // SAFETY: a queued signal's info carries its value in the _rt member.
            return Some(unsafe { info.si_value().sival_ptr } as usize as u64);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return None;
        }
    }
}

/// `count` round trips (after `warmup` untimed ones) of one signal each way
/// between this thread and a forked child, on real-time signals
/// `SIGRTMIN()` (there) and `SIGRTMIN() + 1` (back); the samples in
/// nanoseconds, sorted. `None` if a signal could not be queued or the child
/// could not be made.
pub fn round_trips(count: usize, warmup: usize) -> Option<Vec<u64>> {
    let (there, back) = (libc::SIGRTMIN(), libc::SIGRTMIN() + 1);
    let set = set_of(&[there, back]);
    let mut old = set_of(&[]);
    // SAFETY: pthread_sigmask reads `set` and writes the old mask into `old`,
    // both on our stack; it changes only this thread's mask (restored below).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old) };
    // Signals of these numbers still pending from earlier users of them
    // (this process may have had channels on them) would read as answers.
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: sigtimedwait with a zero timeout takes a pending signal of
    // the set, if any, into `info` on our stack; the set is blocked above.
    while unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::sigtimedwait(&set, &mut info, &zero)
    } > 0
    {}
    // SAFETY: getpid and gettid cannot fail and touch no memory.
    let (me, my_thread) = unsafe { (libc::getpid(), libc::gettid()) };
    let there_set = set_of(&[there]);
    let back_set = set_of(&[back]);
    // SAFETY: the child makes only async-signal-safe calls (sigwaitinfo,
    // syscall(rt_tgsigqueueinfo), _exit) on values made before the fork,
    // so it is sound even if this process has other threads; it inherits
    // this thread's mask, with both signals blocked.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let mut info = [0u64; 16];
        while let Some(v) = wait(&there_set) {
            if v == u64::MAX {
                break;
            }
            // The kernel's siginfo for SI_QUEUE, as 8-byte words: signo and
            // errno, code and padding, pid and uid (left 0), the value.
            info[0] = back as u32 as u64;
            info[1] = libc::SI_QUEUE as u32 as u64;
            info[3] = v;
            // SAFETY: `info` is 128 bytes laid out as a queued siginfo; the
            // kernel only reads it.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_rt_tgsigqueueinfo,
                    me,
                    my_thread,
                    back,
                    info.as_ptr(),
                )
            };
            if r != 0 {
                break;
            }
        }
        // SAFETY: _exit ends the child without running the parent's
        // destructors or atexit handlers.
        unsafe { libc::_exit(0) }
    }
    let result = (child > 0).then(|| {
        let mut samples = Vec::with_capacity(count);
        for i in 0..warmup + count {
            let t0 = Instant::now();
            let value = libc::sigval {
                sival_ptr: i as *mut libc::c_void,
            };
            // SAFETY: sigqueue takes plain values; the pointer is never read.
            if unsafe { libc::sigqueue(child, there, value) } != 0
                || wait(&back_set) != Some(i as u64)
            {
                return None;
            }
            if i >= warmup {
                samples.push(t0.elapsed().as_nanos() as u64);
            }
        }
        samples.sort_unstable();
        Some(samples)
    });
    if child > 0 {
        let stop = libc::sigval {
            sival_ptr: usize::MAX as *mut libc::c_void,
        };
        // SAFETY: as above; then waitpid reaps our own child.
        unsafe {
            libc::sigqueue(child, there, stop);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
    }
    // SAFETY: restores this thread's mask from `old`, on our stack.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result.flatten()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_signal_ping_pong_times_every_round_trip() {
        let samples = super::round_trips(200, 10).expect("a ping-pong");
        assert_eq!(samples.len(), 200);
        assert!(samples[0] > 0);
    }
}
