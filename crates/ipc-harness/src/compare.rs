//! `ipc-compare`: every registered transport, in every mode and wait it
//! supports, on the same work; a table sorted by median round trip, one JSON
//! line per result on request, and results.json / results.csv / SVG charts
//! in a folder.

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use ipc_core::Mode;
use serde::Serialize;

use crate::cli::{check_fits, config, label};
use crate::config::{bounds, Batch, RunConfig};
use crate::entry::Entry;
use crate::error::{HarnessError, Result};
use crate::report::{self, PingpongJson, PingpongReport, RunLabel};
use crate::wait::Wait;

/// The command line of ipc-compare.
#[derive(Debug, Parser)]
#[command(
    name = "ipc-compare",
    disable_version_flag = true,
    about = "Measures every IPC method in every mode and wait it supports, on the same work",
    long_about = "Measures every IPC method in every mode and wait it supports, on the same work.\n\n\
Each run is a ping-pong: the producer sends a message, the consumer echoes it, and the round \
trip is timed. The table is sorted by median round trip; results.json and results.csv go into \
the output folder. On a virtual machine whose idle CPUs halt, a blocking wake-up across CPUs \
costs tens of microseconds and hides the mechanism: compare with --pin 0,0 (both sides on one \
CPU) as well as unpinned with spin and hybrid waits.\n\n\
A row whose peer process dies is reported as failed, with the reason, and the rest of the run \
goes on and writes its files.",
    after_long_help = "Bounds: --sizes each at most 1 GiB (above a method's largest message the row is \
skipped); --count 1 to 10^12; --peer-timeout above 0 and at most 3600 s."
)]
pub struct CompareArgs {
    /// A small run (well under a minute) for a first look and for tests.
    #[arg(long)]
    pub quick: bool,
    /// Message sizes in bytes, comma-separated (each at most 1 GiB).
    #[arg(long, value_delimiter = ',', default_value = "64",
          value_parser = clap::value_parser!(u64).range(0..=bounds::MAX_SIZE as u64))]
    pub sizes: Vec<u64>,
    /// Timed round trips per run [default: 20000; 2000 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=bounds::MAX_COUNT))]
    pub count: Option<u64>,
    /// Pin producer and consumer to CPUs A and B (with A = B, spin and hybrid
    /// yield the CPU between polls, so that the peer can run).
    #[arg(long, value_name = "A,B", value_parser = crate::cli::parse_pin)]
    pub pin: Option<(usize, usize)>,
    /// Only the methods whose name contains this (e.g. pipes).
    #[arg(long)]
    pub only: Option<String>,
    /// Print one JSON line per result on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The folder for results.json and results.csv.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub out: PathBuf,
    /// Seconds to wait for a silent or dying peer (at most 3600).
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = crate::cli::parse_peer_timeout)]
    pub peer_timeout: f64,
}

/// The waits worth measuring in `mode`.
pub fn waits(mode: Mode) -> &'static [Wait] {
    match mode {
        Mode::Coroutine => &[Wait::Resume],
        _ => &[Wait::Block, Wait::Hybrid, Wait::Spin],
    }
}

/// One row of the comparison.
#[derive(Debug, Serialize)]
pub struct Row {
    /// What ran.
    #[serde(flatten)]
    pub label: RunLabel,
    /// Untimed round trips first.
    pub warmup: u64,
    /// The figures, when it ran.
    #[serde(skip)]
    pub report: Option<PingpongReport>,
    /// Why it did not run, or how it failed.
    pub error: Option<String>,
    /// `ok`, `skipped` or `failed`.
    pub status: &'static str,
}

/// ipc-compare's `main`: `entries` is the table of every transport.
///
/// # Safety
///
/// As for [`crate::main`]: call it first in `main`, before any thread
/// starts and before this process opens any fd of its own.
pub unsafe fn main(entries: &[Entry]) -> ! {
    if let Err(e) = crate::cli::before_threads(entries) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
    // SAFETY: passed on from our caller: this is the start of main.
    unsafe { crate::cli::run_peer_if_asked(entries) };
    crate::cli::remove_objects_on_interrupt();
    let args = match CompareArgs::command()
        .try_get_matches()
        .and_then(|m| CompareArgs::from_arg_matches(&m))
    {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    match run(&args, entries) {
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

fn run(args: &CompareArgs, entries: &[Entry]) -> Result<()> {
    let (death_tx, deaths) = mpsc::channel();
    crate::peer::report_unnoticed_deaths_to(death_tx);
    let count = args.count.unwrap_or(if args.quick { 2000 } else { 20_000 });
    let warmup = if args.quick { 200 } else { 1000 };
    let mut plan = Vec::new();
    for entry in entries {
        if args
            .only
            .as_deref()
            .is_some_and(|o| !entry.id().contains(o))
        {
            continue;
        }
        for &mode in entry.modes {
            for &wait in waits(mode) {
                for &size in &args.sizes {
                    plan.push((*entry, mode, wait, size as usize));
                }
            }
        }
    }
    let bar = indicatif::ProgressBar::new(plan.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut rows = Vec::new();
    for (entry, mode, wait, size) in plan {
        let common = crate::cli::Common {
            mode: None,
            variant: None,
            wait: None,
            pin: args.pin,
            peer_timeout: args.peer_timeout,
            spin_us: crate::wait::HYBRID_SPIN.as_micros() as u64,
        };
        let mut cfg = config(mode, wait, &common);
        cfg.size = size;
        cfg.count = count;
        cfg.warmup = warmup;
        cfg.batch = Batch::Auto;
        cfg.peer_timeout = Duration::from_secs_f64(args.peer_timeout);
        let label = label(&entry, &cfg);
        bar.set_message(format!(
            "{}/{} {} {} {} B",
            label.method, label.variant, label.mode, label.wait, size
        ));
        let skip = size > (entry.message_limit)().bytes;
        let (report, error, status) = match run_row(entry, cfg, &deaths) {
            Ok(r) => (Some(r), None, "ok"),
            Err(HarnessError::Transport(e @ ipc_core::Error::TooLarge { .. })) => {
                (None, Some(e.to_string()), "skipped")
            }
            Err(e) if skip => (None, Some(e.to_string()), "skipped"),
            Err(e) => (None, Some(e.to_string()), "failed"),
        };
        let row = Row {
            label,
            warmup,
            report,
            error,
            status,
        };
        bar.inc(1);
        if args.json {
            println!("{}", row_json(&row));
        }
        rows.push(row);
    }
    bar.finish_and_clear();
    // The objects of rows abandoned with their thread.
    ipc_core::names::remove_all_registered();
    rows.sort_by_key(|r| r.report.map_or(u64::MAX, |rep| rep.rtt.p50));
    if !args.json {
        print!("{}", table(&rows, args.pin));
    }
    write_files(&args.out, &rows, args.pin)?;
    if !args.json {
        println!(
            "results written to {}/results.json, results.csv, rtt_p50.svg, rtt_p99.svg and cpu_per_msg.svg",
            args.out.display()
        );
    }
    Ok(())
}

/// One result as a JSON line: the pingpong contract, plus `error` and `status`.
fn row_json(row: &Row) -> String {
    let value = match &row.report {
        Some(r) => serde_json::to_value(PingpongJson::new(&row.label, row.warmup, r)),
        None => serde_json::to_value(&row.label),
    };
    let mut value = value.unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("schema".into(), 1.into());
        obj.insert("status".into(), row.status.into());
        obj.insert("error".into(), row.error.clone().into());
    }
    value.to_string()
}

/// The human table.
pub fn table(rows: &[Row], pin: Option<(usize, usize)>) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "machine: {}\nwhere: {}; round trips in ns, percentiles over batch means where batch > 1\n\n",
        crate::sys::machine(),
        report::pin_words(pin.map(|(a, b)| [a, b]))
    ));
    out.push_str(&format!(
        "{:<22} {:<9} {:<6} {:>7} {:>10} {:>10} {:>10} {:>6} {:>12} {:>10}\n",
        "method", "mode", "wait", "size", "p50", "p99", "max", "batch", "msgs/s", "cpu/msg"
    ));
    for r in rows {
        let id = format!("{}/{}", r.label.method, r.label.variant);
        match &r.report {
            Some(rep) => out.push_str(&format!(
                "{:<22} {:<9} {:<6} {:>7} {:>10} {:>10} {:>10} {:>6} {:>12.0} {:>10}\n",
                id,
                r.label.mode,
                r.label.wait,
                r.label.size,
                rep.rtt.p50,
                rep.rtt.p99,
                rep.rtt.max,
                rep.batch,
                rep.msgs_per_s,
                rep.cpu_ns_per_msg
                    .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}"))
            )),
            None => out.push_str(&format!(
                "{:<22} {:<9} {:<6} {:>7} {}: {}\n",
                id,
                r.label.mode,
                r.label.wait,
                r.label.size,
                r.status,
                r.error.as_deref().unwrap_or("")
            )),
        }
    }
    out
}

/// One chart: its file, its title and the figure it draws of each run.
type Chart = (&'static str, &'static str, fn(&PingpongReport) -> f64);

fn write_files(dir: &std::path::Path, rows: &[Row], pin: Option<(usize, usize)>) -> Result<()> {
    let io = |what: &str, e: std::io::Error| {
        HarnessError::Other(format!("{what} in {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create the folder", e))?;
    let results: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::from_str(&row_json(r)).unwrap_or_default())
        .collect();
    let doc = serde_json::json!({
        "schema": 1,
        "machine": crate::sys::machine(),
        "pin": pin.map(|(a, b)| [a, b]),
        "results": results,
    });
    let text =
        serde_json::to_string_pretty(&doc).map_err(|e| HarnessError::Other(e.to_string()))?;
    std::fs::write(dir.join("results.json"), text + "\n")
        .map_err(|e| io("cannot write results.json", e))?;

    let mut csv = Vec::new();
    let _ = writeln!(
        csv,
        "method,variant,mode,wait,size,count,batch,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,mean_ns,msgs_per_s,cpu_ns_per_msg,status,error"
    );
    for r in rows {
        let l = &r.label;
        let figures = match &r.report {
            Some(p) => format!(
                "{},{},{},{},{},{},{},{:.1},{}",
                p.batch,
                p.rtt.p50,
                p.rtt.p90,
                p.rtt.p99,
                p.rtt.p999,
                p.rtt.max,
                p.rtt.mean,
                p.msgs_per_s,
                p.cpu_ns_per_msg
                    .map(|c| format!("{c:.1}"))
                    .unwrap_or_default()
            ),
            None => ",,,,,,,,".into(),
        };
        let error = r.error.as_deref().unwrap_or("").replace('"', "'");
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},\"{}\"",
            l.method, l.variant, l.mode, l.wait, l.size, l.count, figures, r.status, error
        );
    }
    std::fs::write(dir.join("results.csv"), csv).map_err(|e| io("cannot write results.csv", e))?;

    let label = |r: &Row| {
        format!(
            "{}/{} {} {} {} B",
            r.label.method, r.label.variant, r.label.mode, r.label.wait, r.label.size
        )
    };
    let ran: Vec<(&Row, &PingpongReport)> = rows
        .iter()
        .filter_map(|r| Some((r, r.report.as_ref()?)))
        .collect();
    let where_ = report::pin_words(pin.map(|(a, b)| [a, b]));
    let charts: [Chart; 3] = [
        ("rtt_p50.svg", "Median round trip", |p| p.rtt.p50 as f64),
        ("rtt_p99.svg", "99th percentile round trip", |p| {
            p.rtt.p99 as f64
        }),
        ("cpu_per_msg.svg", "CPU per message, both sides", |p| {
            p.cpu_ns_per_msg.unwrap_or(0.0)
        }),
    ];
    for (file, title, value) in charts {
        let bars: Vec<crate::chart::Bar> = ran.iter().map(|(r, p)| (label(r), value(p))).collect();
        crate::chart::bars(
            &dir.join(file),
            &format!("{title} ({where_})"),
            "log scale",
            &bars,
        )
        .map_err(HarnessError::Other)?;
    }
    Ok(())
}
