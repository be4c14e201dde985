//! The references the comparison measures beside the methods: each a bare
//! mechanism from the references crate, registered by the binary (the
//! harness does not know them), and the rows it stands beside.

use ipc_core::Mode;

use super::{Kind, Row, Settings};
use crate::report::{PingpongReport, Rtt, RunLabel};
use crate::wait::Wait;

/// A bare mechanism measured beside the methods that wrap it.
#[derive(Clone, Copy)]
pub struct Reference {
    /// Its short name, the variant of its rows (`raw-pipe`).
    pub name: &'static str,
    /// What it is, in words, for the page.
    pub about: &'static str,
    /// Where its two sides live.
    pub boundary: Mode,
    /// How its receiver waits.
    pub wait: Wait,
    /// The `method/variant` of the rows it stands beside.
    pub beside: &'static [&'static str],
    /// The largest message it carries (`usize::MAX`: any; a mechanism that
    /// carries no payload, a signal or a semaphore post, runs at every size).
    pub max_size: usize,
    /// `count` round trips after `warmup` of `size`-byte messages: the
    /// samples in nanoseconds (sorted), or `None` when it could not run.
    pub run: fn(size: usize, count: usize, warmup: usize) -> Option<Vec<u64>>,
}

impl std::fmt::Debug for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reference({})", self.name)
    }
}

/// The references `id` stands beside at `size`.
pub(super) fn beside<'a>(
    references: &'a [Reference],
    id: &'a str,
    size: usize,
) -> impl Iterator<Item = usize> + 'a {
    references
        .iter()
        .enumerate()
        .filter(move |(_, r)| r.beside.contains(&id) && size <= r.max_size)
        .map(|(i, _)| i)
}

/// The reference a row of `id` at `size` is measured against: the first
/// it stands beside.
pub(super) fn of(references: &[Reference], id: &str, size: usize) -> Option<usize> {
    beside(references, id, size).next()
}

impl Reference {
    /// Its row at `size`: a probe, then as many round trips as the budget
    /// allows, on a thread pinned where the producer would be.
    pub(super) fn measure(&self, size: usize, settings: &Settings) -> Row {
        let run = self.run;
        let pin = settings.pin.map(|(a, _)| a);
        let (count, warmup, outcome) = if pin.is_some() && self.wait == Wait::Spin {
            // Its two threads would spin on one CPU, each waiting for the
            // scheduler to take the CPU from the other.
            (0, 0, Err(("skipped", "a spinning reference runs both its threads on the pinned CPU, where a spinner only waits for the other: measured unpinned only".to_owned())))
        } else {
            let go = move |count: usize, warmup: usize| {
                std::thread::Builder::new()
                    .name("reference".into())
                    .spawn(move || {
                        if let Some(cpu) = pin {
                            crate::sys::pin_current_thread(cpu).ok()?;
                        }
                        run(size, count, warmup)
                    })
                    .ok()
                    .and_then(|h| h.join().ok().flatten())
            };
            let probe = settings.count.min(50) as usize;
            let (mut count, mut warmup) = (probe as u64, 10);
            let samples = go(probe, 10).and_then(|samples| {
                // A probe shorter than one batch has no samples: then the
                // budget cannot bind, and the row runs its whole count.
                let mean = samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64;
                count = settings.fitting(mean);
                warmup = settings.warmup(size);
                go(count as usize, warmup as usize)
            });
            let outcome = samples
                .filter(|s| !s.is_empty())
                .map(|s| report_of(&s))
                .ok_or_else(|| {
                    (
                        "failed",
                        format!("the {} reference could not run", self.name),
                    )
                });
            (count, warmup, outcome)
        };
        let (report, error, status) = match outcome {
            Ok(report) => (Some(report), None, "ok"),
            Err((status, why)) => (None, Some(why), status),
        };
        Row {
            label: RunLabel {
                method: "reference".into(),
                variant: self.name.into(),
                mode: self.boundary.as_str().into(),
                wait: self.wait.as_str().into(),
                size,
                count,
                pin: pin.map(|a| [a, a]),
            },
            kind: Kind::Reference,
            warmup,
            report,
            error,
            status,
            reference: None,
            x_reference: None,
        }
    }
}

/// The report of sorted round-trip samples (the rate counts only the timed
/// round trips, both directions; a reference cannot tell its CPU time).
fn report_of(sorted: &[u64]) -> PingpongReport {
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let mean = sorted.iter().sum::<u64>() as f64 / sorted.len() as f64;
    let timed: u64 = sorted.iter().sum();
    PingpongReport {
        count: sorted.len() as u64,
        batch: 1,
        rtt: Rtt {
            min: sorted[0].max(1),
            p50: at(0.5).max(1),
            p90: at(0.9).max(1),
            p99: at(0.99).max(1),
            p999: at(0.999).max(1),
            max: sorted[sorted.len() - 1].max(1),
            mean: (mean * 10.0).round() / 10.0,
        },
        msgs_per_s: if timed > 0 {
            2.0 * sorted.len() as f64 / (timed as f64 / 1e9)
        } else {
            0.0
        },
        cpu_ns_per_msg: None,
    }
}
