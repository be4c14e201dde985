//! The reference for in-process channels: crossbeam-channel's `bounded(1)`
//! between two threads, each side blocking in `recv`, the message an owned
//! buffer that goes back and forth (its bytes are never copied).

use std::time::Instant;

/// `count` round trips (after `warmup` untimed ones) of a `size`-byte buffer
/// through two `crossbeam_channel::bounded(1)` channels between this thread
/// and an echo thread; the samples in nanoseconds, sorted. `None` if the
/// echo thread could not be started or a message came back wrong.
pub fn crossbeam_round_trips(size: usize, count: usize, warmup: usize) -> Option<Vec<u64>> {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<Vec<u8>>(1);
    let echo = std::thread::Builder::new()
        .name("crossbeam-echo".into())
        .spawn(move || {
            while let Ok(m) = ping_rx.recv() {
                if pong_tx.send(m).is_err() {
                    break;
                }
            }
        })
        .ok()?;
    let mut msg = vec![3u8; size.max(8)];
    let mut samples = Vec::with_capacity(count);
    let mut wrong = false;
    for i in 0..warmup + count {
        msg[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let t0 = Instant::now();
        if ping_tx.send(msg).is_err() {
            return None;
        }
        msg = pong_rx.recv().ok()?;
        let t = t0.elapsed().as_nanos() as u64;
        wrong |= msg[..8] != (i as u64).to_le_bytes();
        if i >= warmup {
            samples.push(t);
        }
    }
    drop(ping_tx);
    echo.join().ok()?;
    samples.sort_unstable();
    (!wrong).then_some(samples)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_buffer_comes_back() {
        let samples = super::crossbeam_round_trips(64, 1000, 10).expect("round trips");
        assert_eq!(samples.len(), 1000);
        assert!(samples.windows(2).all(|w| w[0] <= w[1]));
    }
}
