//! The harness's own messages between its two sides (**wire contract**,
//! documented in the README beside the frame format): after the warm-up of
//! a stream the consumer says [`Control::Warm`], after the last message
//! [`Control::Done`] (with its CPU time and, with several producers, what it
//! got from each), at the first bad message [`Control::Fail`]; after the
//! last echo of a ping-pong, [`Control::Cpu`]; in the demo with several
//! consumers, [`Control::Got`] for each task as it arrives (so that what a
//! consumer got is known even if it dies).
//!
//! Each is one message: the 4 bytes `ipcC`, a kind byte, then its body,
//! little-endian. A message that is not exactly one of these is an error,
//! never read as a zero.

use crate::error::{HarnessError, Result};

const MAGIC: &[u8; 4] = b"ipcC";
const WARM: u8 = 1;
const DONE: u8 = 2;
const CPU: u8 = 3;
const FAIL: u8 = 4;
const GOT: u8 = 5;

/// What one consumer received from one producer: how many messages, and a
/// fingerprint of their numbers (see [`Tally::add`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Messages received.
    pub count: u64,
    /// The wrapping sum of [`fingerprint`] over their numbers.
    pub sum: u64,
}

impl Tally {
    /// Counts message number `seq`.
    pub fn add(&mut self, seq: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(fingerprint(seq));
    }

    /// Adds another consumer's tally of the same producer.
    pub fn merge(&mut self, other: Tally) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
    }

    /// The tally of messages `0..n`, each received once.
    pub fn of_all(n: u64) -> Tally {
        let mut t = Tally::default();
        (0..n).for_each(|seq| t.add(seq));
        t
    }
}

/// A 64-bit mix of a message number (splitmix64's finaliser): a sum of
/// these over the numbers received matches the sum over the numbers sent
/// only if each arrived exactly once (up to a 2^-64 chance).
pub fn fingerprint(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A message of the harness's own protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// The consumer has taken the warm-up messages.
    Warm,
    /// The consumer has taken the last message: its CPU time over the timed
    /// part (`None`: it cannot tell), and per producer what it received
    /// (empty with one producer, whose count the consumer checked itself).
    Done {
        /// CPU time of the consumer, in ns.
        cpu_ns: Option<u64>,
        /// What it received from each producer.
        tally: Vec<Tally>,
    },
    /// After the last echo of a ping-pong: the echo's CPU time, in ns.
    Cpu(Option<u64>),
    /// The consumer found a bad message, and why.
    Fail(String),
    /// The demo's consumer got task `seq` of producer `producer`.
    Got {
        /// The producer's number.
        producer: u32,
        /// The task's number from that producer.
        seq: u64,
    },
}

fn ns(v: Option<u64>) -> [u8; 8] {
    v.unwrap_or(u64::MAX).to_le_bytes()
}

fn word(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

fn unknown(w: u64) -> Option<u64> {
    (w != u64::MAX).then_some(w)
}

impl Control {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        match self {
            Control::Warm => out.push(WARM),
            Control::Done { cpu_ns, tally } => {
                out.push(DONE);
                out.extend_from_slice(&ns(*cpu_ns));
                out.extend_from_slice(&(tally.len() as u32).to_le_bytes());
                for t in tally {
                    out.extend_from_slice(&t.count.to_le_bytes());
                    out.extend_from_slice(&t.sum.to_le_bytes());
                }
            }
            Control::Cpu(cpu_ns) => {
                out.push(CPU);
                out.extend_from_slice(&ns(*cpu_ns));
            }
            Control::Fail(why) => {
                out.push(FAIL);
                out.extend_from_slice(why.as_bytes());
            }
            Control::Got { producer, seq } => {
                out.push(GOT);
                out.extend_from_slice(&producer.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
            }
        }
        out
    }

    /// Reads a message made by [`Control::encode`]; anything else is an
    /// error that shows what arrived.
    pub fn decode(bytes: &[u8]) -> Result<Control> {
        let bad = || {
            let shown: Vec<u8> = bytes.iter().copied().take(40).collect();
            HarnessError::Protocol(format!(
                "a malformed control message from the other side ({} bytes: {})",
                bytes.len(),
                String::from_utf8_lossy(&shown).escape_debug()
            ))
        };
        let (head, body) = match bytes {
            [m0, m1, m2, m3, kind, body @ ..] if [*m0, *m1, *m2, *m3] == *MAGIC => (*kind, body),
            _ => return Err(bad()),
        };
        match (head, body.len()) {
            (WARM, 0) => Ok(Control::Warm),
            (CPU, 8) => Ok(Control::Cpu(unknown(word(body)))),
            (FAIL, _) => Ok(Control::Fail(String::from_utf8_lossy(body).into_owned())),
            (GOT, 12) => Ok(Control::Got {
                producer: u32::from_le_bytes([body[0], body[1], body[2], body[3]]),
                seq: word(&body[4..]),
            }),
            (DONE, len) if len >= 12 => {
                let n = u32::from_le_bytes([body[8], body[9], body[10], body[11]]) as usize;
                let rest = &body[12..];
                if rest.len() != n.checked_mul(16).ok_or_else(bad)? {
                    return Err(bad());
                }
                let tally = rest
                    .chunks_exact(16)
                    .map(|c| Tally {
                        count: word(&c[..8]),
                        sum: word(&c[8..]),
                    })
                    .collect();
                Ok(Control::Done {
                    cpu_ns: unknown(word(body)),
                    tally,
                })
            }
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        for c in [
            Control::Warm,
            Control::Cpu(Some(1234)),
            Control::Cpu(None),
            Control::Fail("message 7 is corrupt".into()),
            Control::Got {
                producer: 3,
                seq: u64::MAX - 1,
            },
            Control::Done {
                cpu_ns: Some(5),
                tally: vec![],
            },
            Control::Done {
                cpu_ns: None,
                tally: vec![Tally::of_all(3), Tally::default()],
            },
        ] {
            assert_eq!(Control::decode(&c.encode()).expect("decodes"), c);
        }
    }

    #[test]
    fn malformed_messages_are_errors_not_zeros() {
        let mut cpu = Control::Cpu(Some(1)).encode();
        cpu.pop();
        let mut done = Control::Done {
            cpu_ns: Some(1),
            tally: vec![Tally::default()],
        }
        .encode();
        done.push(0);
        let mut got = Control::Got {
            producer: 1,
            seq: 2,
        }
        .encode();
        got.pop();
        for bad in [
            &b""[..],
            b"cpu 12x",
            b"ipcC",
            b"ipcC\x09",
            b"ipcC\x01extra",
            &cpu,
            &done,
            &got,
            b"ipcC\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            assert!(
                matches!(Control::decode(bad), Err(HarnessError::Protocol(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_tally_tells_a_lost_and_a_duplicated_message_apart_from_all() {
        let all = Tally::of_all(100);
        let mut got = Tally::default();
        (0..100).filter(|&s| s != 40).for_each(|s| got.add(s));
        got.add(41);
        assert_eq!(got.count, all.count);
        assert_ne!(got, all, "one lost and one duplicated");
    }
}
