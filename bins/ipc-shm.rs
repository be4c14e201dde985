//! `ipc-shm`: a shared-memory ring between two processes.

use ipc_harness::MethodInfo;

fn main() {
    let info = MethodInfo {
        binary: "ipc-shm",
        about: "Shared memory: a lock-free ring between two processes, no system call per message",
        long_about:
            "Both processes map the same memory (/dev/shm/ipc-showcase.shm.*): the producer copies \
a message into a single-producer single-consumer ring and publishes its header with one atomic \
swap; the consumer sees the header and copies the message out. Moving a message costs the \
cache lines it occupies travelling between the cores; the kernel is only needed to sleep and \
wake (a futex in the region).\n\n\
Pick it when latency or bandwidth between processes matters most. What it costs: the ring's \
memory, code that must trust nothing in the region, and a choice of waiting: --wait spin (the \
floor, one core burnt per waiting side), block (futex: no CPU while idle, a wake-up per message), \
hybrid (spin briefly, then sleep). Variant ring is our own region; ring-shared_memory (cargo \
feature shared_memory) maps it with the shared_memory crate.",
        extension: None,
    };
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::method_main(info) }
}
