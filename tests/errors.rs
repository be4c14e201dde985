//! Bad input on purpose, through the library: a corrupt length header (and
//! what it allocates), an oversize message, endpoints that name nothing or
//! fds this process does not own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};

use ipc_core::{Endpoint, Error, Handover, Mode, Options, Receiver, Sender, Transport};
use ipc_pipes::{Fifo, Pipe};

/// Counts the bytes the current thread allocates while `COUNTING` is set
/// (per thread: the other tests run on other threads meanwhile).
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    if COUNTING.with(Cell::get) {
        ALLOCATED.with(|a| a.set(a.get() + bytes));
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counting only reads a thread-local flag and bumps an atomic.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: passed on from our caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: passed on from our caller.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: passed on from our caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: passed on from our caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The bytes this thread allocates while running `f`.
fn allocated_by<R>(f: impl FnOnce() -> R) -> (R, usize) {
    COUNTING.with(|c| c.set(true));
    let before = ALLOCATED.with(Cell::get);
    let r = f();
    let after = ALLOCATED.with(Cell::get);
    COUNTING.with(|c| c.set(false));
    (r, after - before)
}

#[test]
fn a_corrupt_length_header_is_a_clear_error_and_allocates_nothing_for_it() {
    for max in [1000usize, 1 << 20] {
        let (tx, mut rx) =
            Pipe::channel(Mode::Thread, &Options::default().max_message(max)).expect("pipe");
        // SAFETY: the fd comes from the sender we just took apart; File owns it now.
        let mut raw =
            unsafe { std::fs::File::from_raw_fd(tx.into_fd().expect("fd").into_raw_fd()) };
        raw.write_all(&u32::MAX.to_le_bytes())
            .expect("write a bogus header");
        let (result, bytes) = allocated_by(|| rx.recv().map(<[u8]>::len));
        match result {
            Err(e @ Error::Corrupt(_)) => {
                let text = e.to_string();
                assert!(
                    text.contains("4294967295 bytes")
                        && text.contains(&format!("maximum of {max}")),
                    "{text}"
                );
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        // The error's text, nothing like the 4 GiB the header asked for.
        assert!(
            bytes < 4096,
            "reading a corrupt header allocated {bytes} bytes"
        );
    }
}

/// Receives with a timeout, giving the message's length.
type Recv = Box<dyn FnMut(Duration) -> ipc_core::Result<usize>>;

/// A byte stream's raw writing end and the receiver reading it, for each
/// transport that frames a byte stream: pipe, FIFO, Unix socket, TCP.
fn byte_streams(max: usize) -> Vec<(&'static str, std::fs::File, Recv)> {
    fn raw<T: Transport<Sender = ipc_core::fdstream::FdSender>>(
        max: usize,
    ) -> (std::fs::File, T::Receiver) {
        let (tx, rx) =
            T::channel(Mode::Thread, &Options::default().max_message(max)).expect("channel");
        // SAFETY: the fd comes from the sender we just took apart; File owns it now.
        let file = unsafe { std::fs::File::from_raw_fd(tx.into_fd().expect("fd").into_raw_fd()) };
        (file, rx)
    }
    fn boxed<R: Receiver + 'static>(mut rx: R) -> Recv {
        Box::new(move |t| rx.recv_timeout(t).map(<[u8]>::len))
    }
    let (pipe, pipe_rx) = raw::<Pipe>(max);
    let (uds, uds_rx) = raw::<ipc_sockets::Uds>(max);
    let (tcp, tcp_rx) = raw::<ipc_sockets::Tcp>(max);
    // The FIFO's writer is opened by path, as another writer would.
    let (tx, fifo_rx) =
        Fifo::channel(Mode::Process, &Options::default().max_message(max)).expect("fifo");
    let mut handover = Handover::new();
    let path = Fifo::export_sender(tx, &mut handover)
        .expect("export")
        .path
        .expect("a path");
    let fifo = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the FIFO to write");
    drop(handover);
    vec![
        ("pipe", pipe, boxed(pipe_rx)),
        ("fifo", fifo, boxed(fifo_rx)),
        ("uds", uds, boxed(uds_rx)),
        ("tcp", tcp, boxed(tcp_rx)),
    ]
}

#[test]
fn every_byte_stream_refuses_lying_and_truncated_headers_without_a_hang() {
    const MAX: usize = 1000;
    let long = Duration::from_secs(10);
    // A header one byte over the maximum: Corrupt, nothing allocated for it.
    for (what, mut raw, mut recv) in byte_streams(MAX) {
        raw.write_all(&(MAX as u32 + 1).to_le_bytes())
            .expect("header");
        let (got, bytes) = allocated_by(|| recv(long));
        assert!(matches!(got, Err(Error::Corrupt(_))), "{what}: {got:?}");
        assert!(bytes < 4096, "{what}: allocated {bytes} bytes");
    }
    // Half a header, then the writer goes: the end, not a wait for ever.
    for (what, mut raw, mut recv) in byte_streams(MAX) {
        raw.write_all(&[7, 0]).expect("half a header");
        drop(raw);
        let got = recv(long);
        assert!(matches!(got, Err(Error::Disconnected)), "{what}: {got:?}");
    }
    // A header promising 100 bytes and 10 of them: the receiver waits as
    // long as asked and no longer while the writer stays; when the writer
    // goes, the end.
    for (what, mut raw, mut recv) in byte_streams(MAX) {
        raw.write_all(&100u32.to_le_bytes()).expect("header");
        raw.write_all(&[1; 10]).expect("part of the body");
        let start = Instant::now();
        let got = recv(Duration::from_millis(200));
        assert!(matches!(got, Err(Error::Timeout)), "{what}: {got:?}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{what}: waited {:?}",
            start.elapsed()
        );
        drop(raw);
        let got = recv(long);
        assert!(matches!(got, Err(Error::Disconnected)), "{what}: {got:?}");
    }
}

#[test]
fn an_oversize_message_is_refused_with_its_size_the_maximum_and_the_limit() {
    for max in [0usize, 10, 1 << 16] {
        let (mut tx, _rx) =
            Pipe::channel(Mode::Thread, &Options::default().max_message(max)).expect("pipe");
        let err = tx.send(&vec![0; max + 1]).expect_err("oversize");
        assert!(matches!(
            err,
            Error::TooLarge { len, max: m, limit } if len == max + 1 && m == max && limit == ipc_core::LIMIT_OPTION
        ));
        assert!(
            err.to_string().contains(&format!("maximum of {max} bytes")),
            "{err}"
        );
        let (mut tx, _rx) =
            Fifo::channel(Mode::Thread, &Options::default().max_message(max)).expect("fifo");
        assert!(matches!(
            tx.send(&vec![0; max + 1]),
            Err(Error::TooLarge { .. })
        ));
    }
    // A maximum beyond what a frame can say is lowered to it, and named.
    let (tx, _rx) =
        Pipe::channel(Mode::Thread, &Options::default().max_message(usize::MAX)).expect("pipe");
    assert_eq!(tx.max_message(), u32::MAX as usize);
}

#[test]
fn an_exported_endpoint_cannot_be_opened_in_the_parent() {
    // Before, the safe open took the fd number of the parent's own copy
    // (held by the Handover) and made a second owner of it: two closes.
    let (_tx, rx) = Pipe::channel(Mode::Process, &Options::default()).expect("pipe");
    let mut handover = Handover::new();
    let ep = Pipe::export_receiver(rx, &mut handover).expect("export");
    assert!(matches!(
        Pipe::open_receiver(ep),
        Err(Error::BadEndpoint(_))
    ));
    drop(handover);
}

#[test]
fn a_missing_or_foreign_endpoint_is_refused() {
    // A token naming an fd this process does not have. The fd is a pipe's
    // end moved to the highest number this process may use, then closed
    // with the handover: the kernel gives every new fd the lowest free
    // number, so no other test thread's file takes that one in between
    // (a low number, closed, could be reused at once by another test, and
    // from_token would then adopt that test's fd).
    let (read, _write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct we pass.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit");
    let highest = (limit.rlim_cur.min(1 << 16) - 1) as i32;
    // SAFETY: F_DUPFD_CLOEXEC on our own open fd returns a new fd (the
    // lowest free one at or above `highest`) or -1.
    let high = unsafe { libc::fcntl(read.as_raw_fd(), libc::F_DUPFD_CLOEXEC, highest) };
    assert!(high >= highest, "dup to fd {highest}");
    let mut ep = Endpoint::new("pipes", "pipe", 64);
    let mut handover = Handover::new();
    // SAFETY: `high` was just made by fcntl above and nothing else owns it.
    handover.add_fd(&mut ep, unsafe { std::os::fd::OwnedFd::from_raw_fd(high) });
    let token = ep.to_token();
    // Closes the fd the token names.
    drop(handover);
    // SAFETY: the fd is closed (and its number out of the way of the fds
    // other threads open), which from_token checks before adopting it.
    let err = unsafe { Endpoint::from_token(&token) }.expect_err("not open");
    assert!(matches!(err, Error::BadEndpoint(_)), "{err}");

    let ep = Endpoint::new("pipes", "pipe", 64);
    assert!(matches!(
        Pipe::open_receiver(ep),
        Err(Error::BadEndpoint(_))
    ));
    let ep = Endpoint::new("pipes", "pipe", 64);
    assert!(
        matches!(Fifo::open_receiver(ep), Err(Error::BadEndpoint(_))),
        "a pipe endpoint handed to a FIFO"
    );
    let mut ep = Endpoint::new("pipes", "fifo", 64);
    ep.path = Some("/nonexistent/ipc-showcase.pipes.1.x/fifo".into());
    assert!(Fifo::open_receiver(ep).is_err());
}

/// Set in a child of [`access_the_permissions_forbid_is_refused_saying_so`]
/// that runs as another user: what it tries.
const AS_NOBODY: &str = "IPC_TEST_AS_NOBODY";
/// The endpoint token that child tries to open.
const TOKEN: &str = "IPC_TEST_TOKEN";

/// In the child, as user nobody: tries what `what` names and prints the
/// outcome on stdout.
fn as_nobody(what: &str) {
    // SAFETY: the token was set by our parent, which handed over the fds it
    // names with a Handover; nothing here has touched them.
    let endpoint = || unsafe { Endpoint::from_env(TOKEN) };
    let outcome = match what {
        "fifo" => endpoint().and_then(Fifo::open_receiver).map(drop),
        "shm" => endpoint()
            .and_then(ipc_shm::ShmRing::open_receiver)
            .map(drop),
        "tmpdir" => Fifo::channel(Mode::Process, &Options::default()).map(drop),
        other => panic!("nothing to try as {other}"),
    };
    match outcome {
        Ok(()) => println!("opened"),
        Err(e) => println!("refused: {e}"),
    }
}

/// Runs this test again as user nobody, trying `what` with `handover`'s
/// fds and `token`; returns what it printed.
fn try_as_nobody(what: &str, handover: Handover, token: &str, tmpdir: &std::path::Path) -> String {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args([
        "access_the_permissions_forbid_is_refused_saying_so",
        "--exact",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(AS_NOBODY, what)
    .env(TOKEN, token)
    .env("TMPDIR", tmpdir)
    .uid(65534)
    .gid(65534)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped());
    let (child, _who) = handover.spawn(cmd).expect("start the child as nobody");
    let out = child.wait_with_output().expect("its output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn access_the_permissions_forbid_is_refused_saying_so() {
    if let Ok(what) = std::env::var(AS_NOBODY) {
        as_nobody(&what);
        return;
    }
    // SAFETY: geteuid only reads this process's user.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only root can run a child as another user here");
        return;
    }
    let tmp = std::env::temp_dir();
    // A FIFO in our private (0700) directory.
    let (_tx, rx) = Fifo::channel(Mode::Process, &Options::default()).expect("fifo");
    let mut handover = Handover::new();
    let token = Fifo::export_receiver(rx, &mut handover)
        .expect("export")
        .to_token();
    let said = try_as_nobody("fifo", handover, &token, &tmp);
    assert!(
        said.contains("refused") && said.contains("Permission denied"),
        "{said}"
    );
    // A shared-memory ring (0600).
    let (_tx, rx) = ipc_shm::ShmRing::channel(Mode::Process, &Options::default()).expect("shm");
    let mut handover = Handover::new();
    let token = ipc_shm::ShmRing::export_receiver(rx, &mut handover)
        .expect("export")
        .to_token();
    let said = try_as_nobody("shm", handover, &token, &tmp);
    assert!(
        said.contains("refused")
            && (said.contains("Permission denied") || said.contains("belongs to uid 0")),
        "{said}"
    );
    // A $TMPDIR this user may not write in.
    let locked = tmp.join(format!("ipc-test.locked.{}", std::process::id()));
    std::fs::create_dir(&locked).expect("a root-only directory");
    let said = try_as_nobody("tmpdir", Handover::new(), "", &locked);
    let _ = std::fs::remove_dir(&locked);
    assert!(
        said.contains("refused") && said.contains("Permission denied"),
        "{said}"
    );
}

#[test]
fn a_token_naming_an_object_that_is_gone_says_so() {
    // The endpoint of a real channel, kept after the channel (and so its
    // objects) went: what a late or replayed token names.
    fn gone<T: Transport>() -> Endpoint {
        let (tx, rx) = T::channel(Mode::Process, &Options::default()).expect("channel");
        let mut handover = Handover::new();
        let real = T::export_receiver(rx, &mut handover).expect("export");
        let mut ep = Endpoint::new(T::NAME, T::VARIANT, real.max_message);
        ep.name = real.name.clone();
        ep.path = real.path.clone();
        ep.extra = real.extra.clone();
        drop((tx, handover));
        // SAFETY: the token names no fd, so nothing is adopted.
        unsafe { Endpoint::from_token(&ep.to_token()) }.expect("a token of ours")
    }
    let said = |r: ipc_core::Result<()>| match r {
        Err(e) => e.to_string(),
        Ok(()) => panic!("opened an object that is gone"),
    };
    let shm = said(ipc_shm::ShmRing::open_receiver(gone::<ipc_shm::ShmRing>()).map(drop));
    assert!(shm.contains("No such file or directory"), "{shm}");
    let fifo = said(Fifo::open_receiver(gone::<Fifo>()).map(drop));
    assert!(fifo.contains("No such file or directory"), "{fifo}");
}
