//! What the fuzzer drives (cargo feature `fuzzing`): a ring whose shared
//! words and data a hostile peer has rewritten at will, read by an honest
//! consumer and written by an honest producer. Whatever the image, every
//! call returns a message inside the ring and within the maximum, `Empty`,
//! `Full`, `Corrupt` or `Disconnected`: never a panic, a hang or an access
//! outside the region.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ipc_core::{Error, Receiver, Sender, LIMIT_OPTION};

use super::{ends, Futex, Ring, DATA_OFFSET};
use crate::region::Native;

/// The ring's size and largest message in the image.
pub const CAPACITY: usize = 4096;
/// The largest message of the ring in the image.
pub const MAX: usize = 256;

/// Takes `n` little-endian bytes of `image` from `at` (zeros past its end).
fn word(image: &[u8], at: usize, n: usize) -> u64 {
    let mut b = [0u8; 8];
    for (i, x) in b.iter_mut().take(n).enumerate() {
        *x = image.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

/// Builds the ring the image describes and uses both ends of it. Layout of
/// `image`: 4 bytes, where in the stream both ends stand (a multiple of 8,
/// so that laps and stamps vary); 8 bytes, the consumer position the
/// producer will read; 1 byte, the producer's closed flag; the rest, the
/// data ring (up to [`CAPACITY`] bytes). The wait words are not written: a
/// sleep is not what this drives (every call here polls).
/// Panics if any call answers outside the contract.
pub fn use_image(image: &[u8]) {
    let ring = Ring::create::<Native>(
        "shm",
        CAPACITY,
        MAX,
        LIMIT_OPTION,
        Duration::from_secs(5),
        Arc::new(Futex),
    )
    .expect("a ring for the image");
    let (mut tx, mut rx) = ends::<Native>(ring);
    let pos = word(image, 0, 4) * 8;
    (tx.head, tx.cached_tail, tx.cleared, rx.tail) = (pos, pos, pos, pos);
    let ctl = rx.ring.ctl();
    ctl.tail.0.store(word(image, 4, 8), Ordering::Release);
    ctl.life
        .0
        .producer
        .closed
        .store(u32::from(word(image, 12, 1) & 1 == 1), Ordering::Release);
    let data = image.get(13..).unwrap_or(&[]);
    let data = &data[..data.len().min(CAPACITY)];
    // SAFETY: the region holds DATA_OFFSET + CAPACITY bytes; data.len() <=
    // CAPACITY; this process holds both ends, so nothing else writes there.
    unsafe {
        std::ptr::copy_nonoverlapping(
            data.as_ptr(),
            rx.ring.region.as_ptr().add(DATA_OFFSET),
            data.len(),
        )
    };
    for round in 0..64 {
        let got = if round % 2 == 0 {
            rx.try_recv().map(<[u8]>::len)
        } else {
            rx.try_recv_in_place().map(|v| v.len())
        };
        match got {
            Ok(len) => assert!(len <= MAX, "a message of {len} bytes"),
            Err(Error::Empty | Error::Corrupt(_) | Error::Disconnected) => break,
            Err(e) => panic!("the consumer answered {e}"),
        }
    }
    for len in [0, 8, 100, MAX] {
        match tx.try_send(&vec![0xA5; len]) {
            Ok(()) | Err(Error::Full | Error::Corrupt(_) | Error::Disconnected) => {}
            Err(e) => panic!("the producer answered {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn images_of_zeros_ones_and_headers_are_all_within_the_contract() {
        super::use_image(&[]);
        super::use_image(&[0xff; 5000]);
        let mut image = vec![0u8; 13 + 64];
        // A header for position 0 with the stamp it needs, length 8.
        image[13..21].copy_from_slice(&((1u64 << 32) | 8).to_le_bytes());
        super::use_image(&image);
    }
}
