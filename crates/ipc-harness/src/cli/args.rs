//! The command line every method's binary shares (**contract**): its
//! options, and the checks that hold each to its bounds before anything is
//! allocated or started.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipc_core::Mode;

use crate::config::{bounds, Batch, RunConfig};
use crate::entry::Entry;
use crate::error::{HarnessError, Result};
use crate::payload::Verify;
use crate::wait::Wait;

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
    /// Seconds to wait for a silent or dying peer before giving up (at most 3600).
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = parse_peer_timeout)]
    pub peer_timeout: f64,
    /// Microseconds `--wait hybrid` polls before it sleeps (at most 10 s).
    #[arg(long, value_name = "US", default_value_t = crate::wait::HYBRID_SPIN.as_micros() as u64,
          value_parser = clap::value_parser!(u64).range(0..=bounds::MAX_SPIN_US))]
    pub spin_us: u64,
}

/// Options of a measurement.
#[derive(Debug, Clone, Args)]
pub struct Measure {
    /// The options every subcommand takes.
    #[command(flatten)]
    pub common: Common,
    /// The whole message handed to the transport, in bytes (the stamp lives
    /// inside): at most 1 GiB, and at most what the method carries.
    #[arg(long, default_value_t = 64, value_parser = parse_size)]
    pub size: usize,
    /// Untimed messages before the timed ones (at most 10^12).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=bounds::MAX_COUNT))]
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
    /// (shm: the ring's size; pipes: the pipe buffer; channels: 128 a slot)
    /// [default: the method's].
    #[arg(long, value_name = "BYTES", value_parser = parse_capacity)]
    pub capacity: Option<usize>,
    /// Zero-copy, where the method has it (shm): the producer writes each
    /// message in place inside the channel and the consumer checks it
    /// there, instead of copying it in and out.
    #[arg(long)]
    pub zero_copy: bool,
}

/// Several producers and consumers on one channel, where the method has them.
#[derive(Debug, Clone, Args)]
pub struct Sides {
    /// Producers sending on one channel, each a thread (at most 64); each
    /// producer's messages must arrive in its order, every one exactly once.
    #[arg(long, default_value_t = 1, value_parser = parse_sides)]
    pub producers: usize,
    /// Consumers receiving from one channel (at most 64), each where the
    /// mode puts it.
    #[arg(long, default_value_t = 1, value_parser = parse_sides)]
    pub consumers: usize,
}

/// `pingpong` options.
#[derive(Debug, Clone, Args)]
pub struct PingpongArgs {
    /// The options of every measurement.
    #[command(flatten)]
    pub measure: Measure,
    /// Timed round trips (1 to 10^12).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=bounds::MAX_COUNT))]
    pub count: u64,
}

/// `stream` options.
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// The options of every measurement.
    #[command(flatten)]
    pub measure: Measure,
    /// Timed messages, all producers together (1 to 10^12).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=bounds::MAX_COUNT))]
    pub count: u64,
    /// Producers and consumers.
    #[command(flatten)]
    pub sides: Sides,
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
    /// The options every subcommand takes.
    #[command(flatten)]
    pub common: Common,
    /// Tasks each producer sends (1 to 10^12).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=bounds::MAX_COUNT))]
    pub count: u64,
    /// Milliseconds the producer sleeps between tasks (at most an hour).
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(0..=bounds::MAX_INTERVAL_MS))]
    pub interval_ms: u64,
    /// Producers and consumers.
    #[command(flatten)]
    pub sides: Sides,
}

/// The whole command line.
#[derive(Debug, Parser)]
#[command(args_conflicts_with_subcommands = true, disable_version_flag = true)]
pub struct Cli {
    /// What to run: a measurement or `clean`; none runs the demo.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The demo's options.
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// Parses `--pin A,B`: two CPUs this machine can name.
pub(crate) fn parse_pin(s: &str) -> std::result::Result<(usize, usize), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or("expected two CPUs as A,B, e.g. 0,0")?;
    let most = nix::sched::CpuSet::count();
    let cpu = |x: &str| match x.trim().parse::<usize>() {
        Ok(c) if c < most => Ok(c),
        Ok(c) => Err(format!(
            "CPU {c} is beyond the {most} CPUs a process can name"
        )),
        Err(_) => Err(format!("{x:?} is not a CPU number")),
    };
    Ok((cpu(a)?, cpu(b)?))
}

/// Parses `--peer-timeout`: positive seconds, at most an hour.
pub(crate) fn parse_peer_timeout(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 && t <= bounds::MAX_PEER_TIMEOUT_S => Ok(t),
        _ => Err(format!(
            "{s:?} is not a number of seconds above 0 and at most {}",
            bounds::MAX_PEER_TIMEOUT_S
        )),
    }
}

fn parse_size(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<u64>() {
        Ok(n) if n <= bounds::MAX_SIZE as u64 => Ok(n as usize),
        Ok(_) => Err(format!(
            "the largest --size is {} bytes (1 GiB)",
            bounds::MAX_SIZE
        )),
        Err(_) => Err(format!("{s:?} is not a number of bytes")),
    }
}

fn parse_capacity(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 && usize::try_from(n).is_ok() => Ok(n as usize),
        Ok(0) => Err("a capacity of 0 bytes holds nothing".into()),
        _ => Err(format!("{s:?} is not a number of bytes")),
    }
}

fn parse_sides(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=bounds::MAX_SIDES).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a number from 1 to {}",
            bounds::MAX_SIDES
        )),
    }
}

fn parse_batch(s: &str) -> std::result::Result<Batch, String> {
    if s == "auto" {
        return Ok(Batch::Auto);
    }
    match s.parse::<u64>() {
        Ok(k) if (1..=bounds::MAX_COUNT).contains(&k) => Ok(Batch::Fixed(k)),
        _ => Err(format!(
            "{s:?} is not auto or a number from 1 to {}",
            bounds::MAX_COUNT
        )),
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

/// Checks a run against what its transport and this machine allow, before
/// anything is allocated: the message size against the method's largest
/// message and the memory available, the capacity against the method's
/// largest, several producers or consumers against what the method has.
pub fn check_fits(entry: &Entry, cfg: &RunConfig) -> Result<()> {
    let limit = (entry.message_limit)();
    if cfg.size > limit.bytes {
        return Err(HarnessError::Usage(format!(
            "--size {} is above the largest message of {}: {} bytes ({})",
            cfg.size,
            entry.id(),
            limit.bytes,
            limit.name
        )));
    }
    if let Some(capacity) = cfg.capacity {
        let limit = (entry.capacity_limit)();
        if capacity > limit.bytes {
            return Err(HarnessError::Usage(format!(
                "--capacity {capacity} is above the largest of {}: {} bytes ({})",
                entry.id(),
                limit.bytes,
                limit.name
            )));
        }
    }
    if cfg.zero_copy && !entry.zero_copy {
        return Err(HarnessError::Usage(format!(
            "{} has no zero-copy path (shared memory has one): leave out --zero-copy",
            entry.id()
        )));
    }
    if cfg.zero_copy && cfg.is_shared() {
        return Err(HarnessError::Usage(
            "--zero-copy runs one producer and one consumer".into(),
        ));
    }
    if cfg.producers > 1 && !entry.multi_producer {
        return Err(HarnessError::Usage(format!(
            "{} has one producer per channel: --producers must be 1",
            entry.id()
        )));
    }
    if cfg.consumers > 1 && !entry.multi_consumer {
        return Err(HarnessError::Usage(format!(
            "{} has one consumer per channel: --consumers must be 1",
            entry.id()
        )));
    }
    if cfg.is_shared() && cfg.size < 8 {
        return Err(HarnessError::Usage(
            "with several producers or consumers, --size must be at least 8 (each message carries its producer and number)".into(),
        ));
    }
    let buffers = bounds::BUFFERS_PER_SIZE * (cfg.producers + cfg.consumers);
    let need = cfg.size.saturating_mul(buffers);
    if let Some(available) = memory_available() {
        if need as u64 > available {
            return Err(HarnessError::Usage(format!(
                "--size {} needs about {need} bytes of memory for its buffers; this machine has {available} bytes available (MemAvailable)",
                cfg.size
            )));
        }
    }
    Ok(())
}

/// MemAvailable from /proc/meminfo, in bytes.
fn memory_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
