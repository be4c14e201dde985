//! The floors under the sockets transport: the raw pipe ping-pong of
//! [`crate::pipe`] over two Unix domain stream socket pairs, or two
//! loopback TCP connections (`TCP_NODELAY`), one per direction as the
//! harness has them; fixed-size `write` and `read`, no framing, no trait.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

/// A connected Unix stream socket pair, as `[reading end, writing end]`.
fn unix_stream() -> Option<[OwnedFd; 2]> {
    let (w, r) = UnixStream::pair().ok()?;
    Some([r.into(), w.into()])
}

/// A loopback TCP connection with `TCP_NODELAY`, as `[reading end,
/// writing end]`.
fn tcp_stream() -> Option<[OwnedFd; 2]> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    let w = TcpStream::connect(listener.local_addr().ok()?).ok()?;
    let (r, _) = listener.accept().ok()?;
    for s in [&w, &r] {
        s.set_nodelay(true).ok()?;
    }
    Some([r.into(), w.into()])
}

/// `count` round trips (after `warmup`) of `size`-byte messages over Unix
/// stream sockets between this process and a forked child; the samples in
/// nanoseconds, sorted (see [`crate::pipe::round_trips`]).
pub fn unix_round_trips(size: usize, count: usize, warmup: usize) -> Option<Vec<u64>> {
    crate::pipe::round_trips_over(unix_stream()?, unix_stream()?, size, count, warmup)
}

/// The same over loopback TCP.
pub fn tcp_round_trips(size: usize, count: usize, warmup: usize) -> Option<Vec<u64>> {
    crate::pipe::round_trips_over(tcp_stream()?, tcp_stream()?, size, count, warmup)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_socket_ping_pongs_time_every_round_trip() {
        for samples in [
            super::unix_round_trips(64, 200, 10),
            super::tcp_round_trips(64, 200, 10),
        ] {
            let samples = samples.expect("a ping-pong");
            assert_eq!(samples.len(), 200);
            assert!(samples[0] > 0);
        }
    }
}
