//! One side alone: an echo server for framed messages, and the client's
//! connection to one. `ipc-sockets serve` runs [`serve`]; `ipc-sockets
//! pingpong|stream --connect ADDR` measures against it through [`connect`].
//!
//! The server echoes every frame back unchanged (a 4-byte little-endian
//! length, then that many bytes), on many connections at once, each on a
//! thread of its own. It verifies nothing, so a client in any language can
//! use it. A frame longer than the server's maximum closes that connection
//! at once, before anything is allocated for it, with a logged reason; so
//! does a client that says nothing for the idle timeout, and, on a Unix
//! socket, a client of another user. The server keeps serving the others.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::traits::{Listener as _, StreamCommon as _};
use interprocess::local_socket::{ConnectOptions, GenericNamespaced, ToNsName};
use interprocess::os::unix::uds_local_socket::Stream as UdsStream;
use ipc_core::fdstream::{FdReceiver, FdSender};
use ipc_core::framing::HEADER_LEN;
use ipc_core::{Error, Result};

use crate::pair::{check_same_user, uds_listen};

/// Where a server listens, or a client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix domain socket on this abstract name (no file; `@name` and
    /// `name` are the same).
    Uds(String),
    /// A TCP address, `host:port`.
    Tcp(SocketAddr),
}

impl Address {
    /// Reads `addr` for `variant` (`uds` or `tcp`).
    pub fn parse(variant: &str, addr: &str) -> std::result::Result<Address, String> {
        match variant {
            "uds" => {
                let name = addr.strip_prefix('@').unwrap_or(addr);
                if name.is_empty() || name.len() > 100 || name.contains('\0') {
                    return Err(format!(
                        "{addr:?} is not an abstract socket name (1 to 100 bytes, no NUL)"
                    ));
                }
                Ok(Address::Uds(name.to_owned()))
            }
            "tcp" => addr
                .parse()
                .map(Address::Tcp)
                .map_err(|e| format!("{addr:?} is not a TCP address host:port ({e})")),
            other => Err(format!("no socket variant {other:?} (uds or tcp)")),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Uds(name) => write!(f, "@{name}"),
            Address::Tcp(at) => write!(f, "{at}"),
        }
    }
}

/// How a server treats its clients.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// The largest frame it echoes; a longer one closes the connection.
    pub max_message: usize,
    /// How long a client may say nothing before it is dropped.
    pub idle: Duration,
    /// The most connections served at once; more are refused.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_message: 1 << 20,
            idle: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// A listening server, before it serves.
pub struct Server {
    listener: Listening,
    opts: ServeOptions,
    /// Where it listens (with the port the kernel chose for `:0`).
    pub address: Address,
}

enum Listening {
    Uds(interprocess::os::unix::uds_local_socket::Listener),
    Tcp(TcpListener),
}

/// Listens on `at`.
pub fn listen(at: &Address, opts: ServeOptions) -> Result<Server> {
    let (listener, address) = match at {
        Address::Uds(name) => (Listening::Uds(uds_listen(name)?), at.clone()),
        Address::Tcp(addr) => {
            let l =
                TcpListener::bind(addr).map_err(|e| Error::io(format!("listen on {addr}"), e))?;
            let bound = l
                .local_addr()
                .map_err(|e| Error::io("read the listening address", e))?;
            (Listening::Tcp(l), Address::Tcp(bound))
        }
    };
    Ok(Server {
        listener,
        opts,
        address,
    })
}

impl Server {
    /// Serves until the process ends: every connection on a thread of its
    /// own. Connection errors and refusals are logged on stderr; only a
    /// listener that fails ends it.
    pub fn serve(self) -> Result<()> {
        let active = Arc::new(AtomicUsize::new(0));
        loop {
            let (fd, who) = match self.accept() {
                Ok(Some(conn)) => conn,
                Ok(None) => continue,
                Err(e) if is_transient(&e) => {
                    eprintln!("serve: accept failed ({e}); serving on");
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                Err(e) => return Err(Error::io(format!("accept on {}", self.address), e)),
            };
            if active.load(Ordering::Acquire) >= self.opts.max_connections {
                eprintln!(
                    "serve: {who}: refused: {} connections are served already",
                    self.opts.max_connections
                );
                continue;
            }
            active.fetch_add(1, Ordering::AcqRel);
            let (opts, count, name) = (self.opts, Arc::clone(&active), who.clone());
            let spawned = std::thread::Builder::new()
                .name("echo".into())
                .spawn(move || {
                    if let Err(why) = echo(fd, &opts) {
                        eprintln!("serve: {name}: closed: {why}");
                    }
                    count.fetch_sub(1, Ordering::AcqRel);
                });
            if let Err(e) = spawned {
                active.fetch_sub(1, Ordering::AcqRel);
                eprintln!("serve: {who}: refused: no thread for it ({e})");
            }
        }
    }

    /// The next connection and who it is from; `None` for one refused.
    fn accept(&self) -> io::Result<Option<(OwnedFd, String)>> {
        match &self.listener {
            Listening::Uds(l) => {
                let s: UdsStream = l.accept()?;
                let who = match s.peer_creds() {
                    Ok(c) => format!("pid {:?} uid {:?}", c.pid(), c.euid()),
                    Err(_) => "a client".to_owned(),
                };
                if let Err(e) = check_same_user(&s, "the client") {
                    eprintln!("serve: {who}: refused: {e}");
                    return Ok(None);
                }
                Ok(Some((s.into(), who)))
            }
            Listening::Tcp(l) => {
                let (s, from) = l.accept()?;
                s.set_nodelay(true)?;
                Ok(Some((s.into(), from.to_string())))
            }
        }
    }
}

/// Errors of `accept` that concern one connection, the network or a
/// passing shortage, not the listener (accept(2) asks to retry on the
/// network's errors): all but a listener that is no listener.
fn is_transient(e: &io::Error) -> bool {
    !matches!(
        e.raw_os_error(),
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EFAULT)
    )
}

/// Echoes frames on `fd` until the client closes; `Err` says why the
/// server closed it.
fn echo(fd: OwnedFd, opts: &ServeOptions) -> std::result::Result<(), String> {
    let idle = nix::sys::time::TimeVal::new(
        opts.idle.as_secs().min(i64::MAX as u64) as i64,
        // At least a microsecond: a zero timeout would mean none at all.
        i64::from(opts.idle.subsec_micros()).max(i64::from(opts.idle.as_secs() == 0)),
    );
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(&fd.as_fd(), sockopt::ReceiveTimeout, &idle)
        .map_err(|e| format!("set the idle timeout: {e}"))?;
    // The same limit on writes: a client that sends and never reads must
    // not hold its thread for ever.
    setsockopt(&fd.as_fd(), sockopt::SendTimeout, &idle)
        .map_err(|e| format!("set the write timeout: {e}"))?;
    let mut conn = std::fs::File::from(fd);
    let mut body = Vec::new();
    loop {
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut conn, &mut header, opts) {
            Ok(0) => return Ok(()), // closed between frames
            Ok(n) if n < HEADER_LEN => {
                return Err(format!(
                    "the client closed after {n} bytes of a frame header"
                ))
            }
            Ok(_) => {}
            Err(why) => return Err(why),
        }
        let len = u32::from_le_bytes(header) as usize;
        if len > opts.max_message {
            return Err(format!(
                "a frame of {len} bytes, above this server's largest ({} bytes, --max-message)",
                opts.max_message
            ));
        }
        // The body grows as its bytes arrive: a header alone makes the
        // server allocate nothing.
        body.clear();
        while body.len() < len {
            let at = body.len();
            body.resize(len.min(at + CHUNK), 0);
            let got = read_full(&mut conn, &mut body[at..], opts)?;
            if at + got < body.len() {
                return Err(format!(
                    "the client closed {} bytes into a {len}-byte frame",
                    at + got
                ));
            }
        }
        conn.write_all(&header)
            .and_then(|()| conn.write_all(&body))
            .map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                    format!("the client took no echo for {:?}", opts.idle)
                }
                _ => format!("write the echo: {e}"),
            })?;
    }
}

/// How much of a frame's body is read (and allocated) at a time.
const CHUNK: usize = 64 << 10;

/// Reads until `buf` is full or the stream ends; returns how much it read.
fn read_full(
    conn: &mut std::fs::File,
    buf: &mut [u8],
    opts: &ServeOptions,
) -> std::result::Result<usize, String> {
    let mut got = 0;
    while got < buf.len() {
        match conn.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("the client said nothing for {:?}", opts.idle))
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    Ok(got)
}

/// Connects to an echo server at `at`: the framed ends to measure with (a
/// sender and a receiver on one socket; dropping the sender shuts its
/// direction down). On a Unix socket, a server of another user is refused.
pub fn connect(at: &Address, max_message: usize) -> Result<(FdSender, FdReceiver)> {
    let fd: OwnedFd = match at {
        Address::Uds(name) => {
            let ns_name = name
                .as_str()
                .to_ns_name::<GenericNamespaced>()
                .map_err(|e| Error::io(format!("name the socket @{name}"), e))?;
            let s: UdsStream = ConnectOptions::new()
                .name(ns_name)
                .connect_sync_as()
                .map_err(|e| Error::io(format!("connect to @{name}"), e))?;
            check_same_user(&s, "the server")?;
            s.into()
        }
        Address::Tcp(addr) => {
            let s =
                TcpStream::connect(addr).map_err(|e| Error::io(format!("connect to {addr}"), e))?;
            s.set_nodelay(true)
                .map_err(|e| Error::io("set TCP_NODELAY", e))?;
            s.into()
        }
    };
    let second = fd
        .try_clone()
        .map_err(|e| Error::io("duplicate the connection's fd", e))?;
    Ok((
        FdSender::new(fd, max_message)?.shutdown_on_drop(),
        FdReceiver::new(second, max_message),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_core::{Receiver, Sender};

    fn start(at: Address, opts: ServeOptions) -> Address {
        let server = listen(&at, opts).expect("listen");
        let address = server.address.clone();
        std::thread::spawn(move || server.serve());
        address
    }

    #[test]
    fn addresses_parse_and_nonsense_is_refused() {
        assert_eq!(Address::parse("uds", "@x"), Ok(Address::Uds("x".into())));
        assert!(Address::parse("uds", "").is_err());
        assert!(Address::parse("tcp", "127.0.0.1:80").is_ok());
        assert!(Address::parse("tcp", "nowhere").is_err());
        assert!(Address::parse("udp", "x").is_err());
    }

    #[test]
    fn both_servers_echo_every_frame_to_several_clients() {
        let uds = Address::Uds(ipc_core::names::unique_name("sockets"));
        let tcp = Address::parse("tcp", "127.0.0.1:0").expect("addr");
        for at in [uds, tcp] {
            let at = start(at, ServeOptions::default());
            let clients: Vec<_> = (0..4)
                .map(|c| {
                    let at = at.clone();
                    std::thread::spawn(move || {
                        let (mut tx, mut rx) = connect(&at, 1 << 16).expect("connect");
                        for i in 0..50usize {
                            let msg = vec![(c * 50 + i) as u8; i * 37];
                            tx.send(&msg).expect("send");
                            assert_eq!(rx.recv().expect("echo"), &msg[..]);
                        }
                    })
                })
                .collect();
            for c in clients {
                c.join().expect("a client");
            }
        }
    }

    #[test]
    fn a_lying_length_closes_that_connection_and_the_server_serves_on() {
        let at = start(
            Address::parse("tcp", "127.0.0.1:0").expect("addr"),
            ServeOptions::default(),
        );
        let Address::Tcp(addr) = at.clone() else {
            unreachable!()
        };
        let mut liar = TcpStream::connect(addr).expect("connect");
        liar.write_all(&u32::MAX.to_le_bytes()).expect("write");
        let mut rest = Vec::new();
        liar.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        assert_eq!(
            liar.read_to_end(&mut rest).expect("closed, not timed out"),
            0
        );
        let (mut tx, mut rx) = connect(&at, 64).expect("the next client");
        tx.send(b"still here").expect("send");
        assert_eq!(rx.recv().expect("echo"), b"still here");
    }

    /// A TCP echo server on loopback that drops a client idle for `idle`.
    fn tcp_server_idle_after(idle: Duration) -> std::net::SocketAddr {
        let opts = ServeOptions {
            idle,
            ..ServeOptions::default()
        };
        let at = start(Address::parse("tcp", "127.0.0.1:0").expect("addr"), opts);
        let Address::Tcp(addr) = at else {
            unreachable!("a TCP address was asked for")
        };
        addr
    }

    #[test]
    fn a_client_that_says_nothing_is_dropped_after_the_idle_time() {
        let addr = tcp_server_idle_after(Duration::from_millis(200));
        let mut quiet = TcpStream::connect(addr).expect("connect");
        quiet
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        assert_eq!(
            quiet.read_to_end(&mut rest).expect("closed by the server"),
            0
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn a_client_that_sends_and_never_reads_is_dropped_after_the_idle_time() {
        let addr = tcp_server_idle_after(Duration::from_millis(200));
        let mut hog = TcpStream::connect(addr).expect("connect");
        hog.set_write_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let frame = [&(60_000u32).to_le_bytes()[..], &[7u8; 60_000]].concat();
        // Echoes pile up unread until the server's writes block; then it
        // gives up on the client and closes, and our writes fail with a
        // reset, not with our own time-out.
        let err = loop {
            if let Err(e) = hog.write_all(&frame) {
                break e;
            }
        };
        assert!(
            !matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "the server never closed: {err}"
        );
    }
}
