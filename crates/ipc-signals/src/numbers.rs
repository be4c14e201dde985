//! Which real-time signals the crate uses, and who in this process holds
//! each.
//!
//! The real-time signals the C library leaves to programs run from
//! `SIGRTMIN()` to `SIGRTMAX()` (34 to 64 with glibc, which keeps 32 and 33
//! for its threads). The crate splits them in two:
//! - the **data** signals, `SIGRTMIN()` to `SIGRTMAX() - 8`, carry the `rt`
//!   variant's messages; they are blocked in every thread for the life of
//!   the process ([`crate::init`]) and taken with `sigtimedwait`, so no work
//!   happens in a handler and a late one stays pending instead of killing
//!   the process;
//! - the **doorbell** signals, the top 8, wake a `doorbell` receiver
//!   through signal-hook's handler; they are never blocked.
//!
//! Each channel takes one number of its range (both its ends use it, in
//! one process or two) and gives it back when its last end here is
//! dropped; a channel made when every number is taken fails with
//! [`Error::InUse`], naming the range.

use std::sync::Mutex;

use ipc_core::{Error, Result};

/// Real-time signals set aside at the top of the range for the doorbell.
pub const DOORBELL_SIGNALS: i32 = 8;

/// The first and last data signal.
pub fn data_bounds() -> (i32, i32) {
    let (low, high) = crate::sys::rt_bounds();
    (low, high - DOORBELL_SIGNALS)
}

/// The first and last doorbell signal.
pub fn doorbell_bounds() -> (i32, i32) {
    let (_, high) = crate::sys::rt_bounds();
    (high - DOORBELL_SIGNALS + 1, high)
}

/// The numbers held in this process, one bit each.
static TAKEN: Mutex<u64> = Mutex::new(0);

fn taken() -> std::sync::MutexGuard<'static, u64> {
    TAKEN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A signal number this process holds for one channel; given back on drop.
#[derive(Debug)]
pub(crate) struct Number(i32);

impl Number {
    /// The first free number in `bounds`; `what` names the range in the error.
    pub(crate) fn take_free(bounds: (i32, i32), what: &str) -> Result<Number> {
        let mut held = taken();
        let free = (bounds.0..=bounds.1).find(|&s| *held & (1 << s) == 0);
        match free {
            Some(s) => {
                *held |= 1 << s;
                Ok(Number(s))
            }
            None => Err(Error::InUse(format!(
                "every {what} signal ({} to {}) is held by a channel of this process: drop one first",
                bounds.0, bounds.1
            ))),
        }
    }

    /// Number `signo`, which must lie in `bounds` and be free here.
    pub(crate) fn take(signo: i32, bounds: (i32, i32)) -> Result<Number> {
        if !(bounds.0..=bounds.1).contains(&signo) {
            return Err(Error::BadEndpoint(format!(
                "signal {signo} is not one of this crate's ({} to {})",
                bounds.0, bounds.1
            )));
        }
        let mut held = taken();
        if *held & (1 << signo) != 0 {
            return Err(Error::InUse(format!(
                "signal {signo} is held by another channel of this process (is this end open already?)"
            )));
        }
        *held |= 1 << signo;
        Ok(Number(signo))
    }

    /// The signal.
    pub(crate) fn get(&self) -> i32 {
        self.0
    }
}

impl Drop for Number {
    fn drop(&mut self) {
        *taken() &= !(1 << self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ranges_split_the_real_time_signals() {
        let (low, high) = crate::sys::rt_bounds();
        let data = data_bounds();
        let bell = doorbell_bounds();
        assert_eq!((data.0, bell.1), (low, high));
        assert_eq!(data.1 + 1, bell.0);
        assert_eq!(bell.1 - bell.0 + 1, DOORBELL_SIGNALS);
    }
}
