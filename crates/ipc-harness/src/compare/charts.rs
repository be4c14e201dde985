//! The comparison's charts, written as SVG by hand (each one well-formed
//! XML, readable on its own and inline in report.html):
//!
//! - per size, one bar per row: the median round trip, a whisker out to the
//!   99th percentile, coloured by the boundary the row crosses (process,
//!   thread, coroutine; references grey) and marked by its wait, on a log
//!   scale so that nanoseconds and tens of microseconds fit on one page;
//! - latency against message size, log-log, one line per method, mode and
//!   wait (references dashed grey).
//!
//! Each is titled with the machine and the command.

use std::fmt::Write;

use super::files::Run;
use super::{Kind, Row};
use crate::report::human_ns;

/// One chart: its file name, its title and its SVG text.
pub(super) struct Chart {
    pub file: String,
    pub title: String,
    pub svg: String,
}

/// Escapes text for XML and HTML.
pub(super) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The colour of a row's boundary.
pub(super) fn colour(row: &Row) -> &'static str {
    match (row.kind, row.label.mode.as_str()) {
        (Kind::Reference, _) => "#8c8c8c",
        (_, "process") => "#c0392b",
        (_, "thread") => "#2471a3",
        _ => "#229954",
    }
}

/// The marker of a wait, drawn at (x, y).
fn marker(wait: &str, x: f64, y: f64) -> String {
    match wait {
        "block" => format!(
            r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="black"/>"#,
            x - 4.0,
            y - 4.0
        ),
        "hybrid" => format!(
            r#"<path d="M{x:.1},{:.1} l5,5 l-5,5 l-5,-5 z" fill="black"/>"#,
            y - 5.0
        ),
        "spin" => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="4.5" fill="black"/>"#),
        _ => format!(
            r#"<path d="M{:.1},{:.1} l10,0 l-5,-9 z" fill="black"/>"#,
            x - 5.0,
            y + 4.0
        ),
    }
}

/// The dash pattern of a wait's line.
fn dash(wait: &str) -> &'static str {
    match wait {
        "block" => "",
        "hybrid" => "6,3",
        "spin" => "2,3",
        _ => "10,3,2,3",
    }
}

/// A size in words: `64 B`, `4 KiB`, `1 MiB`.
pub(super) fn human_size(size: usize) -> String {
    if size >= 1 << 20 && size % (1 << 20) == 0 {
        format!("{} MiB", size >> 20)
    } else if size >= 1 << 10 && size % (1 << 10) == 0 {
        format!("{} KiB", size >> 10)
    } else {
        format!("{size} B")
    }
}

/// A log-10 scale over [lo, hi] onto [a, b].
struct LogScale {
    lo: f64,
    hi: f64,
    a: f64,
    b: f64,
}

impl LogScale {
    fn new(lo: f64, hi: f64, a: f64, b: f64) -> LogScale {
        let lo = 10f64.powf(lo.max(0.5).log10().floor());
        let hi = 10f64.powf(hi.max(lo * 10.0).log10().ceil());
        LogScale { lo, hi, a, b }
    }

    fn at(&self, v: f64) -> f64 {
        let t = (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10());
        self.a + t * (self.b - self.a)
    }

    /// The powers of ten in range.
    fn decades(&self) -> Vec<f64> {
        let mut v = self.lo;
        let mut out = Vec::new();
        while v <= self.hi * 1.0001 {
            out.push(v);
            v *= 10.0;
        }
        out
    }
}

/// The title block: the chart's title, then the machine and the command.
fn heading(svg: &mut String, width: f64, title: &str, run: &Run) {
    let _ = write!(
        svg,
        r##"<text x="{:.0}" y="24" font-size="17" font-weight="bold" text-anchor="middle">{}</text><text x="{:.0}" y="44" font-size="12" text-anchor="middle" fill="#444">{} · {} · {}</text><text x="{:.0}" y="60" font-size="12" text-anchor="middle" fill="#444">{}</text>"##,
        width / 2.0,
        esc(title),
        width / 2.0,
        esc(&run.machine.line()),
        esc(&run.placement()),
        esc(&run.machine.date),
        width / 2.0,
        esc(&run.command),
    );
}

/// The legend of boundaries and waits, at (x, y).
fn legend(svg: &mut String, x: f64, y: f64) {
    let items = [
        ("#c0392b", "process"),
        ("#2471a3", "thread"),
        ("#229954", "coroutine"),
        ("#8c8c8c", "reference"),
    ];
    let mut at = x;
    for (c, name) in items {
        let _ = write!(
            svg,
            r#"<rect x="{at:.0}" y="{:.0}" width="14" height="10" fill="{c}"/><text x="{:.0}" y="{:.0}" font-size="12">{name}</text>"#,
            y - 9.0,
            at + 18.0,
            y
        );
        at += 30.0 + 7.0 * name.len() as f64;
    }
    for wait in ["block", "hybrid", "spin", "resume"] {
        svg.push_str(&marker(wait, at + 5.0, y - 4.0));
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{y:.0}" font-size="12">{wait}</text>"#,
            at + 14.0
        );
        at += 26.0 + 7.0 * wait.len() as f64;
    }
}

/// A chart's start: the SVG element on white, the title block and the
/// legend (from `left`).
fn begin(width: f64, height: f64, title: &str, run: &Run, left: f64) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>"#
    );
    heading(&mut svg, width, title, run);
    legend(&mut svg, left, 84.0);
    svg
}

/// A vertical grid line at `x` over `(top, bottom)`, labelled below.
fn tick(svg: &mut String, x: f64, (top, bottom): (f64, f64), label: &str) {
    let _ = write!(
        svg,
        r##"<line x1="{x:.1}" y1="{top:.0}" x2="{x:.1}" y2="{bottom:.0}" stroke="#ddd"/><text x="{x:.1}" y="{:.0}" font-size="11" text-anchor="middle">{}</text>"##,
        bottom + 16.0,
        esc(label)
    );
}

/// A row's name on a chart.
fn name(row: &Row) -> String {
    match row.kind {
        Kind::Method => format!("{} {} {}", row.id(), row.label.mode, row.label.wait),
        Kind::Reference => format!("[ref] {} {}", row.label.variant, row.label.wait),
    }
}

/// The p50 bars with p99 whiskers of the rows of one size that ran.
fn bars(run: &Run, size: usize) -> Option<Chart> {
    let rows: Vec<&Row> = run
        .rows
        .iter()
        .filter(|r| r.label.size == size && r.report.is_some())
        .collect();
    if rows.is_empty() {
        return None;
    }
    let (width, left, right, top, line): (f64, f64, f64, f64, f64) =
        (1100.0, 330.0, 1060.0, 100.0, 22.0);
    let lo = rows
        .iter()
        .filter_map(|r| r.report.map(|p| p.rtt.p50 as f64))
        .fold(f64::INFINITY, f64::min);
    let hi = rows
        .iter()
        .filter_map(|r| r.report.map(|p| p.rtt.p99 as f64))
        .fold(1.0, f64::max);
    let x = LogScale::new(lo / 2.0, hi, left, right);
    let height = top + line * rows.len() as f64 + 50.0;
    let title = format!(
        "Round trip at {}: median (bar) and 99th percentile (whisker)",
        human_size(size)
    );
    let mut svg = begin(width, height, &title, run, left);
    let bottom = top + line * rows.len() as f64;
    for d in x.decades() {
        let gx = x.at(d);
        tick(&mut svg, gx, (top, bottom), &human_ns(d));
    }
    let _ = write!(
        svg,
        r#"<text x="{:.0}" y="{:.0}" font-size="12" text-anchor="middle">round trip (log scale)</text>"#,
        (left + right) / 2.0,
        bottom + 34.0
    );
    for (i, row) in rows.iter().enumerate() {
        let Some(p) = row.report else { continue };
        let y = top + line * i as f64;
        let (p50, p99) = (x.at(p.rtt.p50 as f64), x.at(p.rtt.p99 as f64));
        let _ = write!(
            svg,
            r#"<text x="{:.0}" y="{:.1}" font-size="12" text-anchor="end">{}</text><rect x="{left:.0}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/><line x1="{p50:.1}" y1="{:.1}" x2="{p99:.1}" y2="{:.1}" stroke="black"/><line x1="{p99:.1}" y1="{:.1}" x2="{p99:.1}" y2="{:.1}" stroke="black"/>"#,
            left - 8.0,
            y + 15.0,
            esc(&name(row)),
            y + 4.0,
            (p50 - left).max(1.0),
            line - 8.0,
            colour(row),
            y + line / 2.0,
            y + line / 2.0,
            y + 6.0,
            y + line - 6.0,
        );
        svg.push_str(&marker(&row.label.wait, p50, y + line / 2.0));
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#333">{}</text>"##,
            p99 + 6.0,
            y + 15.0,
            esc(&human_ns(p.rtt.p50 as f64))
        );
    }
    svg.push_str("</svg>\n");
    Some(Chart {
        file: format!("rtt_{size}.svg"),
        title,
        svg,
    })
}

/// One line of the size chart: its name, a row of it, its (size, p50) points.
type Series<'a> = (String, &'a Row, Vec<(usize, f64)>);

/// Median round trip against message size, one line per method and wait
/// (in its widest boundary) and per reference, log-log.
fn by_size(run: &Run) -> Option<Chart> {
    let sizes = run.sizes();
    if sizes.len() < 2 {
        return None;
    }
    // Each method in its widest boundary (process where it has one), so
    // that a line is a method and a wait.
    let rank = |mode: &str| match mode {
        "process" => 0,
        "thread" => 1,
        _ => 2,
    };
    let widest = |id: String| {
        run.rows
            .iter()
            .filter(|r| r.id() == id)
            .map(|r| rank(&r.label.mode))
            .min()
    };
    let mut series: Vec<Series> = Vec::new();
    for row in run.rows.iter().filter(|r| {
        r.report.is_some()
            && (r.kind == Kind::Reference || widest(r.id()) == Some(rank(&r.label.mode)))
    }) {
        let key = name(row);
        let point = (row.label.size, row.report.map_or(0.0, |p| p.rtt.p50 as f64));
        match series.iter_mut().find(|s| s.0 == key) {
            Some(s) => s.2.push(point),
            None => series.push((key, row, vec![point])),
        }
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let (width, left, right, top, bottom): (f64, f64, f64, f64, f64) =
        (1100.0, 80.0, 760.0, 100.0, 640.0);
    let height = (bottom + 60.0).max(top + 14.0 * series.len() as f64 + 20.0);
    let (smin, smax) = (sizes[0].max(1) as f64, sizes[sizes.len() - 1].max(2) as f64);
    let sx = |s: usize| {
        let t = ((s.max(1) as f64).log2() - smin.log2()) / (smax.log2() - smin.log2()).max(1e-9);
        left + t * (right - left)
    };
    let values = series.iter().flat_map(|s| s.2.iter().map(|p| p.1));
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(1.0, f64::max);
    let y = LogScale::new(lo, hi, bottom, top);
    let title = "Median round trip against message size (each method across its widest boundary)"
        .to_owned();
    let mut svg = begin(width, height, &title, run, left);
    for d in y.decades() {
        let gy = y.at(d);
        let _ = write!(
            svg,
            r##"<line x1="{left:.0}" y1="{gy:.1}" x2="{right:.0}" y2="{gy:.1}" stroke="#ddd"/><text x="{:.0}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            left - 6.0,
            gy + 4.0,
            esc(&human_ns(d))
        );
    }
    for &s in &sizes {
        let gx = sx(s);
        tick(&mut svg, gx, (top, bottom), &human_size(s));
    }
    let _ = write!(
        svg,
        r#"<text x="{:.0}" y="{:.0}" font-size="12" text-anchor="middle">message size (log scale)</text><text x="16" y="{:.0}" font-size="12" transform="rotate(-90 16 {:.0})" text-anchor="middle">median round trip (log scale)</text>"#,
        (left + right) / 2.0,
        bottom + 36.0,
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
    for (i, (key, row, points)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|&(s, v)| format!("{:.1},{:.1}", sx(s), y.at(v)))
            .collect();
        let wait = row.label.wait.as_str();
        let dashes = if row.kind == Kind::Reference {
            "4,4"
        } else {
            dash(wait)
        };
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6" stroke-dasharray="{dashes}"/>"#,
            path.join(" "),
            colour(row)
        );
        for &(s, v) in points {
            svg.push_str(&marker(wait, sx(s), y.at(v)));
        }
        // The key, beside the plot, in the line's colour.
        let ky = top + 14.0 * i as f64;
        let _ = write!(
            svg,
            r#"<line x1="{:.0}" y1="{:.1}" x2="{:.0}" y2="{:.1}" stroke="{}" stroke-width="2" stroke-dasharray="{dashes}"/><text x="{:.0}" y="{:.1}" font-size="11">{}</text>"#,
            right + 20.0,
            ky - 4.0,
            right + 44.0,
            ky - 4.0,
            colour(row),
            right + 50.0,
            ky,
            esc(key)
        );
    }
    svg.push_str("</svg>\n");
    Some(Chart {
        file: "rtt_by_size.svg".into(),
        title,
        svg,
    })
}

/// Every chart of a run: latency against size first (when the run has
/// several sizes), then one bar chart per size.
pub(super) fn all(run: &Run) -> Vec<Chart> {
    let mut charts: Vec<Chart> = by_size(run).into_iter().collect();
    charts.extend(run.sizes().into_iter().filter_map(|s| bars(run, s)));
    charts
}
