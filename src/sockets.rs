//! What `ipc-sockets` adds to the shared command line: `serve`, one side
//! alone (an echo server), and `--connect ADDR` on `pingpong` and `stream`,
//! the measuring side against such a server on this or another host.

use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use ipc_harness::cli::{self, check_fits, resolve, Cli};
use ipc_harness::{Entry, Extension, HarnessError, PeerCpu, Result};
use ipc_sockets::serve::{self, Address, ServeOptions};

/// The extension, for `MethodInfo::extension`.
pub static EXTENSION: SocketsExtension = SocketsExtension;

/// `serve` and `--connect`.
#[derive(Debug)]
pub struct SocketsExtension;

const CONNECT_HELP: &str = "Measure against an echo server at ADDR (`ipc-sockets serve`), on \
this host or another: host:port for --variant tcp, an abstract name for uds. The server's CPU \
is unknown, so cpu_ns_per_msg is null; `stream` takes the echoes back while it sends.";

impl Extension for SocketsExtension {
    fn augment(&self, cmd: Command) -> Command {
        let connect = Arg::new("connect")
            .long("connect")
            .value_name("ADDR")
            .help(CONNECT_HELP);
        let serve = Command::new("serve")
            .about("Echo every frame back unchanged, on many connections at once, until Ctrl-C: one side alone, for a client on another host or in another language")
            .long_about("Echo every frame (a 4-byte little-endian length, then that many bytes) back \
unchanged, on many connections at once, each on a thread of its own, until Ctrl-C. It verifies \
nothing. A frame above --max-message closes that connection at once, before anything is \
allocated for it; so does a client that says nothing for --idle-timeout, and, on a Unix \
socket, a client of another user. Each is logged on stderr and the server serves on. The \
first line on stdout says where it listens (the port the kernel chose, for port 0).")
            .arg(
                Arg::new("variant")
                    .long("variant")
                    .value_parser(["uds", "tcp"])
                    .default_value("uds")
                    .help("uds: a Unix domain socket on an abstract name; tcp: a TCP address"),
            )
            .arg(
                Arg::new("listen")
                    .long("listen")
                    .value_name("ADDR")
                    .required(true)
                    .help("Where to listen: host:port for tcp (port 0: any free one), an abstract name for uds"),
            )
            .arg(
                Arg::new("max-message")
                    .long("max-message")
                    .value_name("BYTES")
                    .value_parser(clap::value_parser!(u32).range(0..))
                    .default_value("1048576")
                    .help("The largest frame echoed; a longer one closes its connection"),
            )
            .arg(
                Arg::new("idle-timeout")
                    .long("idle-timeout")
                    .value_name("S")
                    .value_parser(parse_idle)
                    .default_value("30")
                    .help("How long a client may say nothing before it is dropped (0.001 to 3600; it also bounds how long an echo may wait for a client that does not read)"),
            )
            .arg(
                Arg::new("max-connections")
                    .long("max-connections")
                    .value_name("N")
                    .value_parser(clap::value_parser!(u32).range(1..=65536))
                    .default_value("1024")
                    .action(ArgAction::Set)
                    .help("The most connections served at once; more are refused"),
            );
        cmd.mut_subcommand("pingpong", |c| c.arg(connect.clone()))
            .mut_subcommand("stream", |c| c.arg(connect))
            .subcommand(serve)
    }

    fn run(&self, matches: &ArgMatches, entries: &[Entry]) -> Option<Result<()>> {
        match matches.subcommand() {
            Some(("serve", m)) => Some(run_serve(m)),
            Some(("pingpong" | "stream", m)) if m.contains_id("connect") => {
                let at = m.get_one::<String>("connect").cloned()?;
                Some(measure_remote(matches, entries, &at))
            }
            _ => None,
        }
    }
}

fn parse_idle(s: &str) -> std::result::Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.001..=3600.0).contains(&v) => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "{s:?} is not a number of seconds from 0.001 to 3600"
        )),
    }
}

fn run_serve(m: &ArgMatches) -> Result<()> {
    let variant = m.get_one::<String>("variant").map_or("uds", String::as_str);
    let listen = m.get_one::<String>("listen").map_or("", String::as_str);
    let at = Address::parse(variant, listen).map_err(HarnessError::Usage)?;
    let opts = ServeOptions {
        max_message: m.get_one::<u32>("max-message").copied().unwrap_or(1 << 20) as usize,
        idle: m
            .get_one::<Duration>("idle-timeout")
            .copied()
            .unwrap_or(Duration::from_secs(30)),
        max_connections: m.get_one::<u32>("max-connections").copied().unwrap_or(1024) as usize,
    };
    let server = serve::listen(&at, opts)?;
    println!("ipc-sockets: serving {variant} on {}", server.address);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    Ok(server.serve()?)
}

fn measure_remote(matches: &ArgMatches, entries: &[Entry], at: &str) -> Result<()> {
    let parsed = Cli::from_arg_matches(matches).map_err(|e| HarnessError::Usage(e.to_string()))?;
    let (measure, count, sides) = match &parsed.command {
        Some(cli::Command::Pingpong(a)) => (&a.measure, a.count, None),
        Some(cli::Command::Stream(a)) => (&a.measure, a.count, Some(&a.sides)),
        _ => {
            return Err(HarnessError::Usage(
                "--connect goes with pingpong or stream".into(),
            ))
        }
    };
    if sides.is_some_and(|s| s.producers > 1 || s.consumers > 1) {
        return Err(HarnessError::Usage(
            "--connect measures one producer against one echo server".into(),
        ));
    }
    let (entry, mode, wait) = resolve(entries, &measure.common)?;
    let cfg = cli::measure_config(mode, wait, measure, count);
    check_fits(&entry, &cfg)?;
    let at = Address::parse(entry.variant, at).map_err(HarnessError::Usage)?;
    let (mut tx, mut rx) = serve::connect(&at, cfg.size.max(1))?;
    let label = cli::label(&entry, &cfg);
    match sides {
        None => {
            let r = ipc_harness::pingpong_on(&cfg, &mut tx, &mut rx, PeerCpu::Unknown)?;
            cli::print_pingpong(&label, &cfg, &r, measure.json)
        }
        Some(_) => {
            let r = ipc_harness::stream_to_echo(&cfg, &mut tx, &mut rx)?;
            cli::print_stream(&label, &cfg, &r, measure.json)
        }
    }
}
