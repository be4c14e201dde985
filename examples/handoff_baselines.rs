//! The baselines the thread and coroutine rows are held against, measured
//! beside them in one run, at 64 bytes:
//!
//! - thread hand-off: crossbeam-channel `bounded(1)` ping-pong between two
//!   threads (blocking `recv`, which spins briefly and then parks), timed one
//!   round trip per sample like the harness, next to `ipc-channels` with
//!   `--wait hybrid`;
//! - coroutine switch: tokio's current-thread runtime, two tasks ping-ponging
//!   over `tokio::sync::mpsc::channel(1)`, and a bare hand-polled coroutine
//!   (no harness), next to `ipc-coroutines`. These are timed in batches so the
//!   clock stays under 5% of a sample, as the harness does.
//!
//! ```text
//! cargo run --release --example handoff_baselines
//! ```

use std::time::Instant;

use ipc_harness::{Entry, RunConfig, Wait};

const SIZE: usize = 64;
const COUNT: u64 = 200_000;
const WARMUP: u64 = 10_000;

/// Percentiles of samples in ns.
fn line(name: &str, batch: u64, mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    format!(
        "{{\"name\":\"{name}\",\"batch\":{batch},\"p50_ns\":{:.1},\"p99_ns\":{:.1},\"p999_ns\":{:.1},\"max_ns\":{:.1}}}",
        q(0.5),
        q(0.99),
        q(0.999),
        q(1.0)
    )
}

fn crossbeam_bounded1() -> String {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<[u8; SIZE]>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<[u8; SIZE]>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(m) = ping_rx.recv() {
            if pong_tx.send(m).is_err() {
                break;
            }
        }
    });
    let mut msg = [7u8; SIZE];
    let mut samples = Vec::with_capacity(COUNT as usize);
    for i in 0..WARMUP + COUNT {
        msg[..8].copy_from_slice(&i.to_le_bytes());
        let t0 = Instant::now();
        ping_tx.send(msg).expect("send");
        let back = pong_rx.recv().expect("recv");
        let t = t0.elapsed();
        assert_eq!(back, msg);
        if i >= WARMUP {
            samples.push(t.as_nanos() as f64);
        }
    }
    drop(ping_tx);
    echo.join().expect("echo thread");
    line("crossbeam bounded(1), threads, blocking recv", 1, samples)
}

fn tokio_current_thread(batch: u64) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let samples = rt.block_on(async move {
        let (ping_tx, mut ping_rx) = tokio::sync::mpsc::channel::<[u8; SIZE]>(1);
        let (pong_tx, mut pong_rx) = tokio::sync::mpsc::channel::<[u8; SIZE]>(1);
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                tokio::task::spawn_local(async move {
                    while let Some(m) = ping_rx.recv().await {
                        if pong_tx.send(m).await.is_err() {
                            break;
                        }
                    }
                });
                let mut msg = [7u8; SIZE];
                let mut samples = Vec::new();
                let mut i = 0u64;
                while i < WARMUP + COUNT {
                    let t0 = Instant::now();
                    for _ in 0..batch {
                        msg[..8].copy_from_slice(&i.to_le_bytes());
                        ping_tx.send(msg).await.expect("send");
                        let back = pong_rx.recv().await.expect("recv");
                        assert_eq!(back, msg);
                        i += 1;
                    }
                    if i > WARMUP {
                        samples.push(t0.elapsed().as_nanos() as f64 / batch as f64);
                    }
                }
                samples
            })
            .await
    });
    line(
        "tokio current_thread, mpsc::channel(1), two tasks",
        batch,
        samples,
    )
}

/// The floor under ipc-coroutines: a consumer future polled by hand with a
/// shared cell, nothing else (from the references crate).
fn bare_coroutine(batch: u64) -> String {
    line(
        "bare hand-polled coroutine (8-byte value, no harness)",
        batch,
        ipc_baselines::coroutine::switches(COUNT, WARMUP, batch),
    )
}

fn harness(entry: Entry, mode: ipc_core::Mode, wait: Wait) -> String {
    let cfg = RunConfig {
        warmup: WARMUP,
        ..RunConfig::new(mode, wait, SIZE, COUNT)
    };
    match (entry.pingpong)(&cfg) {
        Ok(r) => format!(
            "{{\"name\":\"ipc-{} {mode} --wait {}\",\"batch\":{},\"p50_ns\":{},\"p99_ns\":{},\"p999_ns\":{},\"max_ns\":{}}}",
            entry.method,
            wait.as_str(),
            r.batch,
            r.rtt.p50,
            r.rtt.p99,
            r.rtt.p999,
            r.rtt.max
        ),
        Err(e) => format!("{{\"name\":\"ipc-{}\",\"error\":\"{e}\"}}", entry.method),
    }
}

fn main() {
    println!("{}", crossbeam_bounded1());
    println!(
        "{}",
        harness(
            Entry::of::<ipc_channels::Mpsc>(),
            ipc_core::Mode::Thread,
            Wait::Hybrid
        )
    );
    println!("{}", tokio_current_thread(20));
    println!("{}", bare_coroutine(1000));
    println!(
        "{}",
        harness(
            Entry::local::<ipc_coroutines::Coroutine>(),
            ipc_core::Mode::Coroutine,
            Wait::Resume
        )
    );
}
