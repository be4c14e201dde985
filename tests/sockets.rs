//! `ipc-sockets` run as a user runs it: the JSON contract for both variants
//! in both modes; `serve` and `--connect`, also from a Python client that
//! knows only the wire format and across two network namespaces; a lying
//! frame header, a client of another user, 100 clients at once; a peer or a
//! parent killed mid-run, and Ctrl-C.

mod common;

use std::io::{BufRead, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-sockets");
const LIMIT: Duration = Duration::from_secs(120);

/// A running `ipc-sockets serve`, killed on drop.
struct Server {
    child: Child,
    /// Where it listens, as it said.
    address: String,
    stderr: std::path::PathBuf,
}

impl Server {
    fn start(tmp: &TempDir, variant: &str, listen: &str, extra: &[&str]) -> Server {
        Server::start_with(Command::new(BIN), tmp, variant, listen, extra)
    }

    /// Starts it through `cmd` (`ip netns exec NS BIN`, or `BIN` itself).
    fn start_with(
        mut cmd: Command,
        tmp: &TempDir,
        variant: &str,
        listen: &str,
        extra: &[&str],
    ) -> Server {
        let stderr = tmp.0.join(format!("serve-{}.err", fastrand_id()));
        let mut child = cmd
            .args(["serve", "--variant", variant, "--listen", listen])
            .args(extra)
            .env("TMPDIR", &tmp.0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start serve");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("its first line");
        let address = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .trim_start_matches('@')
            .to_owned();
        assert!(!address.is_empty(), "serve said {line:?}");
        Server {
            child,
            address,
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn port(&self) -> u16 {
        self.address
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fastrand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() % 1_000_000_000
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn both_variants_in_both_modes_print_the_contract_json_and_leave_nothing() {
    let tmp = TempDir::new("sockets-json");
    for variant in ["uds", "tcp"] {
        for mode in ["process", "thread"] {
            for (cmd, size, wait) in [
                ("pingpong", "0", "block"),
                ("pingpong", "4096", "spin"),
                ("stream", "64", "hybrid"),
            ] {
                let args = [
                    cmd,
                    "--variant",
                    variant,
                    "--mode",
                    mode,
                    "--wait",
                    wait,
                    "--size",
                    size,
                    "--count",
                    "300",
                    "--warmup",
                    "20",
                    "--json",
                ];
                let out = run(command(BIN, &tmp, &args), LIMIT);
                assert!(out.status.success(), "{args:?}: {}", stderr(&out));
                let v = json_line(&out);
                assert_eq!(
                    (
                        v["method"].as_str(),
                        v["variant"].as_str(),
                        v["mode"].as_str()
                    ),
                    (Some("sockets"), Some(variant), Some(mode))
                );
                assert!(v["cpu_ns_per_msg"].as_f64().is_some(), "{v}");
            }
        }
    }
    assert!(tmp.leftovers().is_empty(), "{:?}", tmp.leftovers());
}

#[test]
fn connect_measures_against_serve_over_both_variants() {
    let tmp = TempDir::new("sockets-connect");
    for (variant, listen) in [
        ("tcp", "127.0.0.1:0".to_owned()),
        ("uds", format!("ipc-test.serve.{}", std::process::id())),
    ] {
        let server = Server::start(&tmp, variant, &listen, &[]);
        for cmd in ["pingpong", "stream"] {
            let args = [
                cmd,
                "--variant",
                variant,
                "--connect",
                &server.address,
                "--count",
                "2000",
                "--size",
                "1000",
                "--json",
            ];
            let out = run(command(BIN, &tmp, &args), LIMIT);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let v = json_line(&out);
            assert_eq!(v["variant"].as_str(), Some(variant));
            assert!(
                v["cpu_ns_per_msg"].is_null(),
                "the server's CPU is unknown: {v}"
            );
        }
    }
}

#[test]
fn a_python_client_that_knows_only_the_wire_format_is_served() {
    let Ok(version) = Command::new("python3").arg("--version").output() else {
        println!("skipped: no python3 on this machine");
        return;
    };
    assert!(version.status.success());
    let tmp = TempDir::new("sockets-python");
    let server = Server::start(&tmp, "tcp", "127.0.0.1:0", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/echo_client.py");
    let out = run(
        {
            let mut c = Command::new("python3");
            c.args([script, "127.0.0.1", &server.port().to_string(), "300"]);
            c
        },
        LIMIT,
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("ok 300"),
        "{said}{}",
        stderr(&out)
    );
}

#[test]
fn a_lying_length_header_closes_that_connection_and_serve_goes_on() {
    let tmp = TempDir::new("sockets-liar");
    let server = Server::start(&tmp, "tcp", "127.0.0.1:0", &[]);
    let before = open_fds(server.child.id());
    let mut liar = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    liar.write_all(&(u32::MAX - 1).to_le_bytes())
        .expect("the lying header");
    liar.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut rest = Vec::new();
    assert_eq!(
        liar.read_to_end(&mut rest).expect("closed by the server"),
        0
    );
    let out = run(
        command(
            BIN,
            &tmp,
            &[
                "pingpong",
                "--variant",
                "tcp",
                "--connect",
                &server.address,
                "--count",
                "100",
                "--json",
            ],
        ),
        LIMIT,
    );
    assert!(out.status.success(), "the next client: {}", stderr(&out));
    assert!(
        server
            .log()
            .contains("4294967294 bytes, above this server's largest"),
        "{}",
        server.log()
    );
    // Its memory did not grow by 4 GiB: the frame was refused before allocation.
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap_or_default();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(rss_kb < 200 * 1024, "peak RSS {rss_kb} kB");
    wait_for_fds(server.child.id(), before);
}

/// Waits up to 10 s for `pid` to hold `fds` open fds again.
fn wait_for_fds(pid: u32, fds: usize) {
    let started = Instant::now();
    while open_fds(pid) != fds {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server holds {} fds, {fds} before",
            open_fds(pid)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_hundred_clients_at_once_are_each_served_and_the_fds_come_back() {
    let tmp = TempDir::new("sockets-hundred");
    let server = Server::start(&tmp, "tcp", "127.0.0.1:0", &[]);
    let before = open_fds(server.child.id());
    let port = server.port();
    let start = std::sync::Barrier::new(100);
    std::thread::scope(|s| {
        for c in 0..100u32 {
            let start = &start;
            s.spawn(move || {
                start.wait();
                let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
                conn.set_read_timeout(Some(Duration::from_secs(30)))
                    .expect("timeout");
                for i in 0..20u32 {
                    let body = (c * 1000 + i).to_le_bytes().repeat(1 + i as usize);
                    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
                    frame.extend_from_slice(&body);
                    conn.write_all(&frame).expect("send");
                    let mut echo = vec![0u8; frame.len()];
                    conn.read_exact(&mut echo).expect("the echo");
                    assert_eq!(echo, frame, "client {c}, frame {i}");
                }
            });
        }
    });
    assert!(alive(server.child.id()), "the server died");
    wait_for_fds(server.child.id(), before);
}

#[test]
fn a_client_of_another_user_is_refused_on_the_unix_socket() {
    // SAFETY: geteuid only reads this process's user.
    if unsafe { libc::geteuid() } != 0 {
        println!("skipped: only root can run a client as another user");
        return;
    }
    let tmp = TempDir::new("sockets-uid");
    let name = format!("ipc-test.uid.{}", std::process::id());
    let server = Server::start(&tmp, "uds", &name, &[]);
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
    let frame = [4u8, 0, 0, 0, b'p', b'i', b'n', b'g'];
    // SAFETY: the child only changes its user, connects, writes and reads
    // on buffers made before the fork, and _exits; no lock of the parent's
    // threads is taken.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        // SAFETY: as above.
        unsafe {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(2);
            }
        }
        let code = match std::os::unix::net::UnixStream::connect_addr(&addr) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = s.write_all(&frame);
                let mut echo = [0u8; 8];
                match s.read(&mut echo) {
                    Ok(0) | Err(_) => 0, // refused: closed without an echo
                    Ok(_) => 1,          // served
                }
            }
            Err(_) => 3,
        };
        // SAFETY: ends the child at once.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    unsafe { libc::waitpid(child, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "the child did not exit: {status}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the other user's client was not refused (1: served, 3: could not connect)"
    );
    let log = server.log();
    assert!(
        log.contains("uid Some(65534)") && log.contains("refused"),
        "{log}"
    );
    // The server's own user is still served.
    let out = run(
        command(
            BIN,
            &tmp,
            &["pingpong", "--connect", &name, "--count", "50"],
        ),
        LIMIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Runs `ip args`, returning whether it worked (and its stderr).
fn ip(args: &[&str]) -> std::result::Result<(), String> {
    match Command::new("ip").args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("ip: {e}")),
    }
}

/// Two network namespaces joined by a veth pair, deleted on drop (the
/// pair too, should the setup stop before it moved into them).
struct Hosts {
    names: [String; 2],
    veth: String,
}

impl Hosts {
    fn make() -> std::result::Result<Hosts, String> {
        // Unique to this run (pids repeat across pid namespaces), short
        // enough for an interface name (15 bytes).
        let id = format!(
            "{:08x}",
            (fastrand_id() << 20) ^ u64::from(std::process::id())
        );
        let id = &id[id.len() - 8..];
        let names = [format!("ipct{id}a"), format!("ipct{id}b")];
        let (va, vb) = (format!("va{id}"), format!("vb{id}"));
        let hosts = Hosts {
            names: names.clone(),
            veth: va.clone(),
        };
        let (a, b) = (&names[0], &names[1]);
        ip(&["netns", "add", a])?;
        ip(&["netns", "add", b])?;
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", a])?;
        ip(&["link", "set", &vb, "netns", b])?;
        ip(&["-n", a, "addr", "add", "10.231.0.1/24", "dev", &va])?;
        ip(&["-n", b, "addr", "add", "10.231.0.2/24", "dev", &vb])?;
        for (ns, dev) in [(a, &va), (b, &vb)] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    fn exec(&self, host: usize) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.names[host], BIN]);
        cmd
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = ip(&["netns", "del", ns]);
        }
        // Gone with its namespace, or still here if the setup stopped early.
        let _ = ip(&["link", "del", &self.veth]);
    }
}

#[test]
fn tcp_crosses_two_network_namespaces_joined_by_a_veth_pair() {
    let hosts = match Hosts::make() {
        Ok(h) => h,
        Err(why) => {
            println!("skipped: cannot make two network namespaces here ({why})");
            return;
        }
    };
    let tmp = TempDir::new("sockets-netns");
    let server = Server::start_with(hosts.exec(0), &tmp, "tcp", "10.231.0.1:0", &[]);
    assert!(
        server.address.starts_with("10.231.0.1:"),
        "{}",
        server.address
    );
    for cmd in ["pingpong", "stream"] {
        let mut client = hosts.exec(1);
        client.args([
            cmd,
            "--variant",
            "tcp",
            "--connect",
            &server.address,
            "--count",
            "500",
            "--json",
        ]);
        let out = run(client, LIMIT);
        assert!(
            out.status.success(),
            "{cmd} across the namespaces: {}",
            stderr(&out)
        );
        let v = json_line(&out);
        assert_eq!(v["variant"].as_str(), Some("tcp"));
    }
    // The address is not reachable from this namespace: the hosts are apart
    // (a refused or unreachable connection, said as such, not a time-out).
    let started = Instant::now();
    let args = [
        "pingpong",
        "--variant",
        "tcp",
        "--connect",
        &server.address,
        "--count",
        "10",
    ];
    let out = run(command(BIN, &tmp, &args), Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("connect to 10.231.0.1"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_killed_peer_ends_the_run_with_exit_code_3() {
    for variant in ["uds", "tcp"] {
        for wait in ["block", "spin"] {
            let tmp = TempDir::new("sockets-peerkill");
            let (child, peer) = long_stream(BIN, &tmp, &["--variant", variant, "--wait", wait]);
            kill_the_peer_and_expect_exit_code_3(child, peer, &format!("{variant} {wait}"));
            assert!(tmp.leftovers().is_empty(), "{:?}", tmp.leftovers());
        }
    }
}

#[test]
fn a_killed_parent_takes_its_peer_along() {
    for variant in ["uds", "tcp"] {
        let tmp = TempDir::new("sockets-parentkill");
        let (child, peer) = long_stream(BIN, &tmp, &["--variant", variant]);
        kill_the_parent_and_expect_the_peer_gone(child, peer, variant);
        assert!(tmp.leftovers().is_empty(), "{:?}", tmp.leftovers());
    }
}

#[test]
fn ctrl_c_stops_both() {
    for variant in ["uds", "tcp"] {
        let tmp = TempDir::new("sockets-sigint");
        let (child, peer) = long_stream(BIN, &tmp, &["--variant", variant, "--wait", "hybrid"]);
        ctrl_c_and_expect_both_gone(child, peer, variant);
        assert!(tmp.leftovers().is_empty(), "{:?}", tmp.leftovers());
    }
}

#[test]
fn serve_refuses_nonsense_with_exit_code_2() {
    let tmp = TempDir::new("sockets-usage");
    for args in [
        &["serve", "--variant", "tcp", "--listen", "nowhere"][..],
        &["serve", "--variant", "udp", "--listen", "x"],
        &["serve", "--listen", "x", "--idle-timeout", "0"],
        &[
            "pingpong",
            "--variant",
            "tcp",
            "--connect",
            "not-an-address",
        ],
        &["stream", "--connect", "x", "--producers", "2"],
    ] {
        let out = run(command(BIN, &tmp, args), LIMIT);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
}
