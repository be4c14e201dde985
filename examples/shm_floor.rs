//! The floors under `ipc-shm`, measured beside it in one run:
//!
//! - latency: two threads ping-ponging one 8-byte atomic on its own cache
//!   line, timed one round trip per sample like the harness (the cheapest
//!   possible exchange between two cores), next to `ipc-shm pingpong --wait
//!   spin --batch 1` in process mode at 8 and 64 bytes;
//! - bandwidth: single-core `memcpy` of 64 KiB messages out of a ring-sized
//!   buffer, next to `ipc-shm stream` at 64 KiB with `--verify seq` and `full`.
//!
//! ```text
//! cargo run --release --example shm_floor
//! ```

use std::time::Instant;

use ipc_core::Mode;
use ipc_harness::{Batch, Entry, RunConfig, Verify, Wait};

const COUNT: u64 = 200_000;
const WARMUP: u64 = 10_000;

fn config(size: usize, count: u64, wait: Wait, verify: Verify) -> RunConfig {
    RunConfig {
        warmup: WARMUP.min(count),
        batch: Batch::Fixed(1),
        verify,
        ..RunConfig::new(Mode::Process, wait, size, count)
    }
}

/// Single-core memcpy bandwidth, 64 KiB at a time out of a 4 MiB buffer (the
/// ring's size) into a 64 KiB one, as the consumer copies.
fn memcpy_bandwidth() -> f64 {
    let src = vec![7u8; 4 << 20];
    let chunk = 64 << 10;
    let mut dst = vec![0u8; chunk];
    let chunks = src.len() / chunk;
    let rounds = 20_000;
    let t0 = Instant::now();
    for i in 0..rounds {
        let from = (i % chunks) * chunk;
        dst.copy_from_slice(&src[from..from + chunk]);
        std::hint::black_box(&mut dst);
    }
    (rounds * chunk) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let shm = Entry::of::<ipc_shm::ShmRing>();
    ipc_harness::run_peer_if_asked(&[shm]);

    let floor = ipc_harness::floor::atomic_round_trips(COUNT as usize, WARMUP as usize);
    let floor_p50 = floor[floor.len() / 2];
    println!("{{\"name\":\"atomic ping-pong between two threads (floor)\",\"p50_ns\":{floor_p50},\"p99_ns\":{}}}", floor[floor.len() * 99 / 100]);
    for size in [8, 64] {
        match (shm.pingpong)(&config(size, COUNT, Wait::Spin, Verify::Full)) {
            Ok(r) => println!(
                "{{\"name\":\"ipc-shm pingpong --wait spin --size {size}\",\"p50_ns\":{},\"p99_ns\":{},\"x_floor\":{:.2}}}",
                r.rtt.p50,
                r.rtt.p99,
                r.rtt.p50 as f64 / floor_p50 as f64
            ),
            Err(e) => println!("{{\"name\":\"ipc-shm --size {size}\",\"error\":\"{e}\"}}"),
        }
    }

    let memcpy = memcpy_bandwidth();
    println!("{{\"name\":\"memcpy 64 KiB, one core\",\"bytes_per_s\":{memcpy:.0}}}");
    // The defaults (blocking waits, a 4 MiB ring), then both sides awake
    // with a ring that stays in the caches (256 KiB).
    let runs = [
        (Wait::Block, None, Verify::Seq),
        (Wait::Block, None, Verify::Full),
        (Wait::Spin, Some(256 << 10), Verify::Seq),
    ];
    for (wait, capacity, verify) in runs {
        let mut cfg = config(64 << 10, 20_000, wait, verify);
        cfg.capacity = capacity;
        let name = format!(
            "ipc-shm stream --size 65536 --wait {} --verify {}{}",
            wait.as_str(),
            verify.as_str(),
            capacity
                .map(|c| format!(" --capacity {c}"))
                .unwrap_or_default()
        );
        match (shm.stream)(&cfg) {
            Ok(r) => println!(
                "{{\"name\":\"{name}\",\"bytes_per_s\":{:.0},\"x_memcpy\":{:.2}}}",
                r.bytes_per_s,
                r.bytes_per_s / memcpy
            ),
            Err(e) => println!("{{\"name\":\"{name}\",\"error\":\"{e}\"}}"),
        }
    }
}
