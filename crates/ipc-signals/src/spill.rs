//! What keeps a full signal queue from wedging two processes.
//!
//! Every queued signal of a user counts against one limit
//! (`RLIMIT_SIGPENDING`, ~96 000 here), whatever process or channel it is
//! for. A consumer that is sending (an answer, an echo) while its own
//! incoming queue holds the user's last free places would wait for a place
//! that only its own receiving frees, and its producer waits for the
//! consumer: both would retry for ever. So a sender that finds the queue
//! full (`EAGAIN`) first takes the signals pending for the *receivers* of
//! its own process into their spill queues here (in order: they were the
//! oldest pending), which frees places; a receiver reads its spill queue
//! before the kernel's. A receiver whose signals go to one thread (thread
//! mode) does not register: only that thread could take them. A receiver
//! that is waiting in the kernel at that moment is taking its signals
//! itself, so its queue is left alone: then no signal can be taken by the
//! drain while a newer one is taken by the receiver.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use crate::sys::{self, Received};

/// At most this many signals are taken for one receiver at a time.
const BATCH: usize = 4096;

/// A registered receiver's spilled signals, and whether it is waiting in
/// the kernel right now.
#[derive(Default)]
struct Queue {
    spilled: VecDeque<Received>,
    waiting: bool,
}

static SPILL: Mutex<Option<HashMap<i32, Queue>>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut HashMap<i32, Queue>) -> R) -> R {
    let mut guard = SPILL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

/// A receiver of process-directed signal `signo` lives in this process.
pub(crate) fn register(signo: i32) {
    with(|m| {
        m.insert(signo, Queue::default());
    });
}

/// It is gone: what was spilled for it goes too.
pub(crate) fn unregister(signo: i32) {
    with(|m| {
        m.remove(&signo);
    });
}

/// Before a receiver of `signo` waits in the kernel: the oldest signal
/// spilled for it, if any; if none, it is marked waiting (until
/// [`end_wait`]), so that no drain takes its signals meanwhile.
pub(crate) fn begin_wait(signo: i32) -> Option<Received> {
    with(|m| {
        let queue = m.get_mut(&signo)?;
        let oldest = queue.spilled.pop_front();
        queue.waiting = oldest.is_none();
        oldest
    })
}

/// The receiver of `signo` no longer waits in the kernel.
pub(crate) fn end_wait(signo: i32) {
    with(|m| {
        if let Some(queue) = m.get_mut(&signo) {
            queue.waiting = false;
        }
    })
}

/// Takes what is pending for the receivers of this process (but `except`,
/// a number this process sends on) into their spill queues; returns how
/// many it took.
pub(crate) fn drain(except: i32) -> usize {
    with(|m| {
        let mut took = 0;
        for (&signo, queue) in m.iter_mut().filter(|(&s, q)| s != except && !q.waiting) {
            for _ in 0..BATCH {
                match sys::take(signo, Duration::ZERO) {
                    Ok(Some(sig)) => {
                        queue.spilled.push_back(sig);
                        took += 1;
                    }
                    _ => break,
                }
            }
        }
        took
    })
}
