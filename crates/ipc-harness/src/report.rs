//! The figures of a run, as a human table and as the contract's JSON line.

use serde::Serialize;

/// Round-trip percentiles in nanoseconds (over batch means when batch > 1).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Rtt {
    /// The fastest sample.
    pub min: u64,
    /// The median.
    pub p50: u64,
    /// The 90th percentile.
    pub p90: u64,
    /// The 99th percentile.
    pub p99: u64,
    /// The 99.9th percentile.
    pub p999: u64,
    /// The slowest sample.
    pub max: u64,
    /// The mean of the samples.
    pub mean: f64,
}

impl Rtt {
    /// The percentiles of `hist`, with the exact `mean`.
    pub fn from_histogram(hist: &hdrhistogram::Histogram<u64>, mean: f64) -> Self {
        if hist.is_empty() {
            return Rtt {
                min: 0,
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
            };
        }
        Rtt {
            min: hist.min(),
            p50: hist.value_at_quantile(0.5),
            p90: hist.value_at_quantile(0.9),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
            mean: (mean * 10.0).round() / 10.0,
        }
    }
}

/// What a ping-pong measured.
#[derive(Debug, Clone, Copy)]
pub struct PingpongReport {
    /// Timed round trips made: the run's count, or fewer when its time
    /// budget ran out first.
    pub count: u64,
    /// Round trips per sample.
    pub batch: u64,
    /// Round-trip percentiles.
    pub rtt: Rtt,
    /// Messages moved per second, counting both directions (two per round trip).
    pub msgs_per_s: f64,
    /// CPU time of both sides per message moved (`None`: the other side
    /// could not tell its own).
    pub cpu_ns_per_msg: Option<f64>,
}

/// What a stream measured.
#[derive(Debug, Clone, Copy)]
pub struct StreamReport {
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Payload bytes per second.
    pub bytes_per_s: f64,
    /// CPU time of both sides per message (`None`: the other side could
    /// not tell its own).
    pub cpu_ns_per_msg: Option<f64>,
}

/// What was run: the part of every result that echoes the options.
#[derive(Debug, Clone, Serialize)]
pub struct RunLabel {
    /// The method (`pipes`).
    pub method: String,
    /// The variant (`fifo`).
    pub variant: String,
    /// Where the consumer lived.
    pub mode: String,
    /// How both sides waited.
    pub wait: String,
    /// The message size in bytes.
    pub size: usize,
    /// Timed messages (round trips for pingpong).
    pub count: u64,
    /// CPUs of producer and consumer, or null when not pinned.
    pub pin: Option<[usize; 2]>,
}

/// The `pingpong --json` line (**contract**; field order as DESIGN.md shows it).
#[derive(Debug, Serialize)]
pub struct PingpongJson<'a> {
    schema: u32,
    method: &'a str,
    variant: &'a str,
    mode: &'a str,
    wait: &'a str,
    size: usize,
    count: u64,
    warmup: u64,
    batch: u64,
    pin: Option<[usize; 2]>,
    rtt_ns: Rtt,
    msgs_per_s: f64,
    cpu_ns_per_msg: Option<f64>,
}

impl<'a> PingpongJson<'a> {
    /// The JSON object of a ping-pong.
    pub fn new(label: &'a RunLabel, warmup: u64, r: &PingpongReport) -> Self {
        PingpongJson {
            schema: 1,
            method: &label.method,
            variant: &label.variant,
            mode: &label.mode,
            wait: &label.wait,
            size: label.size,
            count: label.count,
            warmup,
            batch: r.batch,
            pin: label.pin,
            rtt_ns: r.rtt,
            msgs_per_s: round1(r.msgs_per_s),
            cpu_ns_per_msg: r.cpu_ns_per_msg.map(round1),
        }
    }
}

/// The `stream --json` line (**contract**).
#[derive(Debug, Serialize)]
pub struct StreamJson<'a> {
    schema: u32,
    method: &'a str,
    variant: &'a str,
    mode: &'a str,
    wait: &'a str,
    size: usize,
    count: u64,
    verify: &'a str,
    pin: Option<[usize; 2]>,
    producers: usize,
    consumers: usize,
    msgs_per_s: f64,
    bytes_per_s: f64,
    cpu_ns_per_msg: Option<f64>,
}

impl<'a> StreamJson<'a> {
    /// The JSON object of a stream with `sides` (producers, consumers).
    pub fn new(
        label: &'a RunLabel,
        verify: &'a str,
        sides: (usize, usize),
        r: &StreamReport,
    ) -> Self {
        StreamJson {
            schema: 1,
            method: &label.method,
            variant: &label.variant,
            mode: &label.mode,
            wait: &label.wait,
            size: label.size,
            count: label.count,
            verify,
            pin: label.pin,
            producers: sides.0,
            consumers: sides.1,
            msgs_per_s: round1(r.msgs_per_s),
            bytes_per_s: round1(r.bytes_per_s),
            cpu_ns_per_msg: r.cpu_ns_per_msg.map(round1),
        }
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Where both sides ran, in words.
pub fn pin_words(pin: Option<[usize; 2]>) -> String {
    match pin {
        None => "not pinned".into(),
        Some([a, b]) if a == b => format!("both pinned to CPU {a}"),
        Some([a, b]) => format!("producer on CPU {a}, consumer on CPU {b}"),
    }
}

/// A duration in nanoseconds, in the unit that reads best.
pub fn human_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// CPU time per message in words: unknown when the other side could not tell.
pub fn human_cpu(ns: Option<f64>) -> String {
    ns.map_or_else(|| "unknown".into(), human_ns)
}

/// A rate, with an SI prefix.
pub fn human_rate(x: f64, unit: &str) -> String {
    if x >= 1e9 {
        format!("{:.2} G{unit}/s", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M{unit}/s", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k{unit}/s", x / 1e3)
    } else {
        format!("{x:.1} {unit}/s")
    }
}

/// The human report of a ping-pong.
pub fn pingpong_text(label: &RunLabel, warmup: u64, r: &PingpongReport) -> String {
    let over = if r.batch > 1 {
        format!(
            " (percentiles over means of batches of {} round trips)",
            r.batch
        )
    } else {
        String::new()
    };
    format!(
        "{}/{} ping-pong, {} mode, wait {}, {} bytes, {} round trips after {} warm-up, {}\n\
         round trip{over}:\n  min {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}\n\
         one way (p50 / 2): {}\n\
         messages: {} (both directions), CPU {} per message (both sides)\n\
         machine: {}",
        label.method,
        label.variant,
        label.mode,
        label.wait,
        label.size,
        label.count,
        warmup,
        pin_words(label.pin),
        human_ns(r.rtt.min as f64),
        human_ns(r.rtt.p50 as f64),
        human_ns(r.rtt.p90 as f64),
        human_ns(r.rtt.p99 as f64),
        human_ns(r.rtt.p999 as f64),
        human_ns(r.rtt.max as f64),
        human_ns(r.rtt.mean),
        human_ns(r.rtt.p50 as f64 / 2.0),
        human_rate(r.msgs_per_s, "msg"),
        human_cpu(r.cpu_ns_per_msg),
        crate::sys::machine(),
    )
}

/// The human report of a stream with `sides` (producers, consumers).
pub fn stream_text(
    label: &RunLabel,
    verify: &str,
    sides: (usize, usize),
    r: &StreamReport,
) -> String {
    let shared = match sides {
        (1, 1) => String::new(),
        (p, c) => format!(", {p} producer(s), {c} consumer(s)"),
    };
    format!(
        "{}/{} stream, {} mode, wait {}, {} bytes x {} messages{shared}, verify {}, {}\n\
         throughput: {}, {}\n\
         CPU {} per message (both sides)\n\
         machine: {}",
        label.method,
        label.variant,
        label.mode,
        label.wait,
        label.size,
        label.count,
        verify,
        pin_words(label.pin),
        human_rate(r.msgs_per_s, "msg"),
        human_rate(r.bytes_per_s, "B"),
        human_cpu(r.cpu_ns_per_msg),
        crate::sys::machine(),
    )
}
