//! The few raw system calls nix does not wrap, each with its reason.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, SystemTime};

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
            libc::_exit(3);
        }
    }
    Ok(())
}

/// Takes ownership of fd number `fd` inherited from the parent, after checking
/// that it is open, and marks it close-on-exec again so it goes no further.
pub(crate) fn adopt_inherited_fd(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: F_GETFD reads the flags of an fd number; a closed one is EBADF.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(Error::BadEndpoint(format!(
            "fd {fd} named by the endpoint is not open in this process (was it handed over?)"
        )));
    }
    // SAFETY: as above; FD_CLOEXEC only stops the fd leaking into our own children.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    // SAFETY: the fd is open (checked above) and the endpoint hands it to
    // this process alone; `Endpoint::take_fd` documents that each is taken once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether process `pid` is running (exists and is not a zombie).
pub fn process_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_fields(&stat).and_then(|f| f.first().copied()) != Some("Z"),
        Err(_) => false,
    }
}

/// When process `pid` started, from /proc (never later than the true start:
/// the boot time there is rounded down to whole seconds).
pub fn process_start_time(pid: u32) -> Option<SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22 (starttime) is the 20th after the closing parenthesis of the name.
    let ticks: u64 = stat_fields(&stat)?.get(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let since_boot =
        Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz);
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(btime) + since_boot)
}

/// The fields of /proc/<pid>/stat after the process name (which may hold spaces).
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    let after = &stat[stat.rfind(')')? + 1..];
    Some(after.split_whitespace().collect())
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
mod tests {
    use super::*;

    #[test]
    fn this_process_runs_and_started_in_the_past() {
        let me = std::process::id();
        assert!(process_running(me));
        let started = process_start_time(me).expect("start time of this process");
        assert!(started <= SystemTime::now());
    }

    #[test]
    fn a_reaped_child_is_not_running() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(!process_running(pid));
    }
}
