//! The one list of every transport of ipc-showcase: each method's binary
//! runs its own entries from it, `ipc-compare` runs them all, and the tests
//! check the comparison against it, so a method cannot be left out of any
//! of them. Adding a method is one line here (see the README's "Adding a
//! method").

use ipc_harness::{Entry, MethodInfo};

pub mod references;
pub mod sockets;

/// Every transport, one line each, grouped by method, each method's
/// default variant first.
pub fn entries() -> Vec<Entry> {
    vec![
        Entry::of::<ipc_pipes::Pipe>(),
        Entry::of::<ipc_pipes::Fifo>(),
        Entry::of::<ipc_signals::Rt>(),
        Entry::of::<ipc_signals::Doorbell>(),
        Entry::of::<ipc_semaphores::Semaphores>(),
        Entry::of::<ipc_sockets::Uds>(),
        Entry::of::<ipc_sockets::Tcp>(),
        Entry::of::<ipc_mqueue::Mqueue>(),
        Entry::with_zero_copy::<ipc_shm::ShmRing>(),
        #[cfg(feature = "shared_memory")]
        Entry::with_zero_copy::<ipc_shm::ShmRingCrate>(),
        Entry::of::<ipc_channels::Mpsc>(),
        Entry::local::<ipc_coroutines::Coroutine>(),
    ]
}

/// The entries of `method` (`pipes`, `shm`, ...), in the list's order.
pub fn entries_of(method: &str) -> Vec<Entry> {
    entries()
        .into_iter()
        .filter(|e| e.method == method)
        .collect()
}

/// The `main` of a method's binary `ipc-<method>`: its entries from the
/// list, run by the harness.
///
/// # Safety
///
/// Call it first in `main`, before any thread starts and before the process
/// opens any fd of its own (see `ipc_harness::main`).
pub unsafe fn method_main(info: MethodInfo) -> ! {
    let method = info.binary.strip_prefix("ipc-").unwrap_or(info.binary);
    let entries = entries_of(method);
    // SAFETY: passed on from our caller.
    unsafe { ipc_harness::main(info, &entries) }
}

/// The `main` of `ipc-compare`: every entry of the list.
///
/// # Safety
///
/// As for [`method_main`].
pub unsafe fn compare_main() -> ! {
    // SAFETY: passed on from our caller.
    unsafe { ipc_harness::compare::main_with_references(&entries(), &references::references()) }
}
