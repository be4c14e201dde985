//! `ipc-pipes`: anonymous pipes and named FIFOs, run and measured.

use ipc_harness::MethodInfo;

fn main() {
    let info = MethodInfo {
        binary: "ipc-pipes",
        about: "Pipes and FIFOs: a one-way byte stream through the kernel",
        long_about:
            "A pipe is the oldest IPC there is: two fds, bytes in one end and out the other, \
in order, through a kernel buffer (64 KiB by default). Messages are framed as a 4-byte \
little-endian length and the payload. Variant pipe is an anonymous pipe handed to the child \
process; fifo is a named pipe (mkfifo, mode 0600) that each side opens by path.\n\n\
Pick it for a parent talking to its child, or for shell-like plumbing: it needs no naming, no \
cleanup (pipe) and every language can use it. Each message costs a write and a read system call \
on each side, plus a wake-up of the reader when it sleeps.",
        extension: None,
    };
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::method_main(info) }
}
