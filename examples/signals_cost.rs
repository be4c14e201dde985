//! What a signal costs, and why it is a doorbell rather than a data path,
//! measured in one run, in alternating rounds:
//!
//! - the references: a bare real-time signal ping-pong (one `sigqueue` and
//!   one `sigwaitinfo` each way, 8 bytes in `si_value`) and a bare pipe
//!   ping-pong of 64 bytes (one `write` and one `read` each way);
//! - `ipc-signals pingpong --variant rt`, messages as signals of 8 bytes;
//! - `ipc-signals pingpong --variant doorbell`, the shm ring woken by a
//!   signal, against `ipc-shm pingpong --wait block`, the same ring woken
//!   by its futex;
//!
//! all in process mode with blocking waits, at 8, 64 and 4096 bytes. Run it
//! pinned to one CPU as well: unpinned, every blocking round trip also
//! pays the wake-up of a halted virtual CPU.
//!
//! ```text
//! cargo run --release --example signals_cost
//! taskset -c 0 cargo run --release --example signals_cost
//! cargo run --release --example signals_cost -- --rounds 5
//! ```

use std::io::Write;

use ipc_core::Mode;
use ipc_harness::{Batch, Entry, RunConfig, Wait};

/// Prints a line; ends quietly when nobody reads any more (`| head`).
macro_rules! out {
    ($($arg:tt)*) => {
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            return;
        }
    };
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn p50(samples: &[u64]) -> f64 {
    samples.get(samples.len() / 2).copied().unwrap_or(0) as f64
}

fn main() {
    let entries = [
        Entry::of::<ipc_signals::Rt>(),
        Entry::of::<ipc_signals::Doorbell>(),
        Entry::of::<ipc_shm::ShmRing>(),
    ];
    ipc_signals::init().expect("block the data signals");
    // SAFETY: first thing in main after blocking signals, before any thread
    // or fd of this process.
    unsafe { ipc_harness::run_peer_if_asked(&entries) };
    ipc_harness::remove_objects_on_interrupt();
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    let names = ["signals/rt", "signals/doorbell", "shm/ring (futex)"];
    let mut medians: Vec<Vec<f64>> = vec![Vec::new(); 2 + names.len() * 3];
    for round in 1..=rounds {
        let signal = ipc_baselines::signal::round_trips(20_000, 1000).map(|s| p50(&s));
        let pipe = ipc_baselines::pipe::round_trips(64, 20_000, 1000).map(|s| p50(&s));
        out!(
            "{{\"round\":{round},\"name\":\"bare signal ping-pong (8 bytes)\",\"p50_ns\":{}}}",
            signal.unwrap_or(0.0)
        );
        out!(
            "{{\"round\":{round},\"name\":\"bare pipe ping-pong (64 bytes)\",\"p50_ns\":{}}}",
            pipe.unwrap_or(0.0)
        );
        medians[0].push(signal.unwrap_or(f64::NAN));
        medians[1].push(pipe.unwrap_or(f64::NAN));
        for (i, size) in [8usize, 64, 4096].into_iter().enumerate() {
            for (j, entry) in entries.iter().enumerate() {
                let count = if size > 64 { 2_000 } else { 20_000 };
                let cfg = RunConfig {
                    warmup: 200,
                    batch: Batch::Fixed(1),
                    pin: ipc_harness::single_cpu_affinity(),
                    ..RunConfig::new(Mode::Process, Wait::Block, size, count)
                };
                match (entry.pingpong)(&cfg) {
                    Ok(r) => {
                        out!(
                            "{{\"round\":{round},\"name\":\"{} --wait block --size {size}\",\"p50_ns\":{},\"p99_ns\":{}}}",
                            names[j], r.rtt.p50, r.rtt.p99
                        );
                        medians[2 + i * names.len() + j].push(r.rtt.p50 as f64);
                    }
                    Err(e) => out!(
                        "{{\"name\":\"{} --size {size}\",\"error\":\"{e}\"}}",
                        names[j]
                    ),
                }
            }
        }
    }
    let machine = ipc_harness::machine();
    out!(
        "{{\"name\":\"medians of {rounds} rounds\",\"machine\":\"{machine}\",\"bare_signal\":{:.0},\"bare_pipe_64\":{:.0}}}",
        median(&mut medians[0]),
        median(&mut medians[1])
    );
    for (i, size) in [8, 64, 4096].into_iter().enumerate() {
        let m: Vec<f64> = (0..names.len())
            .map(|j| median(&mut medians[2 + i * names.len() + j]))
            .collect();
        out!(
            "{{\"size\":{size},\"rt_p50\":{:.0},\"doorbell_p50\":{:.0},\"shm_futex_p50\":{:.0},\"rt_per_signal_each_way\":{:.0}}}",
            m[0],
            m[1],
            m[2],
            m[0] / (2.0 * ipc_signals::chunks::signals_for(size) as f64)
        );
    }
}
