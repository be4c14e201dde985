//! The few raw system calls nix does not wrap, each with its reason.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// In the forked child, before exec: keeps `fds` open across exec, asks the
/// kernel to send `signal` to the child when its parent exits, and exits at
/// once when the parent (pid `parent`) already died between fork and prctl.
pub(crate) fn prepare_child(fds: &[RawFd], parent: u32, signal: i32) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: fcntl on an fd number only changes its flags; an fd that
        // is not open yields EBADF, which we report.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: getppid cannot fail; _exit is async-signal-safe and ends the
    // child without running the parent's atexit handlers or destructors.
    unsafe {
        if libc::getppid() as u32 != parent {
            say_parent_gone(parent);
            libc::_exit(3);
        }
    }
    Ok(())
}

/// Writes "the parent process (pid N) is gone" on stderr, as the harness's
/// peer says it once it runs, with nothing but a stack buffer and `write`: it runs
/// between fork and exec, where only async-signal-safe calls may be made.
fn say_parent_gone(parent: u32) {
    let mut buf = [0u8; 64];
    let len = parent_gone_message(parent, &mut buf);
    // SAFETY: write is async-signal-safe; it reads `len` bytes of our buffer.
    let _ = unsafe { libc::write(libc::STDERR_FILENO, buf.as_ptr().cast(), len) };
}

/// Puts the message of [`say_parent_gone`] into `buf` without allocating;
/// returns its length.
fn parent_gone_message(parent: u32, buf: &mut [u8; 64]) -> usize {
    const HEAD: &[u8] = b"child: the parent process (pid ";
    const TAIL: &[u8] = b") is gone; exiting\n";
    buf[..HEAD.len()].copy_from_slice(HEAD);
    let mut at = HEAD.len();
    let mut digits = [0u8; 10];
    let (mut n, mut count) = (parent, 0);
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in digits[..count].iter().rev() {
        buf[at] = d;
        at += 1;
    }
    buf[at..at + TAIL.len()].copy_from_slice(TAIL);
    at + TAIL.len()
}

/// Takes ownership of fd number `fd` inherited from the parent, after checking
/// that it is open, and marks it close-on-exec again so it goes no further.
///
/// # Safety
///
/// `fd` was handed over to this process, and nothing else in it owns it.
pub(crate) unsafe fn adopt_inherited_fd(fd: RawFd) -> Result<OwnedFd> {
    check_open(fd)?;
    // SAFETY: FD_CLOEXEC only stops the fd leaking into our own children.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the fd is open (checked above) and our caller promises that it
    // was handed to this process and that nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Checks that fd number `fd` is open in this process.
pub(crate) fn check_open(fd: RawFd) -> Result<()> {
    // SAFETY: F_GETFD reads the flags of an fd number; a closed one is EBADF.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(Error::BadEndpoint(format!(
            "fd {fd} named by the endpoint is not open in this process (was it handed over?)"
        )));
    }
    Ok(())
}

/// Removes POSIX shared-memory object `name` (with its leading '/').
pub(crate) fn shm_unlink(name: &str) -> std::io::Result<()> {
    let c = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::shm_unlink(c.as_ptr()) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Removes POSIX message queue `name` (with its leading '/').
pub(crate) fn mq_unlink(name: &str) -> std::io::Result<()> {
    let c = std::ffi::CString::new(name).map_err(std::io::Error::other)?;
    // SAFETY: c is a valid NUL-terminated string for the duration of the call.
    if unsafe { libc::mq_unlink(c.as_ptr()) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod parent_gone_tests {
    use super::*;

    #[test]
    fn the_message_between_fork_and_exec_names_the_parent() {
        let mut buf = [0u8; 64];
        for (pid, text) in [
            (0, "child: the parent process (pid 0) is gone; exiting\n"),
            (
                4_194_304,
                "child: the parent process (pid 4194304) is gone; exiting\n",
            ),
            (
                u32::MAX,
                "child: the parent process (pid 4294967295) is gone; exiting\n",
            ),
        ] {
            let len = parent_gone_message(pid, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..len]), Ok(text));
        }
    }
}
