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

/// An odd constant (2^64 / golden ratio): multiples of it differ for every
/// position below 2^64.
const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// What every word of message `seq` but the first is mixed with.
#[inline]
fn base(seq: u64) -> u64 {
    (seq ^ 0x5851_F42D_4C95_7F2D).wrapping_mul(STEP)
}

/// The `j`-th 8-byte word of message `seq`: word 0 is `seq` itself, word `j`
/// the message's base XOR `j * STEP`, so words differ by position and by
/// message, and a whole message is made or checked with an add (the running
/// `j * STEP`), an xor and a compare per word, which the compiler
/// vectorises.
#[inline]
fn word(seq: u64, j: u64) -> u64 {
    if j == 0 {
        seq
    } else {
        base(seq) ^ j.wrapping_mul(STEP)
    }
}

/// Writes message `seq` into `buf` (its whole length). With `Verify::Seq` only
/// the stamp is written, for senders whose receiver will check no more.
pub fn fill(buf: &mut [u8], seq: u64, verify: Verify) {
    if verify == Verify::Seq {
        stamp(buf, seq);
        return;
    }
    let mut chunks = buf.chunks_exact_mut(8);
    let mut j = 0u64;
    if let Some(first) = chunks.next() {
        first.copy_from_slice(&seq.to_le_bytes());
        j = 1;
    }
    let mix = base(seq);
    // `step` is `j * STEP`, kept by adding: a multiply per word would stay
    // a multiply in the vectorised loop (three 32-bit ones per pair of words
    // with SSE2), and halve its speed.
    let mut step = j.wrapping_mul(STEP);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&(mix ^ step).to_le_bytes());
        step = step.wrapping_add(STEP);
        j += 1;
    }
    let tail = chunks.into_remainder();
    let len = tail.len();
    tail.copy_from_slice(&word(seq, j).to_le_bytes()[..len]);
}

/// Writes the stamp of message `seq` alone, its first 8 bytes (fewer in a
/// shorter message): one 8-byte store when the message holds it, where a
/// copy of a length known only at run time would call `memcpy`, on the
/// path every round trip times.
#[inline]
pub fn stamp(buf: &mut [u8], seq: u64) {
    let stamp = seq.to_le_bytes();
    match buf.first_chunk_mut::<8>() {
        Some(head) => *head = stamp,
        None => {
            let len = buf.len();
            buf.copy_from_slice(&stamp[..len]);
        }
    }
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
        // Whole words are compared as u64s, all of them with no early exit
        // (so the compiler vectorises the loop), and searched for the first
        // difference only when there is one; the tail, if any, byte by byte.
        let words = msg.chunks_exact(8);
        let tail = words.remainder();
        let mix = base(seq);
        let load = |chunk: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            u64::from_le_bytes(w)
        };
        // `step` is `j * STEP`, kept by adding, as in `fill`. The search
        // computes each word's difference the same way as the sum, so a
        // sum that is not 0 always has a word to name.
        let (mut diff, mut step) = (0u64, STEP);
        for chunk in words.clone().skip(1) {
            diff |= load(chunk) ^ mix ^ step;
            step = step.wrapping_add(STEP);
        }
        if diff != 0 {
            let mut step = STEP;
            for (j, chunk) in words.enumerate().skip(1) {
                if load(chunk) ^ mix ^ step != 0 {
                    return Err(corrupt(j, 8));
                }
                step = step.wrapping_add(STEP);
            }
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
    fn every_word_is_the_pattern_and_checked() {
        // `fill` and `check` keep `j * STEP` by adding; the pattern must
        // still be `word(seq, j)` at every position, the tail included, and
        // a change of any byte must be found where it is.
        for len in [8, 9, 15, 16, 17, 200, 203] {
            let mut buf = vec![0; len];
            fill(&mut buf, 77, Verify::Full);
            for (j, chunk) in buf.chunks(8).enumerate() {
                let want = word(77, j as u64).to_le_bytes();
                assert_eq!(chunk, &want[..chunk.len()], "len {len}, word {j}");
            }
            for at in 8..len {
                buf[at] ^= 0x40;
                let why = check(&buf, 77, len, Verify::Full).expect_err("corrupt");
                let start = at / 8 * 8;
                let end = (start + 8).min(len);
                assert!(
                    why.contains(&format!("bytes {start}..{end}")),
                    "len {len}, byte {at}: {why}"
                );
                buf[at] ^= 0x40;
            }
            check(&buf, 77, len, Verify::Full).expect("intact again");
        }
    }

    #[test]
    fn messages_differ_by_sequence() {
        let (mut a, mut b) = (vec![0; 32], vec![0; 32]);
        fill(&mut a, 1, Verify::Full);
        fill(&mut b, 2, Verify::Full);
        assert_ne!(a[8..], b[8..]);
    }
}
