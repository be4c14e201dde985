//! A message as a run of signals, 8 bytes in each `si_value` (**wire
//! contract** of the `rt` variant).
//!
//! The first signal carries the length in its low 32 bits and the first
//! (up to) 4 bytes of the message in its high 32 bits; each following
//! signal carries the next 8 bytes (the last one padded with zeros). So a
//! message of `n` bytes takes `1 + ceil(max(n - 4, 0) / 8)` signals: one for
//! up to 4 bytes, 2 for 8, 9 for 64, 513 for 4096. A first signal whose
//! length is `u32::MAX` says the sending end was dropped. All the signals of
//! one channel use one signal number, so they arrive in the order sent.

use ipc_core::{Error, Result};

/// The length that says "the sender is gone".
pub(crate) const CLOSE: u32 = u32::MAX;

/// The signals a message of `len` bytes takes.
pub fn signals_for(len: usize) -> usize {
    1 + len.saturating_sub(4).div_ceil(8)
}

/// The first signal of `msg` (its length and first bytes).
pub(crate) fn head(msg: &[u8]) -> u64 {
    let mut first = [0u8; 4];
    let n = msg.len().min(4);
    first[..n].copy_from_slice(&msg[..n]);
    (msg.len() as u32 as u64) | (u64::from(u32::from_le_bytes(first)) << 32)
}

/// The signals after the first.
pub(crate) fn body(msg: &[u8]) -> impl Iterator<Item = u64> + '_ {
    msg.get(4..).unwrap_or_default().chunks(8).map(|c| {
        let mut word = [0u8; 8];
        word[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(word)
    })
}

/// The first signal that says the sender is gone.
pub(crate) fn close() -> u64 {
    u64::from(CLOSE)
}

/// What one more signal made of the message being put together.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fed {
    /// The message is whole (in the assembler's buffer).
    Message,
    /// More signals are due.
    More,
    /// The sender said it is gone.
    Closed,
}

/// Puts messages together from their signals.
#[derive(Debug)]
pub(crate) struct Assembler {
    buf: Vec<u8>,
    /// Bytes still due for the message in progress (0: a first signal is due).
    due: usize,
    max: usize,
}

impl Assembler {
    /// For messages of at most `max` bytes.
    pub(crate) fn new(max: usize) -> Self {
        Assembler {
            buf: Vec::new(),
            due: 0,
            max,
        }
    }

    /// The largest message it takes.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The last whole message.
    pub(crate) fn message(&self) -> &[u8] {
        &self.buf
    }

    /// Whether a message is part way.
    pub(crate) fn in_progress(&self) -> bool {
        self.due > 0
    }

    /// Takes the next signal's value.
    pub(crate) fn feed(&mut self, value: u64) -> Result<Fed> {
        let bytes = value.to_le_bytes();
        if self.due == 0 {
            let len = value as u32;
            if len == CLOSE {
                return Ok(Fed::Closed);
            }
            let len = len as usize;
            if len > self.max {
                return Err(Error::Corrupt(format!(
                    "a message announces {len} bytes, above the maximum of {}",
                    self.max
                )));
            }
            self.buf.clear();
            self.buf.reserve(len);
            let first = len.min(4);
            self.buf.extend_from_slice(&bytes[4..4 + first]);
            self.due = len - first;
        } else {
            let n = self.due.min(8);
            self.buf.extend_from_slice(&bytes[..n]);
            self.due -= n;
        }
        Ok(if self.due == 0 {
            Fed::Message
        } else {
            Fed::More
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(msg: &[u8]) -> Vec<u8> {
        let mut a = Assembler::new(1 << 16);
        let signals: Vec<u64> = std::iter::once(head(msg)).chain(body(msg)).collect();
        assert_eq!(signals.len(), signals_for(msg.len()), "{} bytes", msg.len());
        let (last, rest) = signals.split_last().expect("one signal at least");
        for &s in rest {
            assert_eq!(a.feed(s).expect("feed"), Fed::More);
        }
        assert_eq!(a.feed(*last).expect("feed"), Fed::Message);
        a.message().to_vec()
    }

    #[test]
    fn every_length_round_trips() {
        for len in [0, 1, 3, 4, 5, 11, 12, 13, 64, 4096, 65536] {
            let msg: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
            assert_eq!(through(&msg), msg, "{len} bytes");
        }
        assert_eq!(signals_for(8), 2);
        assert_eq!(signals_for(64), 9);
        assert_eq!(signals_for(4096), 513);
    }

    #[test]
    fn a_length_above_the_maximum_is_corrupt_and_close_is_close() {
        let mut a = Assembler::new(100);
        assert!(matches!(a.feed(head(&[0; 101])), Err(Error::Corrupt(_))));
        assert_eq!(a.feed(close()).expect("close"), Fed::Closed);
    }
}
