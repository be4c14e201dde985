//! The command line every method's binary shares (**contract**), and the
//! `main` that runs it: a method's binary is a few lines that name its
//! transports and call [`main`].

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use ipc_core::Mode;

use crate::entry::Entry;
use crate::error::{HarnessError, Result};
use crate::payload::Verify;
use crate::peer::{PeerSpec, PEER_ARG};
use crate::report::{self, PingpongJson, RunLabel, StreamJson};
use crate::run::{Batch, RunConfig};
use crate::wait::Wait;

/// What a method's binary says about itself in `--help`.
#[derive(Debug, Clone, Copy)]
pub struct MethodInfo {
    /// The binary's name (`ipc-pipes`).
    pub binary: &'static str,
    /// One line: what the method is.
    pub about: &'static str,
    /// A paragraph: when to pick it and what it costs.
    pub long_about: &'static str,
}

/// The mode on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Producer and consumer in two processes.
    Process,
    /// In two threads of one process.
    Thread,
    /// In two coroutines on one thread.
    Coroutine,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Process => Mode::Process,
            ModeArg::Thread => Mode::Thread,
            ModeArg::Coroutine => Mode::Coroutine,
        }
    }
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Where the consumer lives [default: the first mode the method supports].
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Which variant of the method [default: the first it lists].
    #[arg(long)]
    pub variant: Option<String>,
    /// How both sides wait: block (sleep in the kernel), spin (poll), hybrid
    /// (poll briefly, then block), resume (coroutine hand-off)
    /// [default: block; resume in coroutine mode].
    #[arg(long, value_enum)]
    pub wait: Option<Wait>,
    /// Pin producer and consumer to CPUs A and B, e.g. `--pin 0,0`.
    #[arg(long, value_name = "A,B", value_parser = parse_pin)]
    pub pin: Option<(usize, usize)>,
    /// Seconds to wait for a silent or dying peer before giving up.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub peer_timeout: f64,
    /// Microseconds `--wait hybrid` polls before it sleeps.
    #[arg(long, value_name = "US", default_value_t = crate::wait::HYBRID_SPIN.as_micros() as u64)]
    pub spin_us: u64,
}

/// Options of a measurement.
#[derive(Debug, Clone, Args)]
pub struct Measure {
    #[command(flatten)]
    pub common: Common,
    /// The whole message handed to the transport, in bytes (the stamp lives inside).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Untimed messages before the timed ones.
    #[arg(long, default_value_t = 1000)]
    pub warmup: u64,
    /// Round trips per timed sample: auto (1, except in coroutine mode, where
    /// the clock would otherwise dominate) or a number.
    #[arg(long, default_value = "auto", value_parser = parse_batch)]
    pub batch: Batch,
    /// How much of each message the receiver checks: full (every byte) or
    /// seq (sequence number and length only).
    #[arg(long, value_enum, default_value_t = Verify::Full)]
    pub verify: Verify,
    /// Print one JSON line on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Bytes the channel may hold in flight, where the method lets us choose
    /// (shm: the ring's size; pipes: the pipe buffer) [default: the method's].
    #[arg(long, value_name = "BYTES")]
    pub capacity: Option<usize>,
}

/// `pingpong` options.
#[derive(Debug, Clone, Args)]
pub struct PingpongArgs {
    #[command(flatten)]
    pub measure: Measure,
    /// Timed round trips.
    #[arg(long, default_value_t = 20_000)]
    pub count: u64,
}

/// `stream` options.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    #[command(flatten)]
    pub measure: Measure,
    /// Timed messages.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Round-trip latency: each message is echoed back (one-way latency is half).
    Pingpong(PingpongArgs),
    /// One-way throughput: messages as fast as the consumer takes them.
    Stream(StreamArgs),
    /// Remove OS objects left behind by crashed runs of this method.
    Clean,
}

/// The demo's options (no subcommand).
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub common: Common,
    /// Tasks the producer sends.
    #[arg(long, default_value_t = 5)]
    pub count: u64,
    /// Milliseconds the producer sleeps between tasks.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    pub interval_ms: u64,
}

/// The whole command line.
#[derive(Debug, Parser)]
#[command(args_conflicts_with_subcommands = true, disable_version_flag = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// Parses `--pin A,B`.
pub(crate) fn parse_pin(s: &str) -> std::result::Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or("expected two CPUs as A,B, e.g. 0,0")?;
    let cpu = |x: &str| {
        x.trim()
            .parse::<usize>()
            .map_err(|_| format!("{x:?} is not a CPU number"))
    };
    Ok((cpu(a)?, cpu(b)?))
}

fn parse_batch(s: &str) -> std::result::Result<Batch, String> {
    if s == "auto" {
        return Ok(Batch::Auto);
    }
    match s.parse::<u64>() {
        Ok(k) if k > 0 => Ok(Batch::Fixed(k)),
        _ => Err(format!("{s:?} is not auto or a positive number")),
    }
}

/// Picks the entry and fills in the defaults of the contract.
pub fn resolve(entries: &[Entry], common: &Common) -> Result<(Entry, Mode, Wait)> {
    let first = entries
        .first()
        .ok_or_else(|| HarnessError::Usage("no transport is registered".into()))?;
    let entry = match &common.variant {
        None => *first,
        Some(v) => *entries.iter().find(|e| e.variant == v).ok_or_else(|| {
            let all: Vec<&str> = entries.iter().map(|e| e.variant).collect();
            HarnessError::Usage(format!(
                "unknown variant {v:?}: {} has {}",
                first.method,
                all.join(", ")
            ))
        })?,
    };
    let mode = common.mode.map(Mode::from).unwrap_or(entry.modes[0]);
    if !entry.modes.contains(&mode) {
        let all: Vec<&str> = entry.modes.iter().map(|m| m.as_str()).collect();
        return Err(HarnessError::Usage(format!(
            "{} does not support {mode} mode; it supports {}",
            entry.id(),
            all.join(", ")
        )));
    }
    let wait = match (mode, common.wait) {
        (Mode::Coroutine, None | Some(Wait::Resume)) => Wait::Resume,
        (Mode::Coroutine, Some(w)) => {
            return Err(HarnessError::Usage(format!(
                "coroutine mode waits by resume only (both ends share one thread, so --wait {} could never be woken)",
                w.as_str()
            )))
        }
        (_, Some(Wait::Resume)) => {
            return Err(HarnessError::Usage(format!(
                "--wait resume is the coroutine hand-off; {mode} mode takes block, spin or hybrid"
            )))
        }
        (_, w) => w.unwrap_or(Wait::Block),
    };
    if !(common.peer_timeout.is_finite() && common.peer_timeout > 0.0) {
        return Err(HarnessError::Usage(
            "--peer-timeout takes a positive number of seconds".into(),
        ));
    }
    Ok((entry, mode, wait))
}

/// The run's configuration from the command line.
pub fn config(mode: Mode, wait: Wait, common: &Common) -> RunConfig {
    RunConfig {
        pin: common.pin.or_else(crate::sys::single_cpu_affinity),
        peer_timeout: Duration::from_secs_f64(common.peer_timeout),
        spin: Duration::from_micros(common.spin_us),
        ..RunConfig::new(mode, wait, 64, 0)
    }
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
pub fn run_peer_if_asked(entries: &[Entry]) {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a == PEER_ARG) != Some(true) {
        return;
    }
    let code = match peer(entries, args.get(2)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("peer: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn peer(entries: &[Entry], spec: Option<&OsString>) -> Result<()> {
    let spec = spec.and_then(|s| s.to_str()).unwrap_or_default();
    let spec: PeerSpec = serde_json::from_str(spec)
        .map_err(|e| HarnessError::Usage(format!("bad peer specification: {e}")))?;
    crate::peer::watch_parent(&spec);
    let entry = entries
        .iter()
        .find(|e| e.id() == spec.entry)
        .ok_or_else(|| {
            HarnessError::Usage(format!("this binary has no transport {}", spec.entry))
        })?;
    let result = (entry.peer)(&spec);
    // A transport that saw its peer vanish ends the run quietly; when the
    // peer is our parent, say so.
    if !crate::peer::parent_alive(&spec) {
        crate::peer::parent_gone(spec.parent);
    }
    result
}

/// The `main` of a method's binary: parses the shared command line and runs
/// the demo, `pingpong`, `stream` or `clean` on `entries` (the method's
/// variants, the default first). Exits with the contract's codes.
pub fn main(info: MethodInfo, entries: &[Entry]) -> ! {
    run_peer_if_asked(entries);
    remove_objects_on_interrupt();
    let cmd = Cli::command()
        .name(info.binary)
        .bin_name(info.binary)
        .about(info.about)
        .long_about(format!("{}\n\n{}", info.about, info.long_about));
    let cli = match cmd
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let code = match run(cli, entries) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code)
}

fn run(cli: Cli, entries: &[Entry]) -> Result<()> {
    match cli.command {
        None => {
            let d = cli.demo;
            let (entry, mode, wait) = resolve(entries, &d.common)?;
            let mut cfg = config(mode, wait, &d.common);
            cfg.count = d.count;
            cfg.interval = Duration::from_millis(d.interval_ms);
            println!(
                "{}/{} demo, {mode} mode, wait {}: the producer sends {} tasks, one every {} ms",
                entry.method,
                entry.variant,
                wait.as_str(),
                d.count,
                d.interval_ms
            );
            let mut rtts = (entry.demo)(&cfg)?;
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
            Ok(())
        }
        Some(Command::Pingpong(a)) => {
            let m = &a.measure;
            let (entry, mode, wait) = resolve(entries, &m.common)?;
            let cfg = measure_config(mode, wait, m, a.count);
            let r = (entry.pingpong)(&cfg)?;
            let label = label(&entry, &cfg);
            if m.json {
                println!("{}", json(&PingpongJson::new(&label, cfg.warmup, &r))?);
            } else {
                println!("{}", report::pingpong_text(&label, cfg.warmup, &r));
            }
            Ok(())
        }
        Some(Command::Stream(a)) => {
            let m = &a.measure;
            let (entry, mode, wait) = resolve(entries, &m.common)?;
            let cfg = measure_config(mode, wait, m, a.count);
            let r = (entry.stream)(&cfg)?;
            let label = label(&entry, &cfg);
            if m.json {
                println!("{}", json(&StreamJson::new(&label, m.verify.as_str(), &r))?);
            } else {
                println!("{}", report::stream_text(&label, m.verify.as_str(), &r));
            }
            Ok(())
        }
        Some(Command::Clean) => clean(entries),
    }
}

fn measure_config(mode: Mode, wait: Wait, m: &Measure, count: u64) -> RunConfig {
    let mut cfg = config(mode, wait, &m.common);
    cfg.size = m.size;
    cfg.count = count;
    cfg.warmup = m.warmup;
    cfg.batch = m.batch;
    cfg.verify = m.verify;
    cfg.capacity = m.capacity;
    cfg
}

fn json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|e| HarnessError::Other(format!("cannot write JSON: {e}")))
}

/// Runs `clean` for every entry and says what it found.
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
    if all.removed.is_empty() && all.live.is_empty() && all.foreign.is_empty() {
        println!("nothing to clean");
    }
    Ok(())
}
