//! iceoryx2, a leading Rust shared-memory library, on the work `ipc-shm`
//! does, in the same run as the atomic floor and `ipc-shm`:
//!
//! - the floor: two threads ping-ponging one 8-byte atomic on its own cache line;
//! - iceoryx2: two threads, publish-subscribe services a->b and b->a
//!   (`ipc::Service`, the inter-process flavour, buffer of 1), each side
//!   copying a 64-byte message into its loaned sample, polling `receive`;
//! - ipc-shm: `pingpong --wait spin --size 64`, process mode, via the harness.
//!
//! All three time one round trip per sample with `Instant`.
//!
//! ```text
//! apt-get install libclang-dev    # iceoryx2 builds its POSIX layer with bindgen
//! cargo run --release --manifest-path baselines/iceoryx2/Cargo.toml
//! ```

use std::time::Instant;

use iceoryx2::prelude::*;
use ipc_harness::{Batch, Entry, RunConfig, Wait};

const SIZE: usize = 64;
const COUNT: usize = 200_000;
const WARMUP: usize = 10_000;

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn iceoryx2_pingpong() -> Result<u64, Box<dyn std::error::Error>> {
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let suffix = std::process::id();
    let service = |name: String| -> Result<_, Box<dyn std::error::Error>> {
        Ok(node
            .service_builder(&ServiceName::new(&name)?)
            .publish_subscribe::<[u8]>()
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .enable_safe_overflow(true)
            .create()?)
    };
    let a2b = service(format!("ipc-showcase-baseline-a2b-{suffix}"))?;
    let b2a = service(format!("ipc-showcase-baseline-b2a-{suffix}"))?;
    let ping = a2b
        .publisher_builder()
        .initial_max_slice_len(SIZE)
        .create()?;
    let pong_rx = b2a.subscriber_builder().create()?;
    let ready = std::sync::Barrier::new(2);
    let samples = std::thread::scope(|scope| -> Result<Vec<u64>, String> {
        let (a2b, b2a, ready) = (&a2b, &b2a, &ready);
        scope.spawn(move || {
            // Ports belong to the thread that made them.
            let ping_rx = a2b.subscriber_builder().create().expect("subscriber");
            let pong = b2a
                .publisher_builder()
                .initial_max_slice_len(SIZE)
                .create()
                .expect("publisher");
            ready.wait();
            for _ in 0..WARMUP + COUNT {
                let msg = loop {
                    match ping_rx.receive() {
                        Ok(Some(sample)) => {
                            let mut buf = [0u8; SIZE];
                            buf.copy_from_slice(sample.payload());
                            break buf;
                        }
                        Ok(None) => std::hint::spin_loop(),
                        Err(e) => panic!("receive: {e:?}"),
                    }
                };
                let sample = pong.loan_slice(SIZE).expect("loan");
                let mut sample = sample;
                sample.payload_mut().copy_from_slice(&msg);
                sample.send().expect("send");
            }
        });
        ready.wait();
        let mut samples = Vec::with_capacity(COUNT);
        let msg = [7u8; SIZE];
        for i in 0..WARMUP + COUNT {
            let t0 = Instant::now();
            let mut sample = ping.loan_slice(SIZE).map_err(|e| format!("{e:?}"))?;
            sample.payload_mut().copy_from_slice(&msg);
            sample.send().map_err(|e| format!("{e:?}"))?;
            loop {
                match pong_rx.receive() {
                    Ok(Some(back)) => {
                        assert_eq!(back.payload(), &msg[..]);
                        break;
                    }
                    Ok(None) => std::hint::spin_loop(),
                    Err(e) => return Err(format!("{e:?}")),
                }
            }
            let t = t0.elapsed().as_nanos() as u64;
            if i >= WARMUP {
                samples.push(t);
            }
        }
        Ok(samples)
    })?;
    Ok(median(samples))
}

fn ipc_shm(shm: &Entry) -> Result<u64, String> {
    let cfg = RunConfig {
        warmup: WARMUP as u64,
        batch: Batch::Fixed(1),
        ..RunConfig::new(ipc_core::Mode::Process, Wait::Spin, SIZE, COUNT as u64)
    };
    (shm.pingpong)(&cfg)
        .map(|r| r.rtt.p50)
        .map_err(|e| e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let shm = Entry::of::<ipc_shm::ShmRing>();
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_harness::run_peer_if_asked(&[shm]) };
    set_log_level(LogLevel::Error);

    let floor = median(ipc_baselines::shm::atomic_round_trips(COUNT, WARMUP));
    let slots = ipc_baselines::shm::slot_ring_round_trips(SIZE, COUNT, WARMUP)
        .map(median)
        .ok_or("the slot ring could not run")?;
    let ice = iceoryx2_pingpong()?;
    let ours = ipc_shm(&shm)?;
    println!(
        "{{\"size\":{SIZE},\"count\":{COUNT},\"floor_p50_ns\":{floor},\"slot_ring_p50_ns\":{slots},\"iceoryx2_p50_ns\":{ice},\"iceoryx2_x_floor\":{:.2},\"ipc_shm_p50_ns\":{ours},\"ipc_shm_x_floor\":{:.2},\"ipc_shm_x_slot_ring\":{:.2},\"iceoryx2_over_ipc_shm\":{:.2},\"cpu\":\"{}\"}}",
        ice as f64 / floor as f64,
        ours as f64 / floor as f64,
        ours as f64 / slots as f64,
        ice as f64 / ours as f64,
        ipc_harness::cpu_model()
    );
    Ok(())
}
