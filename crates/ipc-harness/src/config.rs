//! What a run is asked to do, and the bounds every option is held to.

use std::time::Duration;

use ipc_core::{Mode, Options};

use crate::payload::Verify;
use crate::wait::Wait;

/// How many round trips one sample times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// 1, except in coroutine mode, where it is chosen so that reading the
    /// clock is under 5% of a sample.
    Auto,
    /// Exactly this many.
    Fixed(u64),
}

/// The bounds of the command line (**contract**, listed in DESIGN.md and
/// the README): anything outside is a usage error (exit code 2) before
/// anything is allocated or started.
pub mod bounds {
    /// The largest `--size`, whatever the method allows: 1 GiB.
    pub const MAX_SIZE: usize = 1 << 30;
    /// The largest `--count` and `--warmup`: 10^12, far beyond a day's run.
    pub const MAX_COUNT: u64 = 1_000_000_000_000;
    /// The longest `--peer-timeout`, in seconds: an hour.
    pub const MAX_PEER_TIMEOUT_S: f64 = 3600.0;
    /// The longest `--spin-us`: 10 s.
    pub const MAX_SPIN_US: u64 = 10_000_000;
    /// The longest `--interval-ms`: an hour.
    pub const MAX_INTERVAL_MS: u64 = 3_600_000;
    /// The most `--producers` and `--consumers`.
    pub const MAX_SIDES: usize = 64;
    /// How many buffers of the message size a run holds at once, at most
    /// (both sides' messages, receive buffers and echoes): what `--size` is
    /// held against in the machine's available memory.
    pub const BUFFERS_PER_SIZE: usize = 6;
}

/// What to run, as the command line says it.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Where the consumer lives.
    pub mode: Mode,
    /// How both sides wait for messages.
    pub wait: Wait,
    /// The whole message handed to the transport, in bytes.
    pub size: usize,
    /// Timed messages (round trips for pingpong).
    pub count: u64,
    /// Untimed messages first.
    pub warmup: u64,
    /// Round trips per sample.
    pub batch: Batch,
    /// CPUs for producer and consumer.
    pub pin: Option<(usize, usize)>,
    /// How long to wait for a silent or dying peer.
    pub peer_timeout: Duration,
    /// How much of each message the receiver checks.
    pub verify: Verify,
    /// The demo's pause between tasks.
    pub interval: Duration,
    /// How long `--wait hybrid` polls before it blocks.
    pub spin: Duration,
    /// Bytes the channel may hold in flight, where the transport lets us
    /// choose (a ring's size, a pipe's buffer); `None`: its default.
    pub capacity: Option<usize>,
    /// Producers sending on one channel (stream and demo).
    pub producers: usize,
    /// Consumers receiving from one channel (stream and demo).
    pub consumers: usize,
    /// Messages written and read in place, inside the transport's memory
    /// (pingpong and stream, where the transport has zero-copy).
    pub zero_copy: bool,
    /// How long a ping-pong's timed round trips may take: it stops after
    /// `count` of them or this, whichever comes first (`None`: no limit).
    pub budget: Option<Duration>,
}

impl RunConfig {
    /// Whether producer and consumer are pinned to the same CPU, where a
    /// spinning side must yield it for the other to run at all.
    pub fn shares_one_cpu(&self) -> bool {
        matches!(self.pin, Some((a, b)) if a == b)
    }

    /// Whether several producers or consumers share the channel.
    pub fn is_shared(&self) -> bool {
        self.producers > 1 || self.consumers > 1
    }

    /// A run of `count` messages of `size` bytes in `mode`, waiting with
    /// `wait`, and the command line's defaults for the rest: 1000 warm-up
    /// messages, `--batch auto`, not pinned, a 5 s peer timeout, every byte
    /// verified, hybrid's 50 us spin, the transport's own capacity, one
    /// producer and one consumer, messages copied.
    pub fn new(mode: Mode, wait: Wait, size: usize, count: u64) -> Self {
        RunConfig {
            mode,
            wait,
            size,
            count,
            warmup: 1000,
            batch: Batch::Auto,
            pin: None,
            peer_timeout: Duration::from_secs(5),
            verify: Verify::Full,
            interval: Duration::ZERO,
            spin: crate::wait::HYBRID_SPIN,
            capacity: None,
            producers: 1,
            consumers: 1,
            zero_copy: false,
            budget: None,
        }
    }

    /// The channel options for this run. The largest message is the run's
    /// `size` (at least 4 KiB, for the control messages), so that a
    /// transport sized by its largest message (a ring) is not sized for more.
    pub fn options(&self) -> Options {
        let defaults = Options::default();
        let max = self.size.max(4096);
        let opts = defaults.max_message(max).connect_timeout(self.peer_timeout);
        match self.capacity {
            Some(bytes) => opts.capacity(bytes),
            None => opts,
        }
    }
}
