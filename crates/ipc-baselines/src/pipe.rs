//! The floor under the pipe transport: a ping-pong over two raw pipes,
//! fixed-size `write` and `read`, no framing, no trait, no harness.

use std::os::fd::OwnedFd;
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::unistd::{fork, pipe2, read, write, ForkResult};

/// Reads exactly `buf.len()` bytes; false at EOF or on an error.
fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        match read(fd, &mut buf[got..]) {
            Ok(0) | Err(_) => return false,
            Ok(n) => got += n,
        }
    }
    true
}

/// `count` round trips (after `warmup` untimed ones) of `size`-byte
/// messages between this process and a forked child that echoes them
/// through two pipes; the samples in nanoseconds, sorted. `None` if a pipe
/// or the child could not be made, or the child died.
pub fn round_trips(size: usize, count: usize, warmup: usize) -> Option<Vec<u64>> {
    let (ping_r, ping_w) = pipe2(OFlag::O_CLOEXEC).ok()?;
    let (pong_r, pong_w) = pipe2(OFlag::O_CLOEXEC).ok()?;
    round_trips_over([ping_r, ping_w], [pong_r, pong_w], size, count, warmup)
}

/// The same ping-pong over any two byte streams, each given as its
/// `[reading end, writing end]` (two pipes, two socket pairs): the child
/// reads `ping` and writes `pong`.
pub fn round_trips_over(
    ping: [OwnedFd; 2],
    pong: [OwnedFd; 2],
    size: usize,
    count: usize,
    warmup: usize,
) -> Option<Vec<u64>> {
    let [ping_r, ping_w] = ping;
    let [pong_r, pong_w] = pong;
    // Allocated before the fork: the child must not allocate.
    let mut echo = vec![0u8; size.max(1)];
    // SAFETY: the child runs only async-signal-safe calls (read, write,
    // close, _exit) on memory allocated before the fork, so it is sound
    // even when this process has other threads; it never returns.
    match unsafe { fork() }.ok()? {
        ForkResult::Child => {
            drop((ping_w, pong_r));
            let echo = &mut echo[..size];
            while read_exact(&ping_r, echo) {
                if write(&pong_w, echo).is_err() {
                    break;
                }
            }
            // SAFETY: _exit ends the child without running the parent's
            // destructors or atexit handlers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop((ping_r, pong_w));
            let mut buf = vec![7u8; size];
            let mut samples = Vec::with_capacity(count);
            let mut ok = true;
            for i in 0..warmup + count {
                let t0 = Instant::now();
                if write(&ping_w, &buf).is_err() || !read_exact(&pong_r, &mut buf) {
                    ok = false;
                    break;
                }
                if i >= warmup {
                    samples.push(t0.elapsed().as_nanos() as u64);
                }
            }
            drop(ping_w);
            let _ = nix::sys::wait::waitpid(child, None);
            samples.sort_unstable();
            ok.then_some(samples)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_raw_pipe_ping_pong_times_every_round_trip() {
        let samples = super::round_trips(64, 200, 10).expect("a ping-pong");
        assert_eq!(samples.len(), 200);
        assert!(samples[0] > 0);
    }
}
