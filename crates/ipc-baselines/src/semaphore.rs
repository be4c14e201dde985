//! The floor under the semaphores transport: a ping-pong of one POSIX
//! semaphore each way (`sem_post` there, `sem_wait` back) between this
//! process and a forked child, both semaphores process-shared in an
//! anonymous shared mapping; no slots, no mutex, no ledger, no harness.

use std::time::Instant;

/// The two semaphores and the stop word, in one shared page.
#[repr(C)]
struct Pair {
    ping: libc::sem_t,
    pong: libc::sem_t,
    stop: std::sync::atomic::AtomicBool,
}

/// A shared anonymous mapping of one [`Pair`], unmapped on drop.
struct Shared(*mut Pair);

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by mmap with this length, and
        // nothing uses it after the drop (the child is reaped first).
        unsafe { libc::munmap(self.0.cast(), std::mem::size_of::<Pair>()) };
    }
}

/// `count` round trips (after `warmup` untimed ones) of one semaphore post
/// each way between this process and a forked child; the samples in
/// nanoseconds, sorted. `None` if the mapping, a semaphore or the child
/// could not be made, or the child died.
pub fn round_trips(count: usize, warmup: usize) -> Option<Vec<u64>> {
    // SAFETY: an anonymous shared mapping of a fresh, zeroed region; no
    // memory of ours is touched.
    let at = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::mem::size_of::<Pair>(),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if at == libc::MAP_FAILED {
        return None;
    }
    let shared = Shared(at.cast());
    let pair = shared.0;
    // SAFETY: `pair` points to zeroed shared memory, aligned (page), that
    // nothing uses yet; pshared 1: the child shares it after the fork. The
    // semaphores are reached through raw pointers only.
    let made = unsafe {
        libc::sem_init(std::ptr::addr_of_mut!((*pair).ping), 1, 0) == 0
            && libc::sem_init(std::ptr::addr_of_mut!((*pair).pong), 1, 0) == 0
    };
    if !made {
        return None;
    }
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the child only calls prctl, getppid, sem_wait, sem_post and
    // _exit, none of which allocate or take a lock another thread of this
    // process could hold at the fork, on the mapping made before it; it
    // never returns.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return None;
    }
    if child == 0 {
        // SAFETY: as above; the child ends with the parent (a parent killed
        // between its posts would leave it waiting for ever).
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            loop {
                if libc::sem_wait(std::ptr::addr_of_mut!((*pair).ping)) != 0 {
                    continue; // EINTR
                }
                if (*pair).stop.load(std::sync::atomic::Ordering::Acquire) {
                    libc::_exit(0);
                }
                libc::sem_post(std::ptr::addr_of_mut!((*pair).pong));
            }
        }
    }
    let mut samples = Vec::with_capacity(count);
    let mut ok = true;
    for i in 0..warmup + count {
        let t0 = Instant::now();
        // SAFETY: the semaphores live in the mapping, which outlives the
        // child (it is unmapped after the child is reaped).
        let round = unsafe {
            libc::sem_post(std::ptr::addr_of_mut!((*pair).ping)) == 0 && wait_for_child(pair, child)
        };
        if !round {
            ok = false;
            break;
        }
        if i >= warmup {
            samples.push(t0.elapsed().as_nanos() as u64);
        }
    }
    // SAFETY: as above.
    unsafe {
        (*pair)
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        libc::sem_post(std::ptr::addr_of_mut!((*pair).ping));
        libc::waitpid(child, std::ptr::null_mut(), 0);
    }
    drop(shared);
    samples.sort_unstable();
    ok.then_some(samples)
}

/// Waits on `pong`, a second at a time, while the child lives.
///
/// # Safety
///
/// `pair` points to the live mapping with both semaphores made.
unsafe fn wait_for_child(pair: *mut Pair, child: libc::pid_t) -> bool {
    loop {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is on our stack; the semaphore is in the mapping
        // (our caller's promise). sem_timedwait follows CLOCK_REALTIME, for
        // this reference only: a clock step costs one more round of this
        // loop, not a wrong answer.
        let taken = unsafe {
            libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
            now.tv_sec += 1;
            libc::sem_timedwait(std::ptr::addr_of_mut!((*pair).pong), &now) == 0
        };
        if taken {
            return true;
        }
        // SAFETY: waitpid with WNOHANG only asks about our own child.
        let gone = unsafe { libc::waitpid(child, std::ptr::null_mut(), libc::WNOHANG) } != 0;
        if gone {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_semaphore_ping_pong_times_every_round_trip() {
        let samples = super::round_trips(300, 10).expect("a ping-pong");
        assert_eq!(samples.len(), 300);
        assert!(samples[0] > 0);
    }
}
