//! What binds a queue's attributes on this machine, and the attributes a
//! channel gets within it.
//!
//! Without CAP_SYS_RESOURCE the sysctls `fs.mqueue.msgsize_max` (8192 by
//! default) and `fs.mqueue.msg_max` (10) bind; with it (read from the
//! process's effective capabilities, not from its uid: root in a container
//! often lacks it) only the kernel's hard ceilings do (16 MiB a message,
//! 65 536 messages). Either way RLIMIT_MSGQUEUE, the bytes one user's
//! queues may hold in all (800 KiB by default), binds, and `mq_open` fails
//! with `EMFILE` past it. So that several channels fit at once (a
//! ping-pong has two queues), one queue takes at most 1/[`SHARE`] of it.

use std::sync::OnceLock;

use ipc_core::Limit;

/// The part of RLIMIT_MSGQUEUE one queue may take: an eighth, so that a few
/// channels (two queues for a ping-pong) fit at once.
pub const SHARE: u64 = 8;

/// The kernel's hard ceiling on a message (`HARD_MSGSIZEMAX`).
pub const HARD_MSGSIZE: usize = 16 << 20;

/// The kernel's hard ceiling on the messages of a queue (`HARD_MSGMAX`).
pub const HARD_MSGMAX: usize = 65_536;

/// What a message costs the queue beyond its bytes (`struct msg_msg` and a
/// share of the priority tree's node), as the kernel counts it against
/// RLIMIT_MSGQUEUE; rounded up.
pub const PER_MESSAGE: u64 = 96;

/// What binds on this machine, read once.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Whether this process has CAP_SYS_RESOURCE.
    pub privileged: bool,
    /// `fs.mqueue.msgsize_max`.
    pub msgsize_max: usize,
    /// `fs.mqueue.msg_max`.
    pub msg_max: usize,
    /// RLIMIT_MSGQUEUE (soft), in bytes.
    pub rlimit: u64,
}

/// Bit 24 of the capability sets: CAP_SYS_RESOURCE.
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process runs in the initial user namespace (its uid map
/// is the identity over every uid).
fn in_initial_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields == ["0", "0", "4294967295"]
    })
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

impl Bounds {
    /// Reads them from /proc and getrlimit.
    pub fn read() -> Bounds {
        let privileged = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let hex = s
                    .lines()
                    .find_map(|l| l.strip_prefix("CapEff:"))?
                    .trim()
                    .to_owned();
                u64::from_str_radix(&hex, 16).ok()
            })
            .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
            // The kernel asks about the initial user namespace: inside
            // another (`unshare -r`, a rootless container) the bit is shown
            // but does not lift the queue limits.
            && in_initial_user_namespace();
        let rlimit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE)
            .map(|(soft, _)| soft)
            .unwrap_or(819_200);
        Bounds {
            privileged,
            msgsize_max: read_number("/proc/sys/fs/mqueue/msgsize_max").unwrap_or(8192) as usize,
            msg_max: read_number("/proc/sys/fs/mqueue/msg_max").unwrap_or(10) as usize,
            rlimit,
        }
    }

    /// This process's, read once.
    pub fn here() -> &'static Bounds {
        static BOUNDS: OnceLock<Bounds> = OnceLock::new();
        BOUNDS.get_or_init(Bounds::read)
    }

    /// The bytes one queue may hold: its share of RLIMIT_MSGQUEUE.
    pub fn budget(&self) -> u64 {
        self.rlimit / SHARE
    }

    /// The largest message, and what sets it.
    pub fn message_limit(&self) -> Limit {
        let by_rlimit = self.budget().saturating_sub(PER_MESSAGE) as usize;
        let (bytes, name) = if self.privileged {
            if HARD_MSGSIZE <= by_rlimit {
                (
                    HARD_MSGSIZE,
                    "the kernel's ceiling on a queue's message (16 MiB)".to_owned(),
                )
            } else {
                (by_rlimit, format!("an eighth of RLIMIT_MSGQUEUE ({} bytes per user), so that a channel's queues fit", self.rlimit))
            }
        } else if self.msgsize_max <= by_rlimit {
            (
                self.msgsize_max,
                format!(
                    "fs.mqueue.msgsize_max ({} bytes; CAP_SYS_RESOURCE would lift it)",
                    self.msgsize_max
                ),
            )
        } else {
            (by_rlimit, format!("an eighth of RLIMIT_MSGQUEUE ({} bytes per user), so that a channel's queues fit", self.rlimit))
        };
        Limit {
            bytes,
            name: leak(name),
        }
    }

    /// The most messages a queue holds, and what sets it.
    pub fn depth_limit(&self) -> (usize, &'static str) {
        if self.privileged {
            (
                HARD_MSGMAX,
                "the kernel's ceiling on a queue's messages (65536)",
            )
        } else {
            (
                self.msg_max,
                leak(format!(
                    "fs.mqueue.msg_max ({}; CAP_SYS_RESOURCE would lift it)",
                    self.msg_max
                )),
            )
        }
    }

    /// The attributes of a queue for messages of up to `max_message` bytes
    /// (lowered to the limit) and, if asked, `capacity` bytes of them:
    /// `(message size, messages)`. Without a capacity, as many messages as
    /// the depth limit and the queue's budget allow.
    pub fn attributes(&self, max_message: usize, capacity: Option<usize>) -> (usize, usize) {
        let msgsize = self.message_limit().lower(max_message).0.max(1);
        let per = msgsize as u64 + PER_MESSAGE;
        let fits = (self.budget() / per).max(1) as usize;
        let (depth, _) = self.depth_limit();
        let wanted = capacity.map_or(usize::MAX, |bytes| bytes.div_ceil(msgsize).max(1));
        (msgsize, wanted.min(fits).min(depth).max(1))
    }
}

/// A name made once for a process's lifetime (limits are read once).
fn leak(s: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(&known) = names.iter().find(|n| **n == s) {
        return known;
    }
    let made: &'static str = Box::leak(s.into_boxed_str());
    names.push(made);
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(privileged: bool) -> Bounds {
        Bounds {
            privileged,
            msgsize_max: 8192,
            msg_max: 10,
            rlimit: 819_200,
        }
    }

    #[test]
    fn without_the_capability_the_sysctls_bind_and_are_named() {
        let b = bounds(false);
        assert_eq!(b.message_limit().bytes, 8192);
        assert!(b.message_limit().name.contains("msgsize_max"));
        assert_eq!(b.attributes(64, None), (64, 10));
        assert_eq!(b.attributes(1 << 20, None), (8192, 10));
    }

    #[test]
    fn with_the_capability_the_rlimit_binds_and_is_named() {
        let b = bounds(true);
        let limit = b.message_limit();
        assert_eq!(limit.bytes as u64, 819_200 / SHARE - PER_MESSAGE);
        assert!(limit.name.contains("RLIMIT_MSGQUEUE"));
        let (size, depth) = b.attributes(64, None);
        assert_eq!(size, 64);
        assert_eq!(depth as u64, 819_200 / SHARE / (64 + PER_MESSAGE));
        let (size, depth) = b.attributes(1 << 20, None);
        assert_eq!((size, depth), (limit.bytes, 1));
    }

    #[test]
    fn a_capacity_sets_the_depth_within_the_limits() {
        let b = bounds(true);
        assert_eq!(b.attributes(100, Some(1000)), (100, 10));
        assert_eq!(b.attributes(100, Some(1)), (100, 1));
        assert_eq!(bounds(false).attributes(100, Some(1 << 20)), (100, 10));
    }

    #[test]
    fn this_machine_is_read() {
        let b = Bounds::read();
        assert!(b.msgsize_max > 0 && b.msg_max > 0 && b.rlimit > 0);
    }
}
