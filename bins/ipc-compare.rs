//! `ipc-compare`: every method on the same work, in one table.

use ipc_harness::Entry;

/// Every transport of the project, one line each.
fn transports() -> Vec<Entry> {
    vec![
        Entry::of::<ipc_pipes::Pipe>(),
        Entry::of::<ipc_pipes::Fifo>(),
        Entry::of::<ipc_shm::ShmRing>(),
        #[cfg(feature = "shared_memory")]
        Entry::of::<ipc_shm::ShmRingCrate>(),
        Entry::of::<ipc_channels::Mpsc>(),
        Entry::local::<ipc_coroutines::Coroutine>(),
    ]
}

fn main() {
    ipc_harness::compare::main(&transports())
}
