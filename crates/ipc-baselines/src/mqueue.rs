//! The floor under the message-queue transport: a ping-pong of one
//! blocking `mq_send` and one blocking `mq_receive` each way between this
//! process and a forked child, over two queues unlinked as soon as both
//! sides have them open; no poll, no close notice, no liveness.

use std::time::Instant;

use nix::mqueue::{mq_open, mq_receive, mq_send, mq_unlink, MQ_OFlag, MqAttr, MqdT};
use nix::sys::stat::Mode;

/// A fresh queue for `size`-byte messages, unlinked at once (both
/// processes keep it through their descriptors); non-blocking if `polled`.
fn queue(tag: &str, size: usize, polled: bool) -> Option<MqdT> {
    let name = format!("/ipc-showcase-baseline.{}.{tag}", std::process::id());
    let attr = MqAttr::new(0, 4, size.max(1) as _, 0);
    let nonblock = if polled {
        MQ_OFlag::O_NONBLOCK
    } else {
        MQ_OFlag::empty()
    };
    let q = mq_open(
        &*name,
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR | MQ_OFlag::O_CLOEXEC | nonblock,
        Mode::S_IRUSR | Mode::S_IWUSR,
        Some(&attr),
    )
    .ok();
    let _ = mq_unlink(&*name);
    q
}

/// `count` round trips (after `warmup`) of `size`-byte messages; the
/// samples in nanoseconds, sorted. `None` if a queue or the child could
/// not be made (the size above fs.mqueue.msgsize_max, say), or the child
/// died.
pub fn round_trips(size: usize, count: usize, warmup: usize) -> Option<Vec<u64>> {
    ping_pong(size, count, warmup, false)
}

/// The same with non-blocking queues, each receive preceded by a `poll`
/// for the message with a 50 ms timeout (a timer armed and cancelled on
/// every sleep): what a receiver that waits with a monotonic timeout pays,
/// with nothing else of a transport.
pub fn round_trips_polled(size: usize, count: usize, warmup: usize) -> Option<Vec<u64>> {
    ping_pong(size, count, warmup, true)
}

/// Receives into `buf`, after a `poll` for the message if `polled`.
fn receive(q: &MqdT, buf: &mut [u8], polled: bool) -> nix::Result<usize> {
    use std::os::fd::AsFd;
    if polled {
        let mut fds = [nix::poll::PollFd::new(
            q.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        loop {
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u8)) {
                Ok(0) => {} // the slice ran out: wait again
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let mut prio = 0;
    mq_receive(q, buf, &mut prio)
}

fn ping_pong(size: usize, count: usize, warmup: usize, polled: bool) -> Option<Vec<u64>> {
    let ping = queue("ping", size, polled)?;
    let pong = queue("pong", size, polled)?;
    // Allocated before the fork: the child must not allocate.
    let mut echo = vec![0u8; size.max(1)];
    // SAFETY: the child only calls poll, mq_receive, mq_send and _exit on
    // memory allocated before the fork, none of which take a lock another
    // thread of this process could hold; it never returns.
    match unsafe { nix::unistd::fork() }.ok()? {
        nix::unistd::ForkResult::Child => {
            while let Ok(n) = receive(&ping, &mut echo, polled) {
                if n == 0 || mq_send(&pong, &echo[..n], 0).is_err() {
                    break;
                }
            }
            // SAFETY: ends the child without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let msg = vec![7u8; size.max(1)];
            let mut buf = vec![0u8; size.max(1)];
            let mut samples = Vec::with_capacity(count);
            let mut ok = true;
            for i in 0..warmup + count {
                let t0 = Instant::now();
                if mq_send(&ping, &msg, 0).is_err() || receive(&pong, &mut buf, polled).is_err() {
                    ok = false;
                    break;
                }
                if i >= warmup {
                    samples.push(t0.elapsed().as_nanos() as u64);
                }
            }
            // An empty message tells the child to stop.
            let _ = mq_send(&ping, &[], 0);
            let _ = nix::sys::wait::waitpid(child, None);
            let _ = (nix::mqueue::mq_close(ping), nix::mqueue::mq_close(pong));
            samples.sort_unstable();
            ok.then_some(samples)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_queue_ping_pong_times_every_round_trip() {
        for samples in [
            super::round_trips(64, 200, 10),
            super::round_trips_polled(64, 200, 10),
        ] {
            let samples = samples.expect("a ping-pong");
            assert_eq!(samples.len(), 200);
            assert!(samples[0] > 0);
        }
    }
}
