//! `ipc-compare`: every method on the same work, in one table.

fn main() {
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::compare_main() }
}
