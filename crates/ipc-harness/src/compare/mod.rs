//! `ipc-compare`: every registered transport, in every mode and wait it
//! supports, over a sweep of message sizes, with the bare mechanism each one
//! wraps measured beside it in the same run; a table, results.json,
//! results.csv, SVG charts and one self-contained page, report.html, that
//! answers what each boundary (process, thread, coroutine) costs here.
//! `ipc-compare diff OLD.json NEW.json` shows which rows moved.

mod charts;
mod diff;
mod files;
mod page;
mod reference;

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ipc_core::Mode;
use serde::Serialize;

use crate::cli::{check_fits, config, label};
use crate::config::{bounds, Batch, RunConfig};
use crate::entry::Entry;
use crate::error::{HarnessError, Result};
use crate::report::{PingpongReport, RunLabel};

use crate::wait::Wait;

pub use reference::Reference;

/// The sizes of the default sweep, in bytes.
pub const SWEEP: [u64; 6] = [8, 64, 512, 4096, 65536, 1 << 20];

/// How long one row may take by default, in milliseconds (its timed round
/// trips; the warm-up and the set-up come on top).
pub const ROW_BUDGET_MS: u64 = 120;

/// The command line of ipc-compare.
#[derive(Debug, Parser)]
#[command(
    name = "ipc-compare",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true,
    about = "Measures every IPC method in every mode and wait it supports, over a sweep of sizes, beside the bare mechanism it wraps",
    long_about = "Measures every IPC method in every mode and wait it supports, over a sweep of message \
sizes (8 B to 1 MiB; a size above a method's largest message is shown as skipped), beside the bare \
mechanism each one wraps (a raw pipe, socket, queue, signal or semaphore ping-pong, the atomic floor \
and a plain slot ring, crossbeam's bounded(1), a bare coroutine), measured in the same run and \
interleaved with the rows they stand beside.\n\n\
Each row is a ping-pong: the producer sends a message, the consumer echoes it, and the round trip is \
timed. A row stops after --count round trips or its time budget (--budget-ms, 120 ms by default), \
whichever comes first; the row reports the count it used. The default run takes about two to three minutes on 2 cores; --quick \
(64 bytes only, at most 2000 round trips a row) well under one.\n\n\
Into the output folder go results.json (the machine, the command line and every row), results.csv, \
SVG charts (p50 with a p99 whisker per row; latency against size) and report.html, one page readable \
offline that holds the machine, the answers, the charts and the table. On a virtual machine whose \
idle CPUs halt, a blocking wake-up across CPUs costs tens of microseconds and hides the mechanism: \
run with --pin 0,0 (both sides on one CPU) as well as unpinned.\n\n\
A row that fails is reported as failed, with the reason, and the rest of the run goes on.",
    after_long_help = "Bounds: --sizes each at most 1 GiB; --count 1 to 10^12; --budget-ms 1 to \
3600000; --peer-timeout above 0 and at most 3600 s.\n\n\
ipc-compare diff OLD.json NEW.json: which rows moved between two runs (two machines, two versions)."
)]
pub struct CompareArgs {
    /// `diff`, or nothing: a comparison.
    #[command(subcommand)]
    pub command: Option<CompareCommand>,
    /// A first look at 64 bytes (well under a minute) [sizes 64, count 2000].
    #[arg(long)]
    pub quick: bool,
    /// Message sizes in bytes, comma-separated, each at most 1 GiB
    /// [default: 8,64,512,4096,65536,1048576; 64 with --quick].
    #[arg(long, value_delimiter = ',',
          value_parser = clap::value_parser!(u64).range(0..=bounds::MAX_SIZE as u64))]
    pub sizes: Option<Vec<u64>>,
    /// Timed round trips a row makes at most [default: 20000; 2000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=bounds::MAX_COUNT))]
    pub count: Option<u64>,
    /// Milliseconds of timed round trips a row takes at most.
    #[arg(long, value_name = "MS", default_value_t = ROW_BUDGET_MS,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub budget_ms: u64,
    /// Pin producer and consumer to CPUs A and B (with A = B, spin and hybrid
    /// yield the CPU between polls, so that the peer can run); the
    /// references run on CPU A.
    #[arg(long, value_name = "A,B", value_parser = crate::cli::parse_pin)]
    pub pin: Option<(usize, usize)>,
    /// Only the methods whose `method/variant` contains this (e.g. pipes),
    /// and the references that stand beside them.
    #[arg(long)]
    pub only: Option<String>,
    /// Print one JSON line per result on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The folder for results.json, results.csv, the charts and report.html.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Seconds to wait for a silent or dying peer (at most 3600).
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = crate::cli::parse_peer_timeout)]
    pub peer_timeout: f64,
}

/// ipc-compare's subcommands.
#[derive(Debug, Subcommand)]
pub enum CompareCommand {
    /// Which rows moved between two results.json files, and by how much.
    Diff {
        /// The earlier results.json.
        old: PathBuf,
        /// The later results.json.
        new: PathBuf,
    },
}

/// The waits worth measuring in `mode`.
pub fn waits(mode: Mode) -> &'static [Wait] {
    match mode {
        Mode::Coroutine => &[Wait::Resume],
        _ => &[Wait::Block, Wait::Hybrid, Wait::Spin],
    }
}

/// What a row measured: a method, or the bare mechanism beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A transport of the one list.
    Method,
    /// A reference from the references crate.
    Reference,
}

/// One row of the comparison.
#[derive(Debug)]
pub struct Row {
    /// What ran (a reference's method is `reference`, its variant its name).
    pub label: RunLabel,
    /// A method or a reference.
    pub kind: Kind,
    /// Untimed round trips first.
    pub warmup: u64,
    /// The figures, when it ran.
    pub report: Option<PingpongReport>,
    /// Why it did not run, or how it failed.
    pub error: Option<String>,
    /// `ok`, `skipped` or `failed`.
    pub status: &'static str,
    /// The reference this row stands beside at its size (its variant).
    pub reference: Option<String>,
    /// This row's p50 over its reference's, from the same run.
    pub x_reference: Option<f64>,
}

impl Row {
    /// `method/variant`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.label.method, self.label.variant)
    }

    /// The row's key, the same in every run: what ran, where, how, at what size.
    pub fn key(&self) -> String {
        format!(
            "{} {} {} {}",
            self.id(),
            self.label.mode,
            self.label.wait,
            self.label.size
        )
    }
}

/// ipc-compare's `main` without references: `entries` is the table of
/// every transport.
///
/// # Safety
///
/// As for [`crate::main`]: call it first in `main`, before any thread
/// starts and before this process opens any fd of its own.
pub unsafe fn main(entries: &[Entry]) -> ! {
    // SAFETY: passed on from our caller.
    unsafe { main_with_references(entries, &[]) }
}

/// ipc-compare's `main`: `entries` is the table of every transport and
/// `references` the bare mechanisms measured beside them.
///
/// # Safety
///
/// As for [`main`].
pub unsafe fn main_with_references(entries: &[Entry], references: &[Reference]) -> ! {
    if let Err(e) = crate::cli::before_threads(entries) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
    // SAFETY: passed on from our caller.
    unsafe { crate::cli::run_peer_if_asked(entries) };
    crate::cli::remove_objects_on_interrupt();
    let args = match CompareArgs::command()
        .try_get_matches()
        .and_then(|m| CompareArgs::from_arg_matches(&m))
    {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    let result = match &args.command {
        Some(CompareCommand::Diff { old, new }) => diff::run(old, new),
        None => run(&args, entries, references),
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code())
        }
    }
}

/// Runs one row on a thread of its own and waits for its result, or for
/// word that its peer died unnoticed (a transport blocked in the kernel
/// for ever): then the row failed, its thread is left behind, and the
/// comparison goes on.
fn run_row(
    entry: Entry,
    cfg: RunConfig,
    deaths: &mpsc::Receiver<String>,
) -> Result<PingpongReport> {
    while deaths.try_recv().is_ok() {} // news of rows that ended already
    check_fits(&entry, &cfg)?;
    let (done, result) = mpsc::channel();
    std::thread::Builder::new()
        .name("row".into())
        .spawn(move || {
            let _ = done.send((entry.pingpong)(&cfg));
        })
        .map_err(|e| ipc_core::Error::io("start a row's thread", e))?;
    loop {
        match result.recv_timeout(Duration::from_millis(50)) {
            Ok(r) => return r,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(HarnessError::Other("the row's thread panicked".into()))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(why) = deaths.try_recv() {
                    return Err(HarnessError::Other(format!("{why}; the row was abandoned")));
                }
            }
        }
    }
}

/// One step of the plan: a reference or a method's row, at a size.
enum Step {
    Reference(usize, usize),
    Method(Entry, Mode, Wait, usize),
}

/// The settings every row of a run shares.
struct Settings {
    count: u64,
    budget: Duration,
    pin: Option<(usize, usize)>,
    peer_timeout: f64,
}

impl Settings {
    /// How many timed round trips fit the budget, from a probe's mean.
    fn fitting(&self, mean_ns: f64) -> u64 {
        let fit = (self.budget.as_nanos() as f64 / mean_ns.max(1.0)) as u64;
        fit.clamp(20.min(self.count), self.count)
    }

    /// Untimed round trips before the timed ones: fewer for large
    /// messages, whose round trips are long.
    fn warmup(&self, size: usize) -> u64 {
        let most = match size {
            0..=4096 => 1000,
            4097..=65536 => 100,
            _ => 20,
        };
        most.min(self.count)
    }

    /// A method's row: at most `count` round trips, within the budget.
    fn config(&self, mode: Mode, wait: Wait, size: usize) -> RunConfig {
        let common = crate::cli::Common {
            mode: None,
            variant: None,
            wait: None,
            pin: self.pin,
            peer_timeout: self.peer_timeout,
            spin_us: crate::wait::HYBRID_SPIN.as_micros() as u64,
        };
        let mut cfg = config(mode, wait, &common);
        cfg.size = size;
        cfg.count = self.count;
        cfg.warmup = self.warmup(size);
        cfg.budget = Some(self.budget);
        cfg.batch = Batch::Auto;
        cfg.peer_timeout = Duration::from_secs_f64(self.peer_timeout);
        cfg
    }
}

/// The plan of a run: for each size, each entry's rows, each preceded by
/// the reference it stands beside where that was not measured at this size
/// yet, so that a reference and its rows are measured minutes apart at most.
fn plan(
    sizes: &[u64],
    entries: &[Entry],
    references: &[Reference],
    only: Option<&str>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    for &size in sizes {
        let size = size as usize;
        let mut done = vec![false; references.len()];
        for entry in entries {
            let id = entry.id();
            if only.is_some_and(|o| !id.contains(o)) {
                continue;
            }
            for r in reference::beside(references, &id, size) {
                if !done[r] {
                    done[r] = true;
                    steps.push(Step::Reference(r, size));
                }
            }
            for &mode in entry.modes {
                for &wait in waits(mode) {
                    steps.push(Step::Method(*entry, mode, wait, size));
                }
            }
        }
    }
    steps
}

fn run(args: &CompareArgs, entries: &[Entry], references: &[Reference]) -> Result<()> {
    let (death_tx, deaths) = mpsc::channel();
    crate::peer::report_unnoticed_deaths_to(death_tx);
    let sizes = match (&args.sizes, args.quick) {
        (Some(s), _) => s.clone(),
        (None, true) => vec![64],
        (None, false) => SWEEP.to_vec(),
    };
    let settings = Settings {
        count: args.count.unwrap_or(if args.quick { 2000 } else { 20_000 }),
        budget: Duration::from_millis(args.budget_ms),
        pin: args.pin,
        peer_timeout: args.peer_timeout,
    };
    let steps = plan(&sizes, entries, references, args.only.as_deref());
    let bar = indicatif::ProgressBar::new(steps.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed:>4} {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut rows: Vec<Row> = Vec::new();
    // Where each reference's row at each size went, for the ratios.
    let mut measured: Vec<(usize, usize, usize)> = Vec::new();
    for step in steps {
        let row = match step {
            Step::Reference(r, size) => {
                let reference = &references[r];
                bar.set_message(format!("reference {} {size} B", reference.name));
                let row = reference.measure(size, &settings);
                measured.push((r, size, rows.len()));
                row
            }
            Step::Method(entry, mode, wait, size) => {
                let mut row = measure_method(entry, mode, wait, size, &settings, &deaths, &bar);
                if let Some(r) = reference::of(references, &entry.id(), size) {
                    let at = measured.iter().find(|m| m.0 == r && m.1 == size);
                    if let Some(&(_, _, at)) = at {
                        let base: &Row = &rows[at];
                        row.reference = Some(base.label.variant.clone());
                        // A ratio compares like with like: a row that waits
                        // as its reference does.
                        row.x_reference = match (&row.report, &base.report) {
                            (Some(a), Some(b))
                                if b.rtt.p50 > 0 && wait.as_str() == base.label.wait =>
                            {
                                Some(a.rtt.p50 as f64 / b.rtt.p50 as f64)
                            }
                            _ => None,
                        };
                    }
                }
                row
            }
        };
        bar.inc(1);
        if args.json {
            println!("{}", files::row_json(&row));
        }
        rows.push(row);
    }
    bar.finish_and_clear();
    // The objects of rows abandoned with their thread.
    ipc_core::names::remove_all_registered();
    let run = files::Run::new(rows, args.pin);
    if !args.json {
        print!("{}", files::table(&run));
    }
    files::write_all(&args.out, &run)?;
    if !args.json {
        println!(
            "results written to {}: report.html (open it in a browser), results.json, results.csv and the charts",
            args.out.display()
        );
    }
    Ok(())
}

/// Measures one method's row: at most `count` round trips, stopped by the
/// time budget.
fn measure_method(
    entry: Entry,
    mode: Mode,
    wait: Wait,
    size: usize,
    settings: &Settings,
    deaths: &mpsc::Receiver<String>,
    bar: &indicatif::ProgressBar,
) -> Row {
    let cfg = settings.config(mode, wait, size);
    bar.set_message(format!(
        "{} {} {} {size} B",
        entry.id(),
        mode.as_str(),
        wait.as_str()
    ));
    let skip = size > (entry.message_limit)().bytes;
    let outcome = if skip {
        Err(HarnessError::Usage(format!(
            "{size} bytes is above the largest message of {}: {} bytes",
            entry.id(),
            (entry.message_limit)().bytes
        )))
    } else {
        run_row(entry, cfg.clone(), deaths)
    };
    let (report, error, status) = match outcome {
        Ok(r) => (Some(r), None, "ok"),
        Err(HarnessError::Transport(e @ ipc_core::Error::TooLarge { .. })) => {
            (None, Some(e.to_string()), "skipped")
        }
        Err(e) if skip => (None, Some(e.to_string()), "skipped"),
        Err(e) => (None, Some(e.to_string()), "failed"),
    };
    let mut label = label(&entry, &cfg);
    if let Some(r) = &report {
        label.count = r.count;
    }
    Row {
        label,
        kind: Kind::Method,
        warmup: cfg.warmup,
        report,
        error,
        status,
        reference: None,
        x_reference: None,
    }
}
