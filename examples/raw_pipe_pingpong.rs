//! The floor for `ipc-pipes pingpong`: a minimal ping-pong over two raw pipes
//! (no framing, no trait, no harness), run beside the same exchange through
//! the `Pipe` transport, in one process pair, in alternating rounds.
//!
//! Run both sides on one CPU, as the README does:
//!
//! ```text
//! taskset -c 0 cargo run --release --example raw_pipe_pingpong
//! ```
//!
//! It prints the median round trip of each and their ratio.

use std::time::Instant;

use ipc_core::{Mode, Options, Receiver, Sender, Transport};
use ipc_pipes::Pipe;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

const SIZE: usize = 64;
const COUNT: usize = 20_000;
const WARMUP: usize = 1_000;
const ROUNDS: usize = 5;

fn main() {
    let mut raw_p50 = Vec::new();
    let mut transport_p50 = Vec::new();
    for _ in 0..ROUNDS {
        raw_p50.push(raw_round());
        transport_p50.push(transport_round());
    }
    let raw = median(&mut raw_p50);
    let ours = median(&mut transport_p50);
    println!(
        "{{\"size\":{SIZE},\"count\":{COUNT},\"rounds\":{ROUNDS},\"raw_p50_ns\":{raw},\"transport_p50_ns\":{ours},\"ratio\":{:.3}}}",
        ours as f64 / raw as f64
    );
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Forks; returns the child's pid in the parent and `None` in the child.
fn fork_child() -> Option<Pid> {
    // SAFETY: this example never starts a thread, so the child of fork() is a
    // faithful copy that may run any code; it leaves through `child_exit`.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => None,
        ForkResult::Parent { child } => Some(child),
    }
}

fn child_exit() -> ! {
    // SAFETY: _exit ends the child without running the parent's destructors
    // or flushing its buffers a second time.
    unsafe { nix::libc::_exit(0) }
}

/// Two pipes, 64-byte writes and reads, nothing else: the reference.
fn raw_round() -> u64 {
    let samples = ipc_baselines::pipe::round_trips(SIZE, COUNT, WARMUP).expect("a raw ping-pong");
    samples[samples.len() / 2]
}

/// The same exchange through the `Pipe` transport (framing, buffered reads).
fn transport_round() -> u64 {
    let opts = Options::default();
    let (mut ping_tx, mut ping_rx) = Pipe::channel(Mode::Process, &opts).expect("channel");
    let (mut pong_tx, mut pong_rx) = Pipe::channel(Mode::Process, &opts).expect("channel");
    let Some(child) = fork_child() else {
        drop(ping_tx);
        drop(pong_rx);
        while let Ok(msg) = ping_rx.recv() {
            if pong_tx.send(msg).is_err() {
                break;
            }
        }
        child_exit();
    };
    drop(ping_rx);
    drop(pong_tx);
    let msg = [7u8; SIZE];
    let mut samples = Vec::with_capacity(COUNT);
    for i in 0..WARMUP + COUNT {
        let t0 = Instant::now();
        ping_tx.send(&msg).expect("send");
        let echo = pong_rx.recv().expect("the child died");
        assert_eq!(echo.len(), SIZE);
        if i >= WARMUP {
            samples.push(t0.elapsed().as_nanos() as u64);
        }
    }
    drop(ping_tx);
    waitpid(child, None).expect("reap the child");
    median(&mut samples)
}
