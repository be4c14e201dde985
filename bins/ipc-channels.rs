//! `ipc-channels`: two threads of one process, through `std::sync::mpsc`.

use ipc_harness::MethodInfo;

fn main() {
    let info = MethodInfo {
        binary: "ipc-channels",
        about: "In-process channels: two threads handing messages over through std::sync::mpsc",
        long_about:
            "Threads share one heap, so a message can be handed over in memory: the sender \
puts an owned buffer in a queue (std's channel is the crossbeam design) and the receiver takes it; \
the kernel is involved only to put a waiting thread to sleep and wake it.\n\n\
Pick it whenever producer and consumer can live in one process: it is the cheapest safe \
hand-off between threads. What it costs is the wake-up of a sleeping receiver (tens of \
microseconds on a virtual CPU that halts when idle); --wait hybrid or spin keeps the receiver \
awake while messages flow. Several producers may share one channel (stream --producers 4), \
each producer's messages arriving in its order. Thread mode only.",
        extension: None,
    };
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::method_main(info) }
}
