//! Messages filled from their sequence number, so the receiver can verify
//! any size down to 0 bytes: the first 8 bytes are the sequence number (when
//! the size allows), the rest a pattern derived from it.

use serde::{Deserialize, Serialize};

/// How much of each message the receiver checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Verify {
    /// Every byte.
    Full,
    /// The sequence number and the length only (the checker costs ~nothing).
    Seq,
}

impl Verify {
    /// The name on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Full => "full",
            Verify::Seq => "seq",
        }
    }
}

/// The `j`-th 8-byte word of message `seq`: word 0 is `seq` itself.
#[inline]
fn word(seq: u64, j: u64) -> u64 {
    if j == 0 {
        seq
    } else {
        (seq ^ j.rotate_left(32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ j
    }
}

/// Writes message `seq` into `buf` (its whole length). With `Verify::Seq` only
/// the stamp is written, for senders whose receiver will check no more.
pub fn fill(buf: &mut [u8], seq: u64, verify: Verify) {
    let words = if verify == Verify::Seq {
        buf.len().min(8)
    } else {
        buf.len()
    };
    let mut chunks = buf[..words].chunks_exact_mut(8);
    let mut j = 0u64;
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(seq, j).to_le_bytes());
        j += 1;
    }
    let tail = chunks.into_remainder();
    let len = tail.len();
    tail.copy_from_slice(&word(seq, j).to_le_bytes()[..len]);
}

/// Checks that `msg` is message `seq` of `len` bytes; says what differs.
pub fn check(msg: &[u8], seq: u64, len: usize, verify: Verify) -> Result<(), String> {
    if msg.len() != len {
        return Err(format!(
            "message {seq} has {} bytes, expected {len}",
            msg.len()
        ));
    }
    let stamp = &msg[..len.min(8)];
    let want = seq.to_le_bytes();
    if stamp != &want[..stamp.len()] {
        let mut got = [0u8; 8];
        got[..stamp.len()].copy_from_slice(stamp);
        let got = u64::from_le_bytes(got);
        return Err(if len >= 8 && got > seq {
            format!(
                "expected message {seq}, got {got}: {} message(s) lost",
                got - seq
            )
        } else if len >= 8 {
            format!("expected message {seq}, got {got}: a duplicate or reordered message")
        } else {
            format!("message {seq} has the wrong stamp (lost, duplicated or corrupted)")
        });
    }
    if verify == Verify::Full {
        let corrupt = |j: usize, len: usize| {
            format!(
                "message {seq} is corrupt at bytes {}..{}",
                j * 8,
                j * 8 + len
            )
        };
        // Whole words are compared as u64s (the compiler vectorises this);
        // the tail, if any, byte by byte.
        let words = msg.chunks_exact(8);
        let tail = words.remainder();
        let mut bad = None;
        for (j, chunk) in words.enumerate().skip(1) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if u64::from_le_bytes(w) != word(seq, j as u64) {
                bad = Some(j);
                break;
            }
        }
        if let Some(j) = bad {
            return Err(corrupt(j, 8));
        }
        let j = msg.len() / 8;
        if !tail.is_empty() && j > 0 && tail != &word(seq, j as u64).to_le_bytes()[..tail.len()] {
            return Err(corrupt(j, tail.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_round_trips() {
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 4096] {
            let mut buf = vec![0; len];
            fill(&mut buf, 1234, Verify::Full);
            check(&buf, 1234, len, Verify::Full).expect("intact");
        }
    }

    #[test]
    fn gaps_duplicates_and_corruption_are_named() {
        let mut buf = vec![0; 64];
        fill(&mut buf, 10, Verify::Full);
        assert!(check(&buf, 8, 64, Verify::Full)
            .expect_err("gap")
            .contains("2 message(s) lost"));
        assert!(check(&buf, 11, 64, Verify::Full)
            .expect_err("dup")
            .contains("duplicate"));
        assert!(check(&buf, 10, 65, Verify::Full)
            .expect_err("len")
            .contains("64 bytes"));
        buf[40] ^= 1;
        assert!(check(&buf, 10, 64, Verify::Full)
            .expect_err("corrupt")
            .contains("corrupt at bytes 40..48"));
        check(&buf, 10, 64, Verify::Seq).expect("seq mode does not look past the stamp");
    }

    #[test]
    fn messages_differ_by_sequence() {
        let (mut a, mut b) = (vec![0; 32], vec![0; 32]);
        fill(&mut a, 1, Verify::Full);
        fill(&mut b, 2, Verify::Full);
        assert_ne!(a[8..], b[8..]);
    }
}
