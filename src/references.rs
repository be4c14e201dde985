//! The references `ipc-compare` measures beside the methods: the bare
//! mechanism each method wraps, from the references crate, and the rows it
//! stands beside (by `method/variant`).

use ipc_core::{Mode, Transport};
use ipc_harness::compare::Reference;
use ipc_harness::Wait;

/// Any size: the mechanism carries no payload (a signal, a semaphore post),
/// or carries whatever it is given.
const ANY: usize = usize::MAX;

/// Every reference, each listed before any other that stands beside the
/// same rows at a size it covers too (a row's ratio is to the first).
pub fn references() -> Vec<Reference> {
    vec![
        Reference {
            name: "raw-pipe",
            about: "two pipes between two processes, 64-byte write and read, no framing",
            boundary: Mode::Process,
            wait: Wait::Block,
            beside: &["pipes/pipe", "pipes/fifo"],
            max_size: ANY,
            run: ipc_baselines::pipe::round_trips,
        },
        Reference {
            name: "raw-rt-signal",
            about: "one real-time signal each way between two processes",
            boundary: Mode::Process,
            wait: Wait::Block,
            beside: &["signals/rt", "signals/doorbell"],
            max_size: ANY,
            run: |_, count, warmup| ipc_baselines::signal::round_trips(count, warmup),
        },
        Reference {
            name: "raw-semaphore",
            about: "one sem_post each way between two processes",
            boundary: Mode::Process,
            wait: Wait::Block,
            beside: &["semaphores/posix"],
            max_size: ANY,
            run: |_, count, warmup| ipc_baselines::semaphore::round_trips(count, warmup),
        },
        Reference {
            name: "raw-unix-socket",
            about: "two Unix stream socket pairs between two processes, no framing",
            boundary: Mode::Process,
            wait: Wait::Block,
            beside: &["sockets/uds"],
            max_size: ANY,
            run: ipc_baselines::socket::unix_round_trips,
        },
        Reference {
            name: "raw-tcp",
            about: "two loopback TCP connections between two processes, no framing",
            boundary: Mode::Process,
            wait: Wait::Block,
            beside: &["sockets/tcp"],
            max_size: ANY,
            run: ipc_baselines::socket::tcp_round_trips,
        },
        Reference {
            name: "raw-mqueue",
            about: "blocking mq_send and mq_receive between two processes",
            boundary: Mode::Process,
            wait: Wait::Block,
            beside: &["mqueue/posix"],
            max_size: ipc_mqueue::Mqueue::message_limit().bytes,
            run: ipc_baselines::mqueue::round_trips,
        },
        Reference {
            name: "slot-ring",
            about: "the plain slot ring between two threads (128-byte slots), spinning",
            boundary: Mode::Thread,
            wait: Wait::Spin,
            beside: &["shm/ring", "shm/ring-shared_memory"],
            max_size: ipc_baselines::shm::SLOT_PAYLOAD,
            run: ipc_baselines::shm::slot_ring_round_trips,
        },
        Reference {
            name: "atomic-floor",
            about: "one 8-byte atomic on its own cache line between two threads, spinning",
            boundary: Mode::Thread,
            wait: Wait::Spin,
            beside: &["shm/ring", "shm/ring-shared_memory"],
            max_size: 8,
            run: |_, count, warmup| Some(ipc_baselines::shm::atomic_round_trips(count, warmup)),
        },
        Reference {
            name: "crossbeam-bounded1",
            about: "crossbeam-channel bounded(1) between two threads, blocking recv",
            boundary: Mode::Thread,
            wait: Wait::Block,
            beside: &["channels/mpsc"],
            max_size: ANY,
            run: ipc_baselines::channel::crossbeam_round_trips,
        },
        Reference {
            name: "bare-coroutine",
            about: "a hand-polled coroutine handed an 8-byte value (batches of 100)",
            boundary: Mode::Coroutine,
            wait: Wait::Resume,
            beside: &["coroutines/async"],
            max_size: ANY,
            run: |_, count, warmup| {
                let samples = ipc_baselines::coroutine::switches(count as u64, warmup as u64, 100);
                Some(samples.iter().map(|s| s.round().max(1.0) as u64).collect())
            },
        },
    ]
}
