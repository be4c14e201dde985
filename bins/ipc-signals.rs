//! `ipc-signals`: real-time signals as a data path, and as a doorbell.

use ipc_harness::MethodInfo;

fn main() {
    let info = MethodInfo {
        binary: "ipc-signals",
        about: "Signals: real-time signals carrying 8 bytes each (rt), or waking the shm ring's receiver (doorbell)",
        long_about: "A real-time signal carries one 8-byte value (si_value) and is queued in order with the \
others of its number. Variant rt sends every message as signals, 8 bytes each, to the peer \
process through its pidfd (or to the receiving thread), which takes them with sigtimedwait \
while they are blocked: a system call per 8 bytes on each side, so it shows what a signal \
costs per byte, and it stops at 64 KiB. Variant doorbell moves the messages through ipc-shm's \
ring and sends a signal only to wake a receiver that announced it sleeps, in place of the \
futex: this is what signals are for in real programs.\n\n\
Pick signals to wake a process (a doorbell, a reload, a stop), not to carry data. What they \
cost: every queued signal of a user counts against RLIMIT_SIGPENDING, a real-time signal that \
no thread blocks kills the process (this binary blocks the data signals first thing), and \
si_pid, the only sender check, can be forged by any process of the same user.",
        extension: None,
    };
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::method_main(info) }
}
