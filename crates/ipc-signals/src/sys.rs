//! The raw signal calls nix does not have (queueing a value to a process,
//! a pidfd or a thread; waiting for one with a timeout), each with its
//! reason.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// A queued signal as received: who sent it, how, and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// `si_pid`: the sender's pid (as the sender's kernel says; a process of
    /// the same user can forge it with `rt_sigqueueinfo`).
    pub pid: i32,
    /// `si_code`: `SI_QUEUE` for a queued value.
    pub code: i32,
    /// The 8 bytes of `si_value`.
    pub value: u64,
}

/// The kernel's `siginfo_t` for a queued signal (`SI_QUEUE`, the `_rt`
/// member of its union), 128 bytes as on every 64-bit Linux.
#[repr(C)]
struct QueueInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u64; 12],
}

const _: () = assert!(std::mem::size_of::<QueueInfo>() == 128);

fn queue_info(signo: i32, value: u64) -> QueueInfo {
    QueueInfo {
        signo,
        errno: 0,
        code: libc::SI_QUEUE,
        _pad: 0,
        // SAFETY: getpid and getuid cannot fail and touch no memory.
        pid: unsafe { libc::getpid() },
        // SAFETY: as above.
        uid: unsafe { libc::getuid() },
        value,
        _rest: [0; 12],
    }
}

fn check(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Queues signal `signo` carrying `value` to the process `pidfd` names
/// (`pidfd_send_signal`, Linux 5.1): a pid given to another process later
/// can never receive it.
pub(crate) fn queue_to_pidfd(pidfd: BorrowedFd<'_>, signo: i32, value: u64) -> io::Result<()> {
    let info = queue_info(signo, value);
    // SAFETY: the pidfd is open for the call (borrowed); `info` is a valid
    // siginfo of 128 bytes on our stack that the kernel only reads; flags 0.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signo,
            &info as *const QueueInfo,
            0u32,
        )
    })
}

/// Queues signal `signo` carrying `value` to process `pid` (`sigqueue`), for
/// kernels without pidfds.
pub(crate) fn queue_to_pid(pid: i32, signo: i32, value: u64) -> io::Result<()> {
    let value = libc::sigval {
        sival_ptr: value as usize as *mut libc::c_void,
    };
    // SAFETY: sigqueue takes plain values; the pointer in sigval is never
    // dereferenced (it is the 8 bytes we carry).
    check(unsafe { libc::sigqueue(pid, signo, value) } as libc::c_long)
}

/// Queues signal `signo` carrying `value` to thread `tid` of process `tgid`
/// (`rt_tgsigqueueinfo`): only that thread can take it.
pub(crate) fn queue_to_thread(tgid: i32, tid: i32, signo: i32, value: u64) -> io::Result<()> {
    let info = queue_info(signo, value);
    // SAFETY: `info` is a valid siginfo on our stack that the kernel only
    // reads; the ids are plain numbers.
    check(unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            tgid,
            tid,
            signo,
            &info as *const QueueInfo,
        )
    })
}

/// A signal set of `signals`.
fn set_of(signals: impl IntoIterator<Item = i32>) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it, and
    // sigaddset only sets bits in it (a number out of range is EINVAL,
    // which leaves the set as it was).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `signals` in the calling thread (threads it starts later inherit
/// the mask, and so do processes it spawns).
pub(crate) fn block(signals: impl IntoIterator<Item = i32>) -> io::Result<()> {
    let set = set_of(signals);
    // SAFETY: pthread_sigmask reads the set on our stack and changes only
    // this thread's mask; no old mask is asked for.
    match unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}

/// Whether `signo` is blocked in the calling thread.
pub(crate) fn is_blocked(signo: i32) -> bool {
    // SAFETY: sigset_t is plain data that pthread_sigmask fills (a null new
    // set only reads the mask); sigismember only reads it.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old) == 0
            && libc::sigismember(&old, signo) == 1
    }
}

/// Waits up to `timeout` for a pending `signo` (for this thread, or for the
/// process) and takes it (`sigtimedwait`): `None` when none came. The
/// signal must be blocked, or it would have been delivered instead.
pub(crate) fn take(signo: i32, timeout: Duration) -> io::Result<Option<Received>> {
    let set = set_of([signo]);
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    loop {
        // SAFETY: siginfo_t is plain data the kernel fills; the set and
        // the timespec are valid for the call, on our stack.
        let (r, info) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::sigtimedwait(&set, &mut info, &ts);
            (r, info)
        };
        if r == signo {
            // SAFETY: the kernel filled `info` for a queued signal; the
            // `_rt` fields are the ones SI_QUEUE (and kill) set.
            let (pid, value) = unsafe { (info.si_pid(), info.si_value().sival_ptr as usize) };
            return Ok(Some(Received {
                pid,
                code: info.si_code,
                value: value as u64,
            }));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => return Ok(None),
            Some(libc::EINTR) => continue,
            _ => return Err(e),
        }
    }
}

/// The calling thread's id.
pub(crate) fn gettid() -> i32 {
    // SAFETY: gettid cannot fail and touches no memory.
    unsafe { libc::gettid() }
}

/// This process's id.
pub(crate) fn getpid() -> i32 {
    // SAFETY: getpid cannot fail and touches no memory.
    unsafe { libc::getpid() }
}

/// The lowest and highest real-time signal this C library leaves to
/// programs (it keeps the first two or three for its own threads).
pub(crate) fn rt_bounds() -> (i32, i32) {
    (libc::SIGRTMIN(), libc::SIGRTMAX())
}

/// In a forked child before exec: blocks the real-time signals the data
/// path uses, so that a signal its parent sends early stays pending until
/// the child waits for it. Async-signal-safe: it only computes the range
/// (two reads of the C library's constants), fills a set on the stack and
/// calls `sigprocmask`.
pub(crate) fn block_data_signals_in_child() -> io::Result<()> {
    let (low, high) = crate::numbers::data_bounds();
    let set = set_of(low..=high);
    // SAFETY: sigprocmask reads the set on our stack; the forked child has
    // one thread, whose mask it changes.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
