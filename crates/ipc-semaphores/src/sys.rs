//! POSIX semaphores and a robust process-shared mutex in shared memory,
//! through `libc`. Every object lives in the shared region and is reached
//! through a raw pointer only (never a reference: another process changes
//! it behind our back); each call says why it holds.

use std::io;
use std::time::Duration;

// SAFETY: these are glibc's prototypes of sem_clockwait (semaphore.h) and
// pthread_mutex_clocklock (pthread.h), glibc 2.30 and later: `int
// sem_clockwait(sem_t *, clockid_t, const struct timespec *)` and `int
// pthread_mutex_clocklock(pthread_mutex_t *, clockid_t, const struct
// timespec *)`, with the libc crate's types for the same C types; an older
// glibc fails at link time rather than calling something else.
extern "C" {
    /// `sem_clockwait(3)`, glibc 2.30 and later: waits on `sem` until
    /// `abstime` on clock `clock`. The `libc` crate does not declare it.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;

    /// `pthread_mutex_clocklock(3)`, glibc 2.30 and later: locks `mutex`,
    /// waiting until `abstime` on clock `clock`. Not in the `libc` crate.
    fn pthread_mutex_clocklock(
        mutex: *mut libc::pthread_mutex_t,
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

/// CLOCK_MONOTONIC `limit` from now, as the absolute time the `*_clock*`
/// waits take.
fn monotonic_after(limit: Duration) -> io::Result<libc::timespec> {
    let now =
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_err(io::Error::from)?;
    let deadline = Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32) + limit;
    Ok(libc::timespec {
        tv_sec: deadline.as_secs() as libc::time_t,
        tv_nsec: deadline.subsec_nanos() as libc::c_long,
    })
}

/// Takes a token of `sem`, waiting at most `limit` (on CLOCK_MONOTONIC,
/// which no clock step moves; interrupted waits are retried).
///
/// # Safety
///
/// `sem` points to a semaphore made by [`sem_init`] in memory that stays
/// mapped for the call.
pub(crate) unsafe fn sem_wait_for(sem: *mut libc::sem_t, limit: Duration) -> io::Result<Taken> {
    let abstime = monotonic_after(limit)?;
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

/// Locks `mutex`, waiting at most `limit` (on CLOCK_MONOTONIC); `None`
/// when it stayed held that long (the caller looks at who holds it and
/// tries again).
///
/// # Safety
///
/// `mutex` points to a mutex made by [`mutex_init`] in memory that stays
/// mapped while it is held.
pub(crate) unsafe fn mutex_lock_for(
    mutex: *mut libc::pthread_mutex_t,
    limit: Duration,
) -> io::Result<Option<Locked>> {
    let abstime = monotonic_after(limit)?;
    // SAFETY: passed on from our caller; `abstime` is on our stack.
    match unsafe { pthread_mutex_clocklock(mutex, libc::CLOCK_MONOTONIC, &abstime) } {
        0 => Ok(Some(Locked::Clean)),
        libc::EOWNERDEAD => Ok(Some(Locked::OwnerDied)),
        libc::ETIMEDOUT => Ok(None),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// The thread that holds `mutex` now, as its lock word names it (glibc's
/// robust mutexes keep the holder's thread id in their first word, with
/// two flag bits above it); `None` when it is free, or where the C library
/// is not glibc and the word means something else.
///
/// # Safety
///
/// As for [`mutex_lock_for`].
pub(crate) unsafe fn mutex_holder(mutex: *mut libc::pthread_mutex_t) -> Option<u32> {
    if !cfg!(target_env = "gnu") {
        return None;
    }
    /// FUTEX_TID_MASK of the kernel's robust futexes.
    const TID_MASK: u32 = 0x3fff_ffff;
    // SAFETY: the first 4 bytes of a glibc pthread_mutex_t are its lock
    // word, an aligned int inside the mapped mutex (our caller), which every
    // party only accesses atomically (futex operations); reading it as an
    // AtomicU32 is such an access.
    let word = unsafe { &*(mutex as *const std::sync::atomic::AtomicU32) };
    let tid = word.load(std::sync::atomic::Ordering::Relaxed) & TID_MASK;
    (tid != 0).then_some(tid)
}

/// The process thread `tid` belongs to (its Tgid in /proc), `Some(None)`
/// when no such thread exists, `None` when /proc cannot tell (it fails
/// safe: the caller goes on waiting).
pub(crate) fn process_of_thread(tid: u32) -> Option<Option<u32>> {
    match std::fs::read_to_string(format!("/proc/{tid}/status")) {
        Ok(status) => status
            .lines()
            .find_map(|l| l.strip_prefix("Tgid:"))
            .and_then(|v| v.trim().parse().ok())
            .map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Some(None),
        Err(_) => None,
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
