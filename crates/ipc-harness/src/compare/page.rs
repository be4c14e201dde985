//! report.html: one self-contained page (no script, no file beside it):
//! the machine and the command, the answers to the questions the project
//! was started from, with this run's ratios, the charts inline, how to read
//! them, and the whole table.

use std::fmt::Write;

use super::charts::{colour, esc, human_size, Chart};
use super::files::{ratio_text, Run};
use super::{Kind, Row};
use crate::report::human_ns;

/// The size the answers are given at: 64 bytes when the run has it, else
/// the smallest size it has.
fn answer_size(run: &Run) -> Option<usize> {
    let sizes = run.sizes();
    sizes
        .iter()
        .copied()
        .find(|&s| s == 64)
        .or_else(|| sizes.first().copied())
}

/// The median of the row `id mode wait` at `size`, if it ran.
fn p50(run: &Run, id: &str, mode: &str, wait: &str, size: usize) -> Option<f64> {
    run.rows
        .iter()
        .find(|r| {
            r.kind == Kind::Method
                && r.id() == id
                && r.label.mode == mode
                && r.label.wait == wait
                && r.label.size == size
        })
        .and_then(|r| r.report)
        .map(|p| p.rtt.p50 as f64)
}

/// One measured row named in an answer: its name and its median.
struct Fig<'a> {
    what: &'a str,
    ns: f64,
}

impl Fig<'_> {
    fn text(&self) -> String {
        format!("{} ({})", self.what, human_ns(self.ns))
    }
}

/// The answers, as HTML list items: each claim with the ratio this run
/// measured and the waits it compares; a claim this machine does not bear
/// out says so.
pub(super) fn answers(run: &Run) -> Vec<String> {
    let Some(size) = answer_size(run) else {
        return vec!["Nothing ran, so there is nothing to answer.".into()];
    };
    let fig = |what: &'static str, id: &str, mode: &str, wait: &str| {
        p50(run, id, mode, wait, size).map(|ns| Fig { what, ns })
    };
    let coroutine = fig(
        "a coroutine hand-off, coroutines/async, resume",
        "coroutines/async",
        "coroutine",
        "resume",
    );
    let thread_awake = fig(
        "a thread hand-off through channels/mpsc, receiver spinning",
        "channels/mpsc",
        "thread",
        "spin",
    );
    let thread_asleep = fig(
        "a thread hand-off through channels/mpsc, receiver blocked in the kernel",
        "channels/mpsc",
        "thread",
        "block",
    );
    let pipe_process = fig(
        "a process round trip through a pipe, blocking",
        "pipes/pipe",
        "process",
        "block",
    );
    let shm_process = fig(
        "a process round trip through shared memory, spinning",
        "shm/ring",
        "process",
        "spin",
    );
    let shm_thread = fig(
        "shared memory between threads, spinning",
        "shm/ring",
        "thread",
        "spin",
    );
    let pipe_thread = fig(
        "a pipe between threads, blocking",
        "pipes/pipe",
        "thread",
        "block",
    );
    let missing = |q: &str| {
        format!("<b>{q}</b> Not measured in this run (a row it needs is missing or failed).")
    };
    let x = |a: &Fig, b: &Fig| a.ns / b.ns.max(0.1);
    let mut out = Vec::new();
    out.push(format!(
        "All at {} message size, median round trip, {}.",
        human_size(size),
        esc(&run.placement())
    ));

    let q = "Are processes that talk through the kernel slow?";
    out.push(match (&pipe_process, &coroutine, &shm_process) {
        (Some(p), Some(c), Some(s)) => format!(
            "<b>{q}</b> Next to a coroutine, yes: {} is <b>{:.0}x</b> {}. It is the kernel and the sleep, not the process: {} is {:.1}x faster than the pipe ({:.0}x the coroutine).",
            esc(&p.text()),
            x(p, c),
            esc(&c.text()),
            esc(&s.text()),
            x(p, s),
            x(s, c)
        ),
        _ => missing(q),
    });

    let q = "Is shared memory between threads much faster?";
    out.push(match (&shm_thread, &pipe_thread, &thread_asleep) {
        (Some(s), Some(p), Some(t)) => {
            let holds = x(p, s) >= 2.0;
            format!(
                "<b>{q}</b> {}: {} against {}: <b>{:.1}x</b>; against {}: {:.1}x.{}",
                if holds { "Yes" } else { "Not here" },
                esc(&s.text()),
                esc(&p.text()),
                x(p, s),
                esc(&t.text()),
                x(t, s),
                if holds {
                    " Most of the difference is the wait: a spinning receiver is never put to sleep, and a blocking one must be woken."
                } else {
                    " On this machine the two are close: compare them pinned to one CPU, where no wake-up crosses CPUs."
                }
            )
        }
        _ => missing(q),
    });

    let q = "Does a coroutine switch cost almost nothing?";
    let bare = run
        .rows
        .iter()
        .find(|r| r.kind == Kind::Reference && r.label.mode == "coroutine" && r.label.size == size)
        .and_then(|r| r.report)
        .map(|p| p.rtt.p50 as f64);
    out.push(match (&coroutine, &thread_awake) {
        (Some(c), Some(t)) => format!(
            "<b>{q}</b> Almost: {} against {}: a thread hand-off costs <b>{:.0}x</b> as much even with its receiver awake.{}",
            esc(&c.text()),
            esc(&t.text()),
            x(t, c),
            bare.map_or(String::new(), |b| format!(
                " The bare switch under it (the reference) is {}; the rest of the coroutine's figure is what the harness does per message (copies, the check).",
                human_ns(b)
            ))
        ),
        _ => missing(q),
    });

    let q = "Where the story does not hold:";
    out.push(match (&thread_asleep, &pipe_process, &thread_awake) {
        (Some(t), Some(p), Some(a)) => {
            if x(t, p) >= 0.5 {
                let why = if run.pin.is_some() {
                    "The cost is the sleep and the wake-up in the kernel, which a thread pays as a process does: the boundary is not what costs."
                } else {
                    "The cost is waking the idle CPU, not the boundary: on a virtual machine whose idle CPUs halt, that wake-up is tens of microseconds whatever the mechanism."
                };
                format!(
                    "<b>{q}</b> a sleeping thread's channel costs about as much as a process's pipe here: {} against {} ({:.2}x), though with its receiver spinning the same hand-off takes {}. {why}",
                    esc(&t.text()),
                    esc(&p.text()),
                    x(t, p),
                    esc(&human_ns(a.ns))
                )
            } else {
                format!(
                    "<b>{q}</b> nothing this run shows: a sleeping thread's channel ({}) stays well under a process's pipe ({}), {:.2}x.",
                    esc(&human_ns(t.ns)),
                    esc(&human_ns(p.ns)),
                    x(t, p)
                )
            }
        }
        _ => missing(q),
    });
    out
}

/// The page.
pub(super) fn html(run: &Run, charts: &[Chart]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ipc-compare: {}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ margin-top: 1.6em; border-bottom: 1px solid #ccc; }}
table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ padding: 2px 8px; border-bottom: 1px solid #eee; text-align: right; }}
td.l, th.l {{ text-align: left; }}
tr.reference td {{ color: #555; font-style: italic; }}
tr.failed td {{ background: #fde2e0; }} tr.skipped td {{ color: #999; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
.machine {{ background: #f4f4f4; padding: 0.6em 1em; }}
figure {{ margin: 1em 0; }} svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>What each boundary costs on this machine</h1>
<div class="machine"><b>Machine:</b> {}<br><b>Run:</b> {} · {}<br><b>Command:</b> <code>{}</code></div>
"#,
        esc(&run.machine.date),
        esc(&run.machine.line()),
        esc(&run.machine.date),
        esc(&run.placement()),
        esc(&run.command)
    );
    h.push_str("<h2>The answers</h2>\n<ul>\n");
    for a in answers(run) {
        let _ = writeln!(h, "<li>{a}</li>");
    }
    h.push_str("</ul>\n");
    h.push_str(
        "<h2>How to read this page</h2>\n<p>Each row is a ping-pong: one side sends a message, the other echoes it, and the round trip is timed (one way is half). \
Colour says which boundary a row crosses: <span class=\"swatch\" style=\"background:#c0392b\"></span>two processes, \
<span class=\"swatch\" style=\"background:#2471a3\"></span>two threads, <span class=\"swatch\" style=\"background:#229954\"></span>two coroutines on one thread, \
<span class=\"swatch\" style=\"background:#8c8c8c\"></span>a reference: the bare mechanism (a raw system call, a plain ring) measured in the same run. \
The marker says how the receiver waits: block (asleep in the kernel), hybrid (polls briefly, then sleeps), spin (polls), resume (a coroutine hand-off). \
A bar is the median; its whisker reaches the 99th percentile. \
The column <i>x ref</i> is a row's median over its reference's, for the rows that wait as their reference does (a blocking pipe against the raw blocking pipe, a spinning ring against the spinning slot ring): what the method adds to the mechanism it wraps. \
Compare waits with care: unpinned, a blocked receiver on the other CPU must be woken, which on a virtual machine costs tens of microseconds and hides the mechanism; run <code>ipc-compare --pin 0,0</code> to see the mechanisms themselves.</p>\n",
    );
    h.push_str("<h2>Charts</h2>\n");
    for c in charts {
        let _ = writeln!(
            h,
            "<figure id=\"{}\" title=\"{}\">{}</figure>",
            esc(&c.file),
            esc(&c.title),
            c.svg.trim_end()
        );
    }
    h.push_str("<h2>Every row</h2>\n<table>\n<tr><th class=\"l\">kind</th><th class=\"l\">method</th><th class=\"l\">mode</th><th class=\"l\">wait</th><th>size</th><th>count</th><th>p50</th><th>p99</th><th>x ref</th><th class=\"l\">status</th></tr>\n");
    for r in &run.rows {
        row_html(&mut h, r);
    }
    h.push_str("</table>\n</body></html>\n");
    h
}

fn row_html(h: &mut String, r: &Row) {
    let (kind, class) = match r.kind {
        Kind::Method => ("method", r.status),
        Kind::Reference => ("reference", "reference"),
    };
    let id = match r.kind {
        Kind::Method => r.id(),
        Kind::Reference => r.label.variant.clone(),
    };
    let (p50, p99) = r.report.map_or((String::new(), String::new()), |p| {
        (human_ns(p.rtt.p50 as f64), human_ns(p.rtt.p99 as f64))
    });
    let status = match &r.error {
        Some(e) => format!("{}: {}", r.status, e),
        None => r.status.to_owned(),
    };
    let _ = writeln!(
        h,
        "<tr class=\"{class}\" data-row=\"{}\"><td class=\"l\">{kind}</td><td class=\"l\"><span class=\"swatch\" style=\"background:{}\"></span>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
        esc(&r.key()),
        colour(r),
        esc(&id),
        esc(&r.label.mode),
        esc(&r.label.wait),
        esc(&human_size(r.label.size)),
        r.label.count,
        esc(&p50),
        esc(&p99),
        esc(&ratio_text(r.x_reference)),
        esc(&status)
    );
}
