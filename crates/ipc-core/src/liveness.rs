//! Knowing whether the process on the other side still runs, without the
//! wall clock: one service for every transport that cannot see a disconnect
//! by itself (shared memory, semaphores, signals, message queues).
//!
//! A process is known by its pid *and* its start time, in clock ticks since
//! boot as `/proc/<pid>/stat` gives it ([`ProcessId`]). A pid handed to
//! another process later has another start time, and neither moves when the
//! wall clock is stepped (a start time computed from `/proc/stat`'s `btime`
//! would). A [`ProcessId`] packs into one 64-bit word, so that an
//! [`OwnerWord`] in shared memory can say, with one compare-and-swap, which
//! process holds an end, a slot or a token; a slice of them is a table of
//! participants ([`claim_free`], [`dead_holders`]). In the parent, a spawned
//! child is also held by a pidfd ([`PeerProcess`]), which a signal can be
//! aimed at without any risk of a reused pid.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

/// Bits of a packed [`ProcessId`] that hold the start time; the pid takes
/// the 22 above them (Linux never hands out a pid of 2^22 or more).
const START_BITS: u32 = 42;
const START_MASK: u64 = (1 << START_BITS) - 1;
const PID_LIMIT: u32 = 1 << 22;

/// A process, by pid and start time (clock ticks after boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProcessId {
    pid: u32,
    start: u64,
}

impl ProcessId {
    /// This process.
    pub fn current() -> Self {
        static ME: OnceLock<(u32, ProcessId)> = OnceLock::new();
        let pid = std::process::id();
        // A forked child must not keep its parent's cached identity.
        match ME.get() {
            Some(&(p, id)) if p == pid => id,
            _ => match Self::of(pid) {
                Some(id) => {
                    let _ = ME.set((pid, id));
                    id
                }
                // Start time 0 means "not known": others then judge this
                // process by its pid alone (see `is_running`), and the next
                // call reads again.
                None => ProcessId { pid, start: 0 },
            },
        }
    }

    /// The process `pid` that started at `start` (0: not known).
    pub fn from_parts(pid: u32, start: u64) -> Self {
        ProcessId { pid, start }
    }

    /// The process that runs now under `pid`; `None` when there is none (or
    /// only a zombie) or its start time cannot be read.
    pub fn of(pid: u32) -> Option<Self> {
        let (state, id) = stat(pid)?;
        (state != "Z").then_some(id)
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When it started, in clock ticks after boot (`/proc/<pid>/stat`, field 22).
    pub fn start_ticks(&self) -> u64 {
        self.start
    }

    /// Whether this very process still runs: its pid exists, is not a
    /// zombie, and started when this one did (where the start is known, not
    /// 0).
    ///
    /// It fails safe: only a process that is not there (no
    /// `/proc/<pid>`, or `kill(pid, 0)` says no such process), a zombie or
    /// another start time counts as gone. When `/proc/<pid>/stat` cannot be
    /// read for another reason (no fd left, memory, a `/proc` mounted with
    /// `hidepid`) the process counts as running, since judging a live peer
    /// dead would let the survivors take what it still holds.
    pub fn is_running(&self) -> bool {
        if !(1..PID_LIMIT).contains(&self.pid) {
            return false;
        }
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(text) => parse_stat(self.pid, &text)
                .is_some_and(|(state, id)| state != "Z" && (id == *self || self.start == 0)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(_) => {
                // SAFETY: kill with signal 0 sends nothing; it only checks
                // that the pid exists.
                let sent = unsafe { libc::kill(self.pid as libc::pid_t, 0) };
                sent == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
            }
        }
    }

    /// The process as one non-zero word (see [`OwnerWord`]).
    pub fn pack(&self) -> u64 {
        (u64::from(self.pid) << START_BITS) | (self.start & START_MASK)
    }

    /// The process a word made by [`ProcessId::pack`] names; `None` for 0
    /// and for words no packing makes (as a peer that breaks the protocol
    /// could write).
    pub fn unpack(word: u64) -> Option<Self> {
        let pid = (word >> START_BITS) as u32;
        (pid != 0).then_some(ProcessId {
            pid,
            start: word & START_MASK,
        })
    }
}

/// The state (field 3 of `/proc/<pid>/stat`) of the process under `pid`,
/// and its identity from the start time (field 22).
fn stat(pid: u32) -> Option<(String, ProcessId)> {
    if !(1..PID_LIMIT).contains(&pid) {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &stat)
}

/// The state and identity in the text of `/proc/<pid>/stat`.
fn parse_stat(pid: u32, stat: &str) -> Option<(String, ProcessId)> {
    let fields = fields_after_name(stat)?;
    let start: u64 = fields.get(19)?.parse().ok()?;
    Some((
        fields.first()?.to_string(),
        ProcessId {
            pid,
            start: start & START_MASK,
        },
    ))
}

/// The fields of a `/proc/<pid>/stat` text after the process name (field
/// 2, in parentheses, which may hold anything): state, ppid, pgrp, ...
fn fields_after_name(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// Whether process `pid` has begun to exit, or is gone. The kernel marks a
/// process that begins to exit (`PF_EXITING` in the flags of its stat)
/// before it closes any of its fds, so a child that sees a channel from its
/// parent end can ask here whether the parent died rather than closed it.
/// A process far into its exit makes the read fail with `ESRCH`, a reaped
/// one with `ENOENT`: both count as exiting. Where /proc cannot tell for
/// another reason (`EACCES`, no fd left), it does not.
pub fn exiting(pid: u32) -> bool {
    /// `PF_EXITING` of the kernel's task flags.
    const PF_EXITING: u64 = 0x4;
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat,
        Err(e) => {
            return e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ESRCH)
        }
    };
    // state, ppid, pgrp, session, tty_nr, tpgid, flags
    let flags = fields_after_name(&stat)
        .and_then(|f| f.get(6).copied())
        .and_then(|f| f.parse::<u64>().ok());
    flags.is_some_and(|f| f & PF_EXITING != 0)
}

/// A word, usually in memory shared between processes, naming the process
/// that holds something: an end of a channel, a slot, a token. Zero means
/// nobody. Claiming is one compare-and-swap, so two processes can never both
/// hold it.
#[derive(Debug, Default)]
#[repr(transparent)]
pub struct OwnerWord(AtomicU64);

impl OwnerWord {
    /// A word that names nobody.
    pub const fn new() -> Self {
        OwnerWord(AtomicU64::new(0))
    }

    /// Makes `me` the holder if nobody holds it; otherwise returns who does
    /// (`None` inside the error: a word that names no valid process).
    pub fn claim(&self, me: ProcessId) -> std::result::Result<(), Option<ProcessId>> {
        self.0
            .compare_exchange(0, me.pack(), Ordering::AcqRel, Ordering::Acquire)
            .map(drop)
            .map_err(ProcessId::unpack)
    }

    /// Replaces the holder `from` with `to` (`None`: nobody), if `from`
    /// still holds it; says whether it did.
    pub fn replace(&self, from: Option<ProcessId>, to: Option<ProcessId>) -> bool {
        let pack = |p: Option<ProcessId>| p.map_or(0, |p| p.pack());
        self.0
            .compare_exchange(pack(from), pack(to), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Sets the holder, whoever held it before.
    pub fn set(&self, who: Option<ProcessId>) {
        self.0.store(who.map_or(0, |p| p.pack()), Ordering::Release);
    }

    /// The holder, if any.
    pub fn holder(&self) -> Option<ProcessId> {
        ProcessId::unpack(self.0.load(Ordering::Acquire))
    }

    /// The raw word (0: nobody), for a holder written by a peer that may not
    /// follow the protocol.
    pub fn raw(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Claims the first free word of a table of participants for `me`;
/// returns its index, or `None` when every word is taken.
pub fn claim_free(table: &[OwnerWord], me: ProcessId) -> Option<usize> {
    table.iter().position(|w| w.claim(me).is_ok())
}

/// The words of a table whose holders no longer run, with the holder each
/// names (a word that names no valid process counts as dead, with `None`).
pub fn dead_holders(table: &[OwnerWord]) -> Vec<(usize, Option<ProcessId>)> {
    table
        .iter()
        .enumerate()
        .filter_map(|(i, w)| match w.raw() {
            0 => None,
            raw => match ProcessId::unpack(raw) {
                Some(p) if p.is_running() => None,
                holder => Some((i, holder)),
            },
        })
        .collect()
}

/// A process this one spawned: its [`ProcessId`] and, where the kernel has
/// them (Linux 5.3 and later), a pidfd, which names this process and no
/// other for as long as it is open (signals aimed through it can never reach
/// a process that was given the pid later).
#[derive(Debug, Clone)]
pub struct PeerProcess {
    id: ProcessId,
    pidfd: Option<Arc<OwnedFd>>,
}

impl PeerProcess {
    /// The child `child`, just spawned. Fails if it is already gone (its
    /// start time can no longer be read).
    pub fn of_child(child: &std::process::Child) -> Result<Self> {
        Self::of_pid(child.id())
    }

    /// The process under `pid` now, which should be a child of this one
    /// not yet reaped: a child keeps its pid until its parent reaps it (as a
    /// zombie at worst), so the pidfd and the start time name one process.
    pub fn of_pid(pid: u32) -> Result<Self> {
        let pidfd = pidfd_open(pid).map(Arc::new);
        let (_, id) = stat(pid).ok_or_else(|| {
            Error::io(
                format!("read the start time of process {pid}"),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            )
        })?;
        Ok(PeerProcess { id, pidfd })
    }

    /// Its pid and start time.
    pub fn id(&self) -> ProcessId {
        self.id
    }

    /// Its pidfd, if the kernel gave one.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_deref().map(AsFd::as_fd)
    }

    /// Whether it still runs (a zombie does not).
    pub fn is_running(&self) -> bool {
        self.id.is_running()
    }
}

/// `pidfd_open(pid, 0)`, or `None` where the kernel lacks it.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // it touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us and nothing else owns it
    // (pidfd_open sets O_CLOEXEC).
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_is_not_exiting_and_a_reaped_one_is() {
        assert!(!exiting(std::process::id()));
        assert!(exiting(crate::conformance::a_dead_process().id().pid()));
    }

    #[test]
    fn this_process_runs_and_packs_into_one_word() {
        let me = ProcessId::current();
        assert_eq!(me.pid(), std::process::id());
        assert!(me.start_ticks() > 0);
        assert!(me.is_running());
        assert_eq!(ProcessId::unpack(me.pack()), Some(me));
        assert_eq!(ProcessId::unpack(0), None);
        assert_eq!(ProcessId::unpack(5), None, "a word that names pid 0");
    }

    #[test]
    fn a_reaped_child_and_a_later_start_are_not_the_process() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let peer = PeerProcess::of_child(&child).expect("a running child");
        assert!(peer.is_running());
        // The same pid, started one tick later: another process.
        let later = ProcessId {
            start: peer.id().start_ticks() + 1,
            ..peer.id()
        };
        assert!(!later.is_running());
        let _ = child.kill();
        let _ = child.wait();
        assert!(!peer.is_running());
        assert_eq!(ProcessId::of(peer.id().pid()), None);
    }

    #[test]
    fn an_owner_word_is_claimed_once() {
        let word = OwnerWord::new();
        let me = ProcessId::current();
        assert!(word.claim(me).is_ok());
        assert_eq!(word.claim(me), Err(Some(me)), "a second claim is refused");
        assert!(!word.replace(None, Some(me)));
        assert!(word.replace(Some(me), None));
        assert_eq!(word.holder(), None);
    }

    #[test]
    fn a_table_finds_free_words_and_dead_holders() {
        let table: Vec<OwnerWord> = (0..3).map(|_| OwnerWord::new()).collect();
        let me = ProcessId::current();
        assert_eq!(claim_free(&table, me), Some(0));
        assert_eq!(claim_free(&table, me), Some(1));
        let gone = crate::conformance::a_dead_process().id();
        table[2].set(Some(gone));
        assert_eq!(dead_holders(&table), vec![(2, Some(gone))]);
        table[2].0.store(5, Ordering::Relaxed);
        assert_eq!(dead_holders(&table), vec![(2, None)], "a forged word");
        assert_eq!(claim_free(&table, me), None);
    }
}
