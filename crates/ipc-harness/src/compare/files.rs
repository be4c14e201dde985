//! What a comparison leaves behind: the table on stdout, one JSON line per
//! row, results.json (the machine, the command line, every row),
//! results.csv, the charts and report.html.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{charts, page, Kind, Row};
use crate::error::{HarnessError, Result};
use crate::report::{self, PingpongJson};

/// The machine a comparison ran on, as results.json and the page name it.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// Online CPUs.
    pub cores: usize,
    /// The kernel's release.
    pub kernel: String,
    /// The compiler that built this binary.
    pub rustc: String,
    /// When the run ended, UTC.
    pub date: String,
}

impl Machine {
    /// This machine, now.
    pub fn here() -> Machine {
        // SAFETY: sysconf only reads a configuration value.
        let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
        let kernel = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Machine {
            cpu: crate::sys::cpu_model(),
            cores,
            kernel,
            rustc: env!("IPC_RUSTC_VERSION").to_owned(),
            date: utc_now(),
        }
    }

    /// In one line.
    pub fn line(&self) -> String {
        format!(
            "{}, {} CPUs, Linux {}, {}",
            self.cpu, self.cores, self.kernel, self.rustc
        )
    }
}

/// Now, UTC, as `2026-11-29 23:05 UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

/// A finished comparison.
pub(super) struct Run {
    /// Every row, sorted by size, then by median round trip (failed and
    /// skipped rows last within their size).
    pub rows: Vec<Row>,
    pub machine: Machine,
    /// The command line, as typed.
    pub command: String,
    pub pin: Option<(usize, usize)>,
}

impl Run {
    pub fn new(mut rows: Vec<Row>, pin: Option<(usize, usize)>) -> Run {
        rows.sort_by_key(|r| (r.label.size, r.report.map_or(u64::MAX, |rep| rep.rtt.p50)));
        let command = std::env::args()
            .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
            .collect::<Vec<_>>()
            .join(" ");
        let command = match command.split_once(' ') {
            Some((exe, rest)) if exe.ends_with("ipc-compare") => format!("ipc-compare {rest}"),
            _ if command.ends_with("ipc-compare") => "ipc-compare".into(),
            _ => command,
        };
        Run {
            rows,
            machine: Machine::here(),
            command,
            pin,
        }
    }

    /// Where both sides ran, in words.
    pub fn placement(&self) -> String {
        report::pin_words(self.pin.map(|(a, b)| [a, b]))
    }

    /// The sizes of the run, ascending.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.rows.iter().map(|r| r.label.size).collect();
        sizes.dedup();
        sizes
    }
}

/// One result as a JSON value: the pingpong contract, plus `kind`,
/// `reference`, `x_reference`, `status` and `error`.
fn row_value(row: &Row) -> serde_json::Value {
    let value = match &row.report {
        Some(r) => serde_json::to_value(PingpongJson::new(&row.label, row.warmup, r)),
        None => serde_json::to_value(&row.label),
    };
    let mut value = value.unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("schema".into(), 1.into());
        obj.insert(
            "kind".into(),
            match row.kind {
                Kind::Method => "method",
                Kind::Reference => "reference",
            }
            .into(),
        );
        obj.insert("reference".into(), row.reference.clone().into());
        obj.insert(
            "x_reference".into(),
            row.x_reference.map(|x| (x * 100.0).round() / 100.0).into(),
        );
        obj.insert("status".into(), row.status.into());
        obj.insert("error".into(), row.error.clone().into());
    }
    value
}

/// One result as a JSON line.
pub(super) fn row_json(row: &Row) -> String {
    row_value(row).to_string()
}

/// A ratio to the reference, for the table.
pub(super) fn ratio_text(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |x| format!("{x:.2}x"))
}

/// The human table.
pub(super) fn table(run: &Run) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "machine: {}\nwhere: {}; round trips in ns, percentiles over batch means where batch > 1\n\n",
        run.machine.line(),
        run.placement()
    ));
    out.push_str(&format!(
        "{:<26} {:<9} {:<6} {:>7} {:>10} {:>10} {:>10} {:>6} {:>8} {:>12} {:>10} {:>8}\n",
        "method",
        "mode",
        "wait",
        "size",
        "p50",
        "p99",
        "max",
        "batch",
        "count",
        "msgs/s",
        "cpu/msg",
        "x ref"
    ));
    for r in &run.rows {
        let id = match r.kind {
            Kind::Method => r.id(),
            Kind::Reference => format!("[ref] {}", r.label.variant),
        };
        match &r.report {
            Some(rep) => out.push_str(&format!(
                "{:<26} {:<9} {:<6} {:>7} {:>10} {:>10} {:>10} {:>6} {:>8} {:>12.0} {:>10} {:>8}\n",
                id,
                r.label.mode,
                r.label.wait,
                r.label.size,
                rep.rtt.p50,
                rep.rtt.p99,
                rep.rtt.max,
                rep.batch,
                r.label.count,
                rep.msgs_per_s,
                rep.cpu_ns_per_msg
                    .map_or_else(|| "-".to_owned(), |c| format!("{c:.0}")),
                ratio_text(r.x_reference),
            )),
            None => out.push_str(&format!(
                "{:<26} {:<9} {:<6} {:>7} {}: {}\n",
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

/// Writes results.json, results.csv, the charts and report.html into `dir`.
pub(super) fn write_all(dir: &Path, run: &Run) -> Result<()> {
    let io = |what: &str, e: std::io::Error| {
        HarnessError::Other(format!("{what} in {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create the folder", e))?;
    let doc = serde_json::json!({
        "schema": 2,
        "machine": run.machine,
        "command": run.command,
        "pin": run.pin.map(|(a, b)| [a, b]),
        "results": run.rows.iter().map(row_value).collect::<Vec<_>>(),
    });
    let text =
        serde_json::to_string_pretty(&doc).map_err(|e| HarnessError::Other(e.to_string()))?;
    std::fs::write(dir.join("results.json"), text + "\n")
        .map_err(|e| io("cannot write results.json", e))?;
    std::fs::write(dir.join("results.csv"), csv(run))
        .map_err(|e| io("cannot write results.csv", e))?;
    let charts = charts::all(run);
    for chart in &charts {
        std::fs::write(dir.join(&chart.file), &chart.svg)
            .map_err(|e| io(&format!("cannot write {}", chart.file), e))?;
    }
    std::fs::write(dir.join("report.html"), page::html(run, &charts))
        .map_err(|e| io("cannot write report.html", e))?;
    Ok(())
}

/// results.csv: one line per row.
fn csv(run: &Run) -> Vec<u8> {
    let mut csv = Vec::new();
    let _ = writeln!(
        csv,
        "method,variant,mode,wait,size,count,batch,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,mean_ns,msgs_per_s,cpu_ns_per_msg,kind,reference,x_reference,status,error"
    );
    for r in &run.rows {
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
        let kind = match r.kind {
            Kind::Method => "method",
            Kind::Reference => "reference",
        };
        let error = r.error.as_deref().unwrap_or("").replace('"', "'");
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},\"{}\"",
            l.method,
            l.variant,
            l.mode,
            l.wait,
            l.size,
            l.count,
            figures,
            kind,
            r.reference.as_deref().unwrap_or(""),
            r.x_reference.map(|x| format!("{x:.3}")).unwrap_or_default(),
            r.status,
            error
        );
    }
    csv
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_date_is_a_date() {
        let d = super::utc_now();
        assert_eq!(d.len(), "2026-11-29 23:05 UTC".len(), "{d}");
        assert!(d.starts_with("20"), "{d}");
    }
}
