//! CPU time, pinning and child reaping: the few system calls the harness makes.

use std::time::Duration;

/// CPU time (user + system) used so far by the calling thread, to the
/// nanosecond (`CLOCK_THREAD_CPUTIME_ID`; getrusage counts in ticks, too
/// coarse for a run of a few milliseconds).
pub fn thread_cpu() -> Duration {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID) {
        Ok(t) => Duration::new(
            t.tv_sec().max(0) as u64,
            t.tv_nsec().clamp(0, 999_999_999) as u32,
        ),
        Err(_) => Duration::ZERO,
    }
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> Result<(), String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)
        .map_err(|e| format!("CPU {cpu} cannot be named: {e}"))?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("cannot pin to CPU {cpu}: {e} (is it online and allowed?)"))
}

/// The CPU this process is confined to, as `(cpu, cpu)`, when its affinity
/// allows exactly one (for example under `taskset -c 0`): then both sides
/// run there, and the reports say so even without `--pin`.
pub fn single_cpu_affinity() -> Option<(usize, usize)> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let mut allowed = (0..nix::sched::CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false));
    match (allowed.next(), allowed.next()) {
        (Some(cpu), None) => Some((cpu, cpu)),
        _ => None,
    }
}

/// How a child process ended, as `wait4` reports it.
#[derive(Debug, Clone, Copy)]
pub struct ChildExit {
    /// The raw wait status.
    pub status: i32,
}

impl ChildExit {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    /// In words: "exited with code 1", "was killed by signal 9 (SIGKILL)".
    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exited with code {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            let sig = libc::WTERMSIG(self.status);
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str())
                .unwrap_or("?");
            format!("was killed by signal {sig} ({name})")
        } else {
            format!("ended with status {:#x}", self.status)
        }
    }
}

/// Waits for child `pid` to end (retrying on EINTR).
pub fn wait_child(pid: u32) -> std::io::Result<ChildExit> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid writes only into `status`, a valid local; pid names
        // our own child, which only this thread reaps.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
        if r == pid as libc::pid_t {
            return Ok(ChildExit { status });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The machine in one line: CPU model, CPUs, kernel.
pub fn machine() -> String {
    let cpu = cpu_model();
    // Online CPUs, not the ones this process may use (taskset narrows those).
    // SAFETY: sysconf only reads a configuration value.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1);
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{cpu}, {cpus} CPUs, Linux {kernel}")
}

/// The CPU's model name as /proc/cpuinfo gives it ("AMD EPYC"), which every
/// figure names: machines of one kind may be AMD or Intel.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
