//! What the semaphore buffer costs, measured in one run, in alternating
//! rounds:
//!
//! - the reference: a bare `sem_post`/`sem_wait` ping-pong between two
//!   processes (one semaphore each way, nothing else);
//! - `ipc-semaphores pingpong` and `ipc-shm pingpong` (the plain ring,
//!   woken by its futex) at 8, 64 and 4096 bytes, in process and thread
//!   mode, both blocking;
//! - `stream` of both at 64 and 4096 bytes, in process and thread mode;
//! - the semaphore buffer's throughput with 1x1, 2x2 and 4x4 producers x
//!   consumers (64 bytes, producers are threads of this process, consumers
//!   processes or threads as the mode says).
//!
//! Run it pinned to one CPU as well: unpinned, every blocking round trip
//! also pays the wake-up of a halted virtual CPU.
//!
//! ```text
//! cargo run --release --example semaphores_cost
//! taskset -c 0 cargo run --release --example semaphores_cost
//! cargo run --release --example semaphores_cost -- --rounds 5
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

/// Medians by name, in the order first seen.
#[derive(Default)]
struct Medians(Vec<(String, Vec<f64>)>);

impl Medians {
    fn add(&mut self, name: &str, v: f64) {
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some((_, vs)) => vs.push(v),
            None => self.0.push((name.to_owned(), vec![v])),
        }
    }

    fn get(&mut self, name: &str) -> f64 {
        self.0
            .iter_mut()
            .find(|(n, _)| n == name)
            .map_or(f64::NAN, |(_, vs)| median(vs))
    }
}

fn main() {
    let entries = [
        Entry::of::<ipc_semaphores::Semaphores>(),
        Entry::of::<ipc_shm::ShmRing>(),
    ];
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_harness::run_peer_if_asked(&entries) };
    ipc_harness::remove_objects_on_interrupt();
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        .unwrap_or(3)
        .max(1);
    let names = ["semaphores", "shm ring"];
    let modes = [(Mode::Process, "process"), (Mode::Thread, "thread")];
    let pin = ipc_harness::single_cpu_affinity();
    let mut m = Medians::default();
    for round in 1..=rounds {
        let bare = ipc_baselines::semaphore::round_trips(20_000, 1000)
            .map(|s| s.get(s.len() / 2).copied().unwrap_or(0) as f64);
        out!(
            "{{\"round\":{round},\"name\":\"bare semaphore ping-pong\",\"p50_ns\":{}}}",
            bare.unwrap_or(0.0)
        );
        m.add("bare", bare.unwrap_or(f64::NAN));
        for (mode, mode_name) in modes {
            for size in [8usize, 64, 4096] {
                for (entry, name) in entries.iter().zip(names) {
                    let cfg = RunConfig {
                        warmup: 500,
                        batch: Batch::Fixed(1),
                        pin,
                        ..RunConfig::new(mode, Wait::Block, size, 10_000)
                    };
                    match (entry.pingpong)(&cfg) {
                        Ok(r) => {
                            let key = format!("{name} pingpong {mode_name} {size}");
                            out!(
                                "{{\"round\":{round},\"name\":\"{key}\",\"p50_ns\":{},\"p99_ns\":{}}}",
                                r.rtt.p50, r.rtt.p99
                            );
                            m.add(&key, r.rtt.p50 as f64);
                        }
                        Err(e) => out!(
                            "{{\"name\":\"{name} pingpong {mode_name} {size}\",\"error\":\"{e}\"}}"
                        ),
                    }
                }
            }
            for size in [64usize, 4096] {
                for (entry, name) in entries.iter().zip(names) {
                    let cfg = RunConfig {
                        warmup: 1000,
                        pin,
                        ..RunConfig::new(mode, Wait::Block, size, 200_000)
                    };
                    let key = format!("{name} stream {mode_name} {size}");
                    match (entry.stream)(&cfg) {
                        Ok(r) => {
                            out!(
                                "{{\"round\":{round},\"name\":\"{key}\",\"msgs_per_s\":{:.0},\"bytes_per_s\":{:.0}}}",
                                r.msgs_per_s, r.bytes_per_s
                            );
                            m.add(&key, r.msgs_per_s);
                        }
                        Err(e) => out!("{{\"name\":\"{key}\",\"error\":\"{e}\"}}"),
                    }
                }
            }
            for sides in [1usize, 2, 4] {
                let cfg = RunConfig {
                    warmup: 1000,
                    producers: sides,
                    consumers: sides,
                    ..RunConfig::new(mode, Wait::Block, 64, 200_000)
                };
                let key = format!("semaphores {sides}x{sides} {mode_name}");
                match (entries[0].stream)(&cfg) {
                    Ok(r) => {
                        out!(
                            "{{\"round\":{round},\"name\":\"{key}\",\"msgs_per_s\":{:.0},\"cpu_ns_per_msg\":{:.0}}}",
                            r.msgs_per_s,
                            r.cpu_ns_per_msg.unwrap_or(f64::NAN)
                        );
                        m.add(&key, r.msgs_per_s);
                    }
                    Err(e) => out!("{{\"name\":\"{key}\",\"error\":\"{e}\"}}"),
                }
            }
        }
    }
    let machine = ipc_harness::machine();
    let bare = m.get("bare");
    out!(
        "{{\"name\":\"medians of {rounds} rounds\",\"machine\":\"{machine}\",\"pinned\":{},\"bare_semaphore_p50\":{bare:.0}}}",
        pin.is_some()
    );
    for (_, mode_name) in modes {
        for size in [8, 64, 4096] {
            let sem = m.get(&format!("semaphores pingpong {mode_name} {size}"));
            let ring = m.get(&format!("shm ring pingpong {mode_name} {size}"));
            out!(
                "{{\"pingpong\":\"{mode_name}\",\"size\":{size},\"semaphores_p50\":{sem:.0},\"shm_ring_p50\":{ring:.0},\"semaphores_over_bare\":{:.2},\"semaphores_over_ring\":{:.2}}}",
                sem / bare,
                sem / ring
            );
        }
        for size in [64, 4096] {
            let sem = m.get(&format!("semaphores stream {mode_name} {size}"));
            let ring = m.get(&format!("shm ring stream {mode_name} {size}"));
            out!(
                "{{\"stream\":\"{mode_name}\",\"size\":{size},\"semaphores_msgs_per_s\":{sem:.0},\"shm_ring_msgs_per_s\":{ring:.0},\"ring_over_semaphores\":{:.2}}}",
                ring / sem
            );
        }
        let many: Vec<String> = [1, 2, 4]
            .iter()
            .map(|s| {
                format!(
                    "\"{s}x{s}\":{:.0}",
                    m.get(&format!("semaphores {s}x{s} {mode_name}"))
                )
            })
            .collect();
        out!(
            "{{\"many\":\"{mode_name}\",\"size\":64,{}}}",
            many.join(",")
        );
    }
}
