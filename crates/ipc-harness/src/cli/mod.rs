//! The `main` every method's binary shares: a method's binary is a few
//! lines that name its transports and call [`main`]. A method can add
//! subcommands or options of its own through an [`Extension`].

mod args;

use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};

pub use args::{check_fits, config, resolve, Cli, Command, Common, DemoArgs, Measure, ModeArg};
pub(crate) use args::{parse_peer_timeout, parse_pin};

use crate::config::RunConfig;
use crate::entry::{DemoReport, Entry};
use crate::error::{HarnessError, Result};
use crate::peer::{PeerSpec, PEER_ARG};
use crate::report::{self, PingpongJson, RunLabel, StreamJson};
use crate::wait::Wait;

/// What a method's binary says about itself in `--help`, and what it adds
/// to the shared command line.
#[derive(Clone, Copy)]
pub struct MethodInfo {
    /// The binary's name (`ipc-pipes`).
    pub binary: &'static str,
    /// One line: what the method is.
    pub about: &'static str,
    /// A paragraph: when to pick it and what it costs.
    pub long_about: &'static str,
    /// Subcommands or options the method adds.
    pub extension: Option<&'static dyn Extension>,
}

impl std::fmt::Debug for MethodInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodInfo")
            .field("binary", &self.binary)
            .finish()
    }
}

/// Subcommands (or options of the shared ones) that a method adds to its
/// binary, such as a server that runs one side alone.
pub trait Extension: Sync {
    /// Adds to the command line: new subcommands, or arguments of the shared
    /// ones (`cmd.mut_subcommand("pingpong", ...)`).
    fn augment(&self, cmd: clap::Command) -> clap::Command;
    /// Runs what the command line asks, if it is the extension's to run;
    /// `None` lets the harness run it.
    fn run(&self, matches: &clap::ArgMatches, entries: &[Entry]) -> Option<Result<()>>;
}

/// Runs every entry's [`ipc_core::Transport::before_threads`] hook: call it
/// first in `main`, before any thread starts (the harness's binaries do,
/// through [`main`]). Threads inherit what the hooks set up, such as a
/// blocked signal, and so does every child process spawned later.
pub fn before_threads(entries: &[Entry]) -> Result<()> {
    for entry in entries {
        (entry.before_threads)()?;
    }
    Ok(())
}

/// Ctrl-C, SIGTERM and SIGHUP remove every named object this process owns,
/// then exit (the peer, if any, dies with us). The work happens on a thread
/// signal-hook wakes, never inside the signal handler.
pub fn remove_objects_on_interrupt() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        eprintln!("warning: cannot handle Ctrl-C; an interrupted run may leave objects behind (see `clean`)");
        return;
    };
    let _ = std::thread::Builder::new()
        .name("interrupt".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                ipc_core::names::remove_all_registered();
                eprintln!("interrupted: removed this run's objects");
                std::process::exit(128 + sig);
            }
        });
}

/// If this process was started as a peer (`--peer <spec>`), runs the peer
/// and exits; otherwise returns.
///
/// # Safety
///
/// Call it first in `main`, before this process opens any fd of its own:
/// a peer's command line names fds by number (the ends its parent handed
/// over), and this takes ownership of them. Only the harness's own spawn
/// passes `--peer`, with fds it handed over.
pub unsafe fn run_peer_if_asked(entries: &[Entry]) {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a == PEER_ARG) != Some(true) {
        return;
    }
    // SAFETY: passed on from our caller.
    let code = match unsafe { peer(entries, args.get(2)) } {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("peer: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

/// # Safety
///
/// As for [`run_peer_if_asked`].
unsafe fn peer(entries: &[Entry], spec: Option<&OsString>) -> Result<()> {
    let spec = spec.and_then(|s| s.to_str()).unwrap_or_default();
    let spec: PeerSpec = serde_json::from_str(spec)
        .map_err(|e| HarnessError::Usage(format!("bad peer specification: {e}")))?;
    // SAFETY: the spec came from our parent's spawn, which handed over the
    // lifeline it names (our caller promises this process is such a peer).
    unsafe { crate::peer::watch_parent(&spec) };
    let entry = entries
        .iter()
        .find(|e| e.id() == spec.entry)
        .ok_or_else(|| {
            HarnessError::Usage(format!("this binary has no transport {}", spec.entry))
        })?;
    // SAFETY: as above, for the ends the spec names.
    let result = unsafe { (entry.peer)(&spec) };
    // A transport that saw its peer vanish ends the run quietly; when the
    // peer is our parent, say so.
    if !crate::peer::parent_alive(&spec) {
        crate::peer::parent_gone(spec.parent);
    }
    result
}

/// The `main` of a method's binary: runs the transports' pre-thread hooks,
/// the peer if this process is one, then parses the shared command line and
/// runs the demo, `pingpong`, `stream`, `clean` or an extension's
/// subcommand on `entries` (the method's variants, the default first).
/// Exits with the contract's codes.
///
/// # Safety
///
/// Call it first in `main`, before any thread starts and before this
/// process opens any fd of its own (see [`run_peer_if_asked`]).
pub unsafe fn main(info: MethodInfo, entries: &[Entry]) -> ! {
    if let Err(e) = before_threads(entries) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
    // SAFETY: passed on from our caller: this is the start of main.
    unsafe { run_peer_if_asked(entries) };
    remove_objects_on_interrupt();
    let code = match run_command_line(info, entries, std::env::args_os()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code)
}

/// The shared command line with the method's name, help and extension.
pub fn command(info: MethodInfo) -> clap::Command {
    let cmd = Cli::command()
        .name(info.binary)
        .bin_name(info.binary)
        .about(info.about)
        .long_about(format!("{}\n\n{}", info.about, info.long_about))
        .after_long_help(BOUNDS_HELP);
    match info.extension {
        Some(ext) => ext.augment(cmd),
        None => cmd,
    }
}

/// What `--help` says of the bounds every option is held to.
const BOUNDS_HELP: &str = "Bounds: --size at most 1 GiB and what the method carries; --count 1 to \
10^12; --warmup up to 10^12; --peer-timeout above 0 and at most 3600 s; --spin-us up to 10 s; \
--interval-ms up to an hour; --producers and --consumers 1 to 64 where the method has several. \
Anything else is a usage error (exit code 2) before anything runs.\n\n\
Exit codes: 0 success, 2 usage error, 3 the peer died or disconnected, 1 anything else.";

/// Parses `args` (with the program's name first) and runs what they ask;
/// `--help` and parse errors print and exit as clap does.
pub fn run_command_line(
    info: MethodInfo,
    entries: &[Entry],
    args: impl IntoIterator<Item = OsString>,
) -> Result<()> {
    let matches = match command(info).try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => e.exit(),
    };
    if let Some(ext) = info.extension {
        if let Some(result) = ext.run(&matches, entries) {
            return result;
        }
    }
    let cli = Cli::from_arg_matches(&matches).map_err(|e| HarnessError::Usage(e.to_string()))?;
    run(cli, entries)
}

fn run(cli: Cli, entries: &[Entry]) -> Result<()> {
    match cli.command {
        None => demo(cli.demo, entries),
        Some(Command::Pingpong(a)) => {
            let m = &a.measure;
            let (entry, mode, wait) = resolve(entries, &m.common)?;
            let cfg = measure_config(mode, wait, m, a.count);
            check_fits(&entry, &cfg)?;
            let r = (entry.pingpong)(&cfg)?;
            print_pingpong(&label(&entry, &cfg), &cfg, &r, m.json)
        }
        Some(Command::Stream(a)) => {
            let m = &a.measure;
            let (entry, mode, wait) = resolve(entries, &m.common)?;
            let mut cfg = measure_config(mode, wait, m, a.count);
            (cfg.producers, cfg.consumers) = (a.sides.producers, a.sides.consumers);
            check_fits(&entry, &cfg)?;
            let r = (entry.stream)(&cfg)?;
            print_stream(&label(&entry, &cfg), &cfg, &r, m.json)
        }
        Some(Command::Clean) => clean(entries),
    }
}

fn demo(d: DemoArgs, entries: &[Entry]) -> Result<()> {
    let (entry, mode, wait) = resolve(entries, &d.common)?;
    let mut cfg = config(mode, wait, &d.common);
    cfg.count = d.count;
    cfg.interval = Duration::from_millis(d.interval_ms);
    (cfg.producers, cfg.consumers) = (d.sides.producers, d.sides.consumers);
    check_fits(&entry, &cfg)?;
    let sides = match (cfg.producers, cfg.consumers) {
        (1, 1) => "the producer sends".to_owned(),
        (p, c) => format!("{p} producer(s), {c} consumer(s): each producer sends"),
    };
    println!(
        "{}/{} demo, {mode} mode, wait {}: {sides} {} tasks, one every {} ms",
        entry.method,
        entry.variant,
        wait.as_str(),
        d.count,
        d.interval_ms
    );
    match (entry.demo)(&cfg)? {
        DemoReport::RoundTrips(mut rtts) => {
            rtts.sort();
            if let (Some(min), Some(max)) = (rtts.first(), rtts.last()) {
                println!(
                    "{} tasks sent and acknowledged; round trip min {}, median {}, max {}",
                    rtts.len(),
                    report::human_ns(min.as_nanos() as f64),
                    report::human_ns(rtts[rtts.len() / 2].as_nanos() as f64),
                    report::human_ns(max.as_nanos() as f64)
                );
            }
        }
        DemoReport::Tasks(demo) => {
            for (c, n) in demo.per_consumer.iter().enumerate() {
                match demo.died.iter().find(|(d, ..)| *d == c) {
                    Some((_, pid, how)) => {
                        println!("consumer {c}: {n} tasks, then its process (pid {pid}) {how}")
                    }
                    None => println!("consumer {c}: {n} tasks"),
                }
            }
            for (p, i) in &demo.lost {
                println!("lost: producer {p}'s task {i}, in the hands of a consumer that died (reported by the channel)");
            }
            let received: u64 = demo.per_consumer.iter().sum();
            println!(
                "check: {received} tasks from {} producer(s), each received exactly once by one of {} consumer(s); {} reported lost; none missing or duplicated",
                cfg.producers,
                cfg.consumers,
                demo.lost.len()
            );
            if let Some((c, pid, how)) = demo.died.first() {
                return Err(HarnessError::PeerDied {
                    pid: *pid,
                    how: format!("{how} (consumer {c}; the other consumers finished the run)"),
                });
            }
        }
    }
    Ok(())
}

/// Prints a ping-pong's result: one JSON line (the contract), or a table.
pub fn print_pingpong(
    label: &RunLabel,
    cfg: &RunConfig,
    r: &crate::report::PingpongReport,
    as_json: bool,
) -> Result<()> {
    if as_json {
        println!("{}", json(&PingpongJson::new(label, cfg.warmup, r))?);
    } else {
        println!("{}", report::pingpong_text(label, cfg.warmup, r));
    }
    Ok(())
}

/// Prints a stream's result: one JSON line (the contract), or a table.
pub fn print_stream(
    label: &RunLabel,
    cfg: &RunConfig,
    r: &crate::report::StreamReport,
    as_json: bool,
) -> Result<()> {
    let sides = (cfg.producers, cfg.consumers);
    if as_json {
        let line = StreamJson::new(label, cfg.verify.as_str(), sides, r);
        println!("{}", json(&line)?);
    } else {
        println!(
            "{}",
            report::stream_text(label, cfg.verify.as_str(), sides, r)
        );
    }
    Ok(())
}

/// What the measuring options of `pingpong` and `stream` ask for, in `mode`
/// with `wait`.
pub fn measure_config(mode: ipc_core::Mode, wait: Wait, m: &Measure, count: u64) -> RunConfig {
    let mut cfg = config(mode, wait, &m.common);
    cfg.size = m.size;
    cfg.count = count;
    cfg.warmup = m.warmup;
    cfg.batch = m.batch;
    cfg.verify = m.verify;
    cfg.capacity = m.capacity;
    cfg.zero_copy = m.zero_copy;
    cfg
}

/// The label of a run, for reports.
pub fn label(entry: &Entry, cfg: &RunConfig) -> RunLabel {
    RunLabel {
        method: entry.method.into(),
        variant: entry.variant.into(),
        mode: cfg.mode.as_str().into(),
        wait: cfg.wait.as_str().into(),
        size: cfg.size,
        count: cfg.count,
        pin: cfg.pin.map(|(a, b)| [a, b]),
    }
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| HarnessError::Other(format!("cannot write JSON: {e}")))
}

/// Runs `clean` for every entry and says what it found; a removal that
/// failed is reported and makes the exit code 1, after the rest was done.
pub fn clean(entries: &[Entry]) -> Result<()> {
    let mut all = ipc_core::names::CleanReport::default();
    for entry in entries {
        all.merge((entry.clean)()?);
    }
    all.removed.sort();
    all.removed.dedup();
    for p in &all.removed {
        println!("removed {}", p.display());
    }
    for p in &all.live {
        println!("kept {} (its creator is still running)", p.display());
    }
    for (p, uid) in &all.foreign {
        println!("left {} alone: it belongs to uid {uid}", p.display());
    }
    for (p, why) in &all.failed {
        println!("could not remove {}: {why}", p.display());
    }
    if all.removed.is_empty()
        && all.live.is_empty()
        && all.foreign.is_empty()
        && all.failed.is_empty()
    {
        println!("nothing to clean");
    }
    if !all.failed.is_empty() {
        return Err(HarnessError::Other(format!(
            "{} object(s) could not be removed",
            all.failed.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Hello;

    impl Extension for Hello {
        fn augment(&self, cmd: clap::Command) -> clap::Command {
            cmd.subcommand(clap::Command::new("hello").arg(clap::arg!(--name <NAME>)))
                .mut_subcommand("pingpong", |c| c.arg(clap::arg!(--connect <ADDR>)))
        }

        fn run(&self, matches: &clap::ArgMatches, _: &[Entry]) -> Option<Result<()>> {
            match matches.subcommand() {
                Some(("hello", m)) => Some(Err(HarnessError::Other(format!(
                    "hello {}",
                    m.get_one::<String>("name").map_or("?", String::as_str)
                )))),
                Some(("pingpong", m)) if m.contains_id("connect") => {
                    let addr = m.get_one::<String>("connect")?;
                    Some(Err(HarnessError::Other(format!("connect {addr}"))))
                }
                _ => None,
            }
        }
    }

    static HELLO: Hello = Hello;

    fn info() -> MethodInfo {
        MethodInfo {
            binary: "ipc-test",
            about: "a test",
            long_about: "a test",
            extension: Some(&HELLO),
        }
    }

    fn said(args: &[&str]) -> String {
        let args = std::iter::once("ipc-test").chain(args.iter().copied());
        match run_command_line(info(), &[], args.map(OsString::from)) {
            Err(HarnessError::Other(s)) | Err(HarnessError::Usage(s)) => s,
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_method_adds_subcommands_and_options_and_the_rest_stays_the_harnesss() {
        assert_eq!(said(&["hello", "--name", "pipes"]), "hello pipes");
        assert_eq!(
            said(&["pingpong", "--connect", "127.0.0.1:1"]),
            "connect 127.0.0.1:1"
        );
        // Without the extension's option, pingpong is the harness's again
        // (here with no transport registered).
        assert_eq!(said(&["pingpong"]), "no transport is registered");
    }

    #[test]
    fn the_hooks_run_for_every_entry() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        struct Hooked;
        impl ipc_core::Transport for Hooked {
            const NAME: &'static str = "hooked";
            const VARIANT: &'static str = "x";
            const MODES: &'static [ipc_core::Mode] = &[ipc_core::Mode::Thread];
            type Sender = ipc_core::fdstream::FdSender;
            type Receiver = ipc_core::fdstream::FdReceiver;
            fn channel(
                _: ipc_core::Mode,
                _: &ipc_core::Options,
            ) -> ipc_core::Result<(Self::Sender, Self::Receiver)> {
                Err(ipc_core::Error::Disconnected)
            }
            fn before_threads() -> ipc_core::Result<()> {
                CALLS.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
        let entries = [Entry::of::<Hooked>(), Entry::of::<Hooked>()];
        before_threads(&entries).expect("hooks");
        assert_eq!(CALLS.load(Ordering::Relaxed), 2);
    }
}
