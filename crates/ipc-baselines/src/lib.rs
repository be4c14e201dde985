//! The references each method of ipc-showcase is measured against, in the
//! same run: bare system calls and bare rings, with no project transport in
//! them, so that a ratio says what the transport adds to the mechanism it
//! wraps. `ipc-compare` and the examples run them.
//!
//! - [`shm`]: the atomic floor (two threads, one cache line), single-core
//!   `memcpy`, and a bare two-thread copy ring, for shared memory;
//! - [`pipe`]: a raw pipe ping-pong, for pipes and FIFOs;
//! - [`mqueue`]: a bare blocking `mq_send`/`mq_receive` ping-pong, for
//!   message queues;
//! - [`socket`]: the raw ping-pong over Unix stream sockets and loopback
//!   TCP, for sockets;
//! - [`signal`]: a bare real-time signal ping-pong, for signals;
//! - [`semaphore`]: a bare `sem_post`/`sem_wait` ping-pong between two
//!   processes, for semaphores;
//! - [`channel`]: crossbeam-channel's `bounded(1)` between two threads, for
//!   in-process channels;
//! - [`coroutine`]: a bare hand-polled coroutine, for coroutines.
//!
//! ```
//! let samples = ipc_baselines::shm::atomic_round_trips(1000, 100);
//! println!("atomic floor p50: {} ns", samples[samples.len() / 2]);
//! ```

#[cfg(not(target_os = "linux"))]
compile_error!("ipc-showcase runs on Linux only.");

pub mod channel;
pub mod coroutine;
pub mod mqueue;
pub mod pipe;
pub mod semaphore;
pub mod shm;
pub mod signal;
pub mod socket;
