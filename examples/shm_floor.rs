//! The floors under `ipc-shm`, measured beside it in one run, each line
//! naming the CPU model:
//!
//! - latency: the atomic floor (two threads ping-ponging one 8-byte atomic
//!   on its own cache line), then at 8 and at 64 bytes the plain slot ring
//!   (`ipc_baselines::shm::slot_ring_round_trips`, the yardstick) and
//!   `ipc-shm pingpong --wait spin --batch 1` in process mode, all timed one
//!   round trip per sample, in rounds (each round measures all of them
//!   again), with the median of the rounds' ratios to the slot ring. The
//!   slot ring runs before and after ipc-shm, and a round's ratio (to their
//!   mean) counts only when the two agree within 10%: the vCPUs of a
//!   shared VM move from minute to minute, and a ratio across a move
//!   measures the move;
//!   ipc-shm runs with `--verify seq`, which checks what the slot ring
//!   checks (the length and the first 8 bytes, the message's number), with
//!   `--verify full` (every byte), and zero-copy (`--verify seq
//!   --zero-copy`) beside it;
//! - bandwidth: single-core `memcpy` of 64 KiB messages out of a ring-sized
//!   buffer, and the barest copy ring between two threads (what the cores
//!   and caches allow), next to `ipc-shm stream` at 64 KiB with `--verify
//!   seq` and `full`, copying and zero-copy (`--zero-copy`), in rounds as
//!   well, with the medians of the rounds' ratios that the goals use (each
//!   stream with a goal against the bare ring runs between two runs of it,
//!   and counts when they agree within 15%).
//!
//! ```text
//! cargo run --release --example shm_floor
//! cargo run --release --example shm_floor -- --latency   # the first part only
//! cargo run --release --example shm_floor -- --bandwidth # the second part only
//! (both flags, or neither, run both parts)
//! cargo run --release --example shm_floor -- --rounds 9   # rounds of each part (5)
//! ```

use std::io::Write;

use ipc_baselines::shm as floor;
use ipc_core::Mode;
use ipc_harness::{Batch, Entry, RunConfig, Verify, Wait};

const COUNT: u64 = 200_000;
const WARMUP: u64 = 10_000;

/// ipc-shm's ping-pongs at each size: `--verify seq` (what the slot ring
/// checks), `--verify full` (every byte), and `--verify seq --zero-copy`
/// (each message made and checked in place, each echo copied from the
/// view it came in into the ring it goes out on).
const PINGPONGS: [(Verify, bool); 3] = [
    (Verify::Seq, false),
    (Verify::Full, false),
    (Verify::Seq, true),
];

/// How far the slot ring measured after ipc-shm may lie from the one
/// measured before it (a share of their mean) for the round's ratios to
/// count: further apart, the vCPUs moved between the runs, and a ratio
/// across that move measures the move. 10% lets one step of this
/// machine's 10 ns clock pass at 130 ns.
const LATENCY_MOVE: f64 = 0.10;

/// The same for the bare copy ring around ipc-shm's streams, whose
/// bandwidth swings more from run to run even where the vCPUs stay put.
const BANDWIDTH_MOVE: f64 = 0.15;

/// Whether two measurements of the same reference agree within `share` of
/// their mean (the vCPUs did not move between them).
fn steady(before: f64, after: f64, share: f64) -> bool {
    (before - after).abs() <= share * (before + after) / 2.0
}

fn config(size: usize, count: u64, wait: Wait, verify: Verify) -> RunConfig {
    RunConfig {
        warmup: WARMUP.min(count),
        batch: Batch::Fixed(1),
        verify,
        ..RunConfig::new(Mode::Process, wait, size, count)
    }
}

/// Prints a line of results; when nobody reads them any more (`| head`),
/// returns `None` from the part that prints, which ends the run quietly
/// instead of panicking on the closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        if writeln!(std::io::stdout(), $($arg)*).is_err() {
            return None;
        }
    };
}

fn main() {
    let shm = Entry::with_zero_copy::<ipc_shm::ShmRing>();
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_harness::run_peer_if_asked(&[shm]) };
    ipc_harness::remove_objects_on_interrupt();

    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse::<usize>().ok())
        .unwrap_or(5)
        .max(1);
    let cpu = ipc_harness::cpu_model();
    // Either flag alone runs its part alone; neither, or both, run both.
    let latency_flag = args.iter().any(|a| a == "--latency");
    let bandwidth_flag = args.iter().any(|a| a == "--bandwidth");
    let both = latency_flag == bandwidth_flag;
    if (both || latency_flag) && latency(&shm, rounds, &cpu).is_none() {
        return;
    }
    if both || bandwidth_flag {
        let _ = bandwidth(&shm, rounds, &cpu);
    }
}

/// The median of the rounds that measured (a failed run leaves none of its
/// ratios), as a JSON number, or null when no round did.
fn median(v: &mut Vec<f64>) -> String {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    number(v.get(v.len() / 2).copied().unwrap_or(f64::NAN))
}

/// A ratio as a JSON number, or null where a run failed (not finite).
fn number(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "null".to_owned()
    }
}

/// The first part: the atomic floor, the slot ring and ipc-shm's ping-pong
/// at 8 and 64 bytes, in `rounds` rounds; `None` when stdout closed.
fn latency(shm: &Entry, rounds: usize, cpu: &str) -> Option<()> {
    // Each round measures the floor, then at each size the slot ring and
    // ipc-shm, so that a ratio never spans a move of the vCPUs; the median
    // of the rounds' ratios closes the list.
    // [size][run]: 8 and 64 bytes; seq, full and seq zero-copy.
    let mut ratios: [[Vec<f64>; 3]; 2] = Default::default();
    for round in 1..=rounds {
        let samples = floor::atomic_round_trips(COUNT as usize, WARMUP as usize);
        let floor_p50 = samples[samples.len() / 2];
        out!("{{\"round\":{round},\"name\":\"atomic ping-pong between two threads (floor)\",\"p50_ns\":{floor_p50},\"p99_ns\":{},\"cpu\":\"{cpu}\"}}", samples[samples.len() * 99 / 100]);
        for (i, size) in [8, 64].into_iter().enumerate() {
            // The slot ring before and after ipc-shm: the ratios use their
            // mean, and only when the two agree (the vCPUs stayed put).
            let slot = |when: &str| -> Option<Option<u64>> {
                let Some(slots) =
                    floor::slot_ring_round_trips(size, COUNT as usize, WARMUP as usize)
                else {
                    out!("{{\"name\":\"slot ring --size {size}\",\"error\":\"a message came back wrong\",\"cpu\":\"{cpu}\"}}");
                    return Some(None);
                };
                let p50 = slots[slots.len() / 2];
                out!(
                    "{{\"round\":{round},\"name\":\"plain slot ring between two threads --size {size} ({when})\",\"p50_ns\":{p50},\"p99_ns\":{},\"x_floor\":{:.2},\"cpu\":\"{cpu}\"}}",
                    slots[slots.len() * 99 / 100],
                    p50 as f64 / floor_p50 as f64,
                );
                Some(Some(p50))
            };
            let Some(before) = slot("before")? else {
                continue;
            };
            let mut p50s = [0u64; 3];
            for (j, (verify, zero_copy)) in PINGPONGS.into_iter().enumerate() {
                let how = format!(
                    "{}{}",
                    verify.as_str(),
                    if zero_copy { " --zero-copy" } else { "" }
                );
                let cfg = RunConfig {
                    zero_copy,
                    ..config(size, COUNT, Wait::Spin, verify)
                };
                match (shm.pingpong)(&cfg) {
                    Ok(r) => {
                        p50s[j] = r.rtt.p50;
                        out!(
                            "{{\"round\":{round},\"name\":\"ipc-shm pingpong --wait spin --verify {how} --size {size}\",\"p50_ns\":{},\"p99_ns\":{},\"x_floor\":{:.2},\"x_slot_ring_before\":{:.2},\"cpu\":\"{cpu}\"}}",
                            r.rtt.p50, r.rtt.p99, r.rtt.p50 as f64 / floor_p50 as f64,
                            r.rtt.p50 as f64 / before as f64,
                        )
                    }
                    Err(e) => out!(
                        "{{\"name\":\"ipc-shm --verify {how} --size {size}\",\"error\":\"{e}\",\"cpu\":\"{cpu}\"}}"
                    ),
                }
            }
            let Some(after) = slot("after")? else {
                continue;
            };
            let reference = (before + after) as f64 / 2.0;
            let held = steady(before as f64, after as f64, LATENCY_MOVE);
            // A failed run (no p50) has no ratio.
            let x = p50s.map(|p50| {
                if p50 > 0 {
                    p50 as f64 / reference
                } else {
                    f64::NAN
                }
            });
            if held {
                for (r, x) in ratios[i].iter_mut().zip(x) {
                    r.push(x);
                }
            }
            out!(
                "{{\"round\":{round},\"name\":\"ipc-shm / slot ring --size {size}\",\"slot_ring_ns\":{reference:.1},\"x_slot_ring\":{},\"x_slot_ring_verify_full\":{},\"x_slot_ring_zero_copy\":{},\"counted\":{held},\"cpu\":\"{cpu}\"}}",
                number(x[0]),
                number(x[1]),
                number(x[2]),
            );
        }
    }
    let counted = [ratios[0][0].len(), ratios[1][0].len()];
    let [[mut seq8, mut full8, mut zc8], [mut seq64, mut full64, mut zc64]] = ratios;
    out!(
        "{{\"name\":\"median of the rounds whose slot ring held, ipc-shm / slot ring\",\"rounds\":{rounds},\"counted_8\":{},\"counted_64\":{},\"x_slot_ring_8\":{},\"x_slot_ring_64\":{},\"x_slot_ring_8_verify_full\":{},\"x_slot_ring_64_verify_full\":{},\"x_slot_ring_8_zero_copy\":{},\"x_slot_ring_64_zero_copy\":{},\"cpu\":\"{cpu}\"}}",
        counted[0],
        counted[1],
        median(&mut seq8),
        median(&mut seq64),
        median(&mut full8),
        median(&mut full64),
        median(&mut zc8),
        median(&mut zc64)
    );
    Some(())
}

/// The second part: bandwidth at 64 KiB, in `rounds` rounds as well;
/// `None` when stdout closed.
fn bandwidth(shm: &Entry, rounds: usize, cpu: &str) -> Option<()> {
    // Bandwidth, in rounds as well: each round measures memcpy, then
    // ipc-shm's four ways, the two that have a goal against the bare copy
    // ring each between two runs of it, and the medians of the rounds'
    // ratios close the list (one measurement of each swings with the
    // placement as much as the ratios it is meant to show).
    const SIZE: usize = 64 << 10;
    const SMALL_RING: usize = 256 << 10;
    // The defaults (blocking waits, a 4 MiB ring) against the bare ring of
    // the same size, then both sides awake with a ring that stays in the
    // caches (256 KiB) against its bare ring, then zero-copy: (wait,
    // capacity, verify, zero-copy, the bare ring around it and the goal's
    // index in `bw_ratios`).
    let runs = [
        (
            Wait::Block,
            None,
            Verify::Seq,
            false,
            Some((ipc_shm::DEFAULT_RING, 0)),
        ),
        (Wait::Block, None, Verify::Full, false, None),
        (
            Wait::Spin,
            Some(SMALL_RING),
            Verify::Seq,
            false,
            Some((SMALL_RING, 1)),
        ),
        (Wait::Block, None, Verify::Full, true, None),
    ];
    // Per round: stream seq / bare ring (4 MiB), spin seq / bare ring
    // (256 KiB), zero-copy full / copied full.
    let mut bw_ratios = [Vec::new(), Vec::new(), Vec::new()];
    for round in 1..=rounds {
        let memcpy = floor::memcpy_bandwidth(SIZE, ipc_shm::DEFAULT_RING, 20_000);
        out!("{{\"round\":{round},\"name\":\"memcpy 64 KiB, one core\",\"bytes_per_s\":{memcpy:.0},\"cpu\":\"{cpu}\"}}");
        let bare_ring = |ring: usize, when: &str| -> Option<f64> {
            let name = format!(
                "bare copy ring, two threads, 64 KiB, {} KiB ring ({when})",
                ring >> 10
            );
            match floor::copy_ring_bandwidth(SIZE, ring, 20_000) {
                Some(b) => {
                    out!(
                        "{{\"round\":{round},\"name\":\"{name}\",\"bytes_per_s\":{b:.0},\"x_memcpy\":{:.2},\"cpu\":\"{cpu}\"}}",
                        b / memcpy
                    );
                    Some(b)
                }
                None => {
                    out!("{{\"name\":\"{name}\",\"error\":\"a message arrived wrong\"}}");
                    Some(f64::NAN)
                }
            }
        };
        let mut got = [f64::NAN; 4];
        for (k, (wait, capacity, verify, zero_copy, bare)) in runs.into_iter().enumerate() {
            // The bare ring before and after the run: its ratio uses their
            // mean, and counts only when the two agree.
            let before = match bare {
                Some((ring, _)) => bare_ring(ring, "before")?,
                None => f64::NAN,
            };
            let mut cfg = config(SIZE, 20_000, wait, verify);
            cfg.capacity = capacity;
            cfg.zero_copy = zero_copy;
            let name = format!(
                "ipc-shm stream --size 65536 --wait {} --verify {}{}{}",
                wait.as_str(),
                verify.as_str(),
                capacity
                    .map(|c| format!(" --capacity {c}"))
                    .unwrap_or_default(),
                if zero_copy { " --zero-copy" } else { "" }
            );
            match (shm.stream)(&cfg) {
                Ok(r) => {
                    got[k] = r.bytes_per_s;
                    out!(
                        "{{\"round\":{round},\"name\":\"{name}\",\"bytes_per_s\":{:.0},\"x_memcpy\":{:.2},\"cpu\":\"{cpu}\"}}",
                        r.bytes_per_s,
                        r.bytes_per_s / memcpy
                    )
                }
                Err(e) => out!("{{\"name\":\"{name}\",\"error\":\"{e}\"}}"),
            }
            let Some((ring, goal)) = bare else { continue };
            let after = bare_ring(ring, "after")?;
            let held = steady(before, after, BANDWIDTH_MOVE);
            let ratio = 2.0 * got[k] / (before + after);
            if held {
                bw_ratios[goal].push(ratio);
            }
            out!(
                "{{\"round\":{round},\"name\":\"{name} / bare copy ring, {} KiB ring\",\"x_bare_ring\":{},\"counted\":{held},\"cpu\":\"{cpu}\"}}",
                ring >> 10,
                number(ratio)
            );
        }
        bw_ratios[2].push(got[3] / got[1]);
    }
    let counted = [bw_ratios[0].len(), bw_ratios[1].len()];
    let [mut seq, mut spin, mut zero_copy] = bw_ratios;
    out!(
        "{{\"name\":\"median of the rounds whose bare ring held (zero-copy: of all {rounds})\",\"rounds\":{rounds},\"counted_seq\":{},\"counted_spin\":{},\"stream_seq_x_bare_ring\":{},\"stream_spin_256k_x_bare_ring_256k\":{},\"zero_copy_full_x_copy_full\":{},\"cpu\":\"{cpu}\"}}",
        counted[0],
        counted[1],
        median(&mut seq),
        median(&mut spin),
        median(&mut zero_copy)
    );
    Some(())
}
