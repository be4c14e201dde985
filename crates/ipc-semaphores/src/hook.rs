//! Deaths at chosen points, for the tests: a random kill almost never lands
//! between `sem_wait` returning and the next store, so the tests ask a
//! process to kill itself (SIGKILL, no goodbye) exactly there.
//!
//! `IPC_SEMAPHORES_DIE_AT=<role>:<point>@<n>` (read once per process) makes
//! the process die the `n`-th time one of its `role` ends (`producer`,
//! `consumer`) reaches `point`: `after-wait` (it has the semaphore's token
//! and has not said so), `holding-mutex` (inside the critical section),
//! `mid-write` (half the message copied into its slot), `mid-read` (half
//! copied out), `before-post` (its slot is full or free again, the other
//! semaphore not yet posted, the mutex let go). Without the variable every
//! point is one comparison of a word read once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::layout::{CONSUMER, PRODUCER};

/// Where a death can be asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Just after `sem_wait` returned a token.
    AfterWait,
    /// Inside the critical section.
    HoldingMutex,
    /// Half the message written into the slot.
    MidWrite,
    /// Half the message read out of the slot.
    MidRead,
    /// The slot passed on and the mutex let go, the other semaphore not
    /// yet posted.
    BeforePost,
}

impl Point {
    fn parse(s: &str) -> Option<Point> {
        Some(match s {
            "after-wait" => Point::AfterWait,
            "holding-mutex" => Point::HoldingMutex,
            "mid-write" => Point::MidWrite,
            "mid-read" => Point::MidRead,
            "before-post" => Point::BeforePost,
            _ => return None,
        })
    }
}

/// The environment variable that asks for a death.
pub const DIE_AT: &str = "IPC_SEMAPHORES_DIE_AT";

fn plan() -> Option<(u32, Point, u64)> {
    static PLAN: OnceLock<Option<(u32, Point, u64)>> = OnceLock::new();
    *PLAN.get_or_init(|| {
        let spec = std::env::var(DIE_AT).ok()?;
        let (role, rest) = spec.split_once(':')?;
        let (point, n) = rest.split_once('@').unwrap_or((rest, "1"));
        let role = match role {
            "producer" => PRODUCER,
            "consumer" => CONSUMER,
            _ => return None,
        };
        Some((role, Point::parse(point)?, n.parse().ok()?))
    })
}

static HITS: AtomicU64 = AtomicU64::new(0);

/// An end of `role` reached `point`: dies here if asked to.
#[inline]
pub(crate) fn reached(role: u32, point: Point) {
    if let Some((r, p, n)) = plan() {
        if r == role && p == point && HITS.fetch_add(1, Ordering::Relaxed) + 1 == n {
            // SAFETY: kill sends SIGKILL to this very process; nothing after
            // it runs.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
    }
}
