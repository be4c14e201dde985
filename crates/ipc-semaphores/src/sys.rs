//! POSIX semaphores and a robust process-shared mutex in shared memory,
//! through `libc`. Every object lives in the shared region and is reached
//! through a raw pointer only (never a reference: another process changes
//! it behind our back); each call says why it holds.

use std::io;
use std::time::{Duration, Instant};

// SAFETY: this is glibc's prototype of sem_clockwait (semaphore.h, glibc
// 2.30 and later: `int sem_clockwait(sem_t *, clockid_t, const struct
// timespec *)`), with the libc crate's types for the same C types; an older
// glibc fails at link time rather than calling something else.
extern "C" {
    /// `sem_clockwait(3)`, glibc 2.30 and later: waits on `sem` until
    /// `abstime` on clock `clock`. The `libc` crate does not declare it.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

/// Makes `sem` a process-shared semaphore of value `value`.
///
/// # Safety
///
/// `sem` points to `size_of::<sem_t>()` writable bytes of shared memory,
/// aligned for `sem_t`, that no process uses yet.
pub(crate) unsafe fn sem_init(sem: *mut libc::sem_t, value: u32) -> io::Result<()> {
    // SAFETY: passed on from our caller; pshared 1: shared between processes.
    if unsafe { libc::sem_init(sem, 1, value) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What a wait on a semaphore got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// A token.
    Token,
    /// None within the time.
    TimedOut,
}

/// Takes a token of `sem`, waiting at most `limit` (on CLOCK_MONOTONIC,
/// which no clock step moves; interrupted waits are retried).
///
/// # Safety
///
/// `sem` points to a semaphore made by [`sem_init`] in memory that stays
/// mapped for the call.
pub(crate) unsafe fn sem_wait_for(sem: *mut libc::sem_t, limit: Duration) -> io::Result<Taken> {
    let now =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_err(io::Error::from)?;
    let deadline = Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32) + limit;
    let abstime = libc::timespec {
        tv_sec: deadline.as_secs() as libc::time_t,
        tv_nsec: deadline.subsec_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: the semaphore is valid (our caller); `abstime` is on our stack.
        if unsafe { sem_clockwait(sem, libc::CLOCK_MONOTONIC, &abstime) } == 0 {
            return Ok(Taken::Token);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::ETIMEDOUT) => return Ok(Taken::TimedOut),
            _ => return Err(e),
        }
    }
}

/// Takes a token of `sem` if one is there now.
///
/// # Safety
///
/// As for [`sem_wait_for`].
pub(crate) unsafe fn sem_try(sem: *mut libc::sem_t) -> io::Result<bool> {
    loop {
        // SAFETY: passed on from our caller.
        if unsafe { libc::sem_trywait(sem) } == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Gives one token to `sem`.
///
/// # Safety
///
/// As for [`sem_wait_for`].
pub(crate) unsafe fn sem_post(sem: *mut libc::sem_t) -> io::Result<()> {
    // SAFETY: passed on from our caller.
    if unsafe { libc::sem_post(sem) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The tokens `sem` holds now.
///
/// # Safety
///
/// As for [`sem_wait_for`].
pub(crate) unsafe fn sem_value(sem: *mut libc::sem_t) -> i32 {
    let mut value = 0;
    // SAFETY: passed on from our caller; `value` is on our stack.
    unsafe { libc::sem_getvalue(sem, &mut value) };
    value
}

/// Makes `mutex` a robust, process-shared mutex: when its holder dies, the
/// next locker gets `EOWNERDEAD` instead of waiting for ever.
///
/// # Safety
///
/// `mutex` points to `size_of::<pthread_mutex_t>()` writable bytes of
/// shared memory, aligned for it, that no process uses yet.
pub(crate) unsafe fn mutex_init(mutex: *mut libc::pthread_mutex_t) -> io::Result<()> {
    // SAFETY: the attribute object lives on our stack, is initialised before
    // use and destroyed after; `mutex` is valid (our caller).
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        let check = |r: libc::c_int| match r {
            0 => Ok(()),
            e => Err(io::Error::from_raw_os_error(e)),
        };
        check(libc::pthread_mutexattr_init(&mut attr))?;
        let made = check(libc::pthread_mutexattr_setpshared(
            &mut attr,
            libc::PTHREAD_PROCESS_SHARED,
        ))
        .and_then(|()| {
            check(libc::pthread_mutexattr_setrobust(
                &mut attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))
        })
        .and_then(|()| check(libc::pthread_mutex_init(mutex, &attr)));
        libc::pthread_mutexattr_destroy(&mut attr);
        made
    }
}

/// How a lock was taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Locked {
    /// As usual.
    Clean,
    /// The last holder died holding it: what it guards must be repaired,
    /// then [`mutex_consistent`] called, before the unlock.
    OwnerDied,
}

/// How long [`mutex_lock`] waits for the mutex before it gives up. An
/// honest holder keeps it for one slot's copy (microseconds); a mutex word
/// held longer was written by a peer that broke the protocol (or stopped
/// inside it), and must not hang this side for ever.
pub(crate) const LOCK_LIMIT: Duration = Duration::from_secs(2);

/// Locks `mutex`, waiting at most [`LOCK_LIMIT`] (then `TimedOut`).
///
/// # Safety
///
/// `mutex` points to a mutex made by [`mutex_init`] in memory that stays
/// mapped while it is held.
pub(crate) unsafe fn mutex_lock(mutex: *mut libc::pthread_mutex_t) -> io::Result<Locked> {
    let start = Instant::now();
    loop {
        // pthread_mutex_timedlock takes a CLOCK_REALTIME deadline: waits of
        // 50 ms, the whole measured on the monotonic clock, so that a step
        // of the wall clock changes one slice at most.
        let deadline = realtime_after(Duration::from_millis(50));
        // SAFETY: passed on from our caller; `deadline` is a valid timespec
        // on our stack for the length of the call.
        match unsafe { libc::pthread_mutex_timedlock(mutex, &deadline) } {
            0 => return Ok(Locked::Clean),
            libc::EOWNERDEAD => return Ok(Locked::OwnerDied),
            libc::ETIMEDOUT if start.elapsed() < LOCK_LIMIT => {}
            libc::ETIMEDOUT => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("held by another for more than {LOCK_LIMIT:?}: a peer broke the protocol or stopped inside it"),
                ))
            }
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// CLOCK_REALTIME `after` from now, as a timespec.
fn realtime_after(after: Duration) -> libc::timespec {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)
        .map(|t| Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        .unwrap_or_default();
    let at = now + after;
    libc::timespec {
        tv_sec: at.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(at.subsec_nanos() as i32),
    }
}

/// Marks a mutex taken with [`Locked::OwnerDied`] repaired.
///
/// # Safety
///
/// As for [`mutex_lock`]; the caller holds it.
pub(crate) unsafe fn mutex_consistent(mutex: *mut libc::pthread_mutex_t) {
    // SAFETY: passed on from our caller.
    unsafe { libc::pthread_mutex_consistent(mutex) };
}

/// Unlocks `mutex`.
///
/// # Safety
///
/// As for [`mutex_lock`]; the caller holds it.
pub(crate) unsafe fn mutex_unlock(mutex: *mut libc::pthread_mutex_t) {
    // SAFETY: passed on from our caller.
    unsafe { libc::pthread_mutex_unlock(mutex) };
}

/// Now on CLOCK_MONOTONIC, in ns: the same clock in every process of the
/// machine, never stepped.
pub(crate) fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}
