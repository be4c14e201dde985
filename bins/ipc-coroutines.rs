//! `ipc-coroutines`: a producer and a consumer coroutine on one thread.

use ipc_harness::MethodInfo;

fn main() {
    let info = MethodInfo {
        binary: "ipc-coroutines",
        about: "Coroutines: a consumer resumed by the producer's send, on one thread",
        long_about: "The consumer is an async state machine polled by hand (no runtime), like a \
Python generator driven by send(): the producer puts a task in a one-message slot and resumes \
the consumer, which handles it and yields back at its next rx.next().await. No kernel, no lock, \
no second thread.\n\n\
Pick it when producer and consumer can take turns on one thread (parsers, pipelines, \
simulations): a hand-off costs a few nanoseconds, so the figures are timed in batches of round \
trips (--batch auto) to keep the clock out of them. Coroutine mode only.",
        extension: None,
    };
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::method_main(info) }
}
