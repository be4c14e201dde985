//! `ipc-mqueue`: POSIX message queues.

use ipc_harness::MethodInfo;

fn main() {
    let info = MethodInfo {
        binary: "ipc-mqueue",
        about: "POSIX message queues: the kernel keeps each message whole; one mq_send and one mq_receive a message",
        long_about: "A POSIX message queue (mq_open, 0600) holds whole messages in the kernel, \
each up to the queue's message size, in order of priority: no framing, and a 0-byte message \
is a message. The end of the stream is a close notice at a lower priority than the data, so \
it arrives after everything sent. Waits poll the queue's descriptor on the monotonic clock \
and look at the other process between slices, so a sender blocked on a full queue whose \
receiver died wakes up.\n\n\
Pick a queue for discrete messages between processes with priorities and a kernel-kept \
backlog; mind its limits: fs.mqueue.msgsize_max (8 KiB) and msg_max (10) unless the process \
has CAP_SYS_RESOURCE, and RLIMIT_MSGQUEUE (800 KiB per user) always. --size and --capacity \
are held to them, and an error names the one that refused. The queue is named \
/ipc-showcase.mqueue.<pid>.<start>.<random>; `clean` removes those of dead runs, also where \
/dev/mqueue is not mounted (from the names recorded in $TMPDIR).",
        extension: None,
    };
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::method_main(info) }
}
