//! `ipc-semaphores`: the bounded buffer guarded by counting semaphores.

use ipc_harness::MethodInfo;

fn main() {
    let info = MethodInfo {
        binary: "ipc-semaphores",
        about: "Semaphores: a bounded buffer of slots in shared memory, guarded by the counting semaphores empty and full, several producers and consumers",
        long_about: "The textbook producer/consumer: slots in a shared-memory region, a counting \
semaphore empty (free slots) and full (filled slots), both POSIX semaphores inside the region \
(sem_init, process-shared), and a robust process-shared mutex over the slots' states. A producer \
waits on empty, takes a free slot, copies its message in and posts full; a consumer waits on \
full, takes the oldest full slot, copies the message out and posts empty. Each message costs \
the mutex twice and a semaphore each way, so a round trip is four semaphore operations and two \
wake-ups.\n\n\
Done so that a killed process cannot wedge the others: every end is in a table in the region \
with a ledger of what it holds (a token, a slot); a waiter that finds a participant dead, or \
the mutex's owner dead (EOWNERDEAD), frees its slot, reports its message lost (at most one per \
death) and sets the semaphores back to what the slots say. --max-message sets the slot size, \
--capacity the slots' bytes; try the demo with --producers 3 --consumers 2.",
        extension: None,
    };
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::method_main(info) }
}
