//! One registered transport, with its type erased so that a binary can list
//! several (ipc-compare lists them all) in one table.

use std::time::Duration;

use ipc_core::names::CleanReport;
use ipc_core::{Limit, Mode, RecvInPlace, SendInPlace, Transport};

use crate::config::RunConfig;
use crate::error::{HarnessError, Result};
use crate::link::{connect_any, connect_local, peer_main, peer_main_in_place};
use crate::measure;
use crate::peer::PeerSpec;
use crate::report::{PingpongReport, StreamReport};
use crate::shared;

/// What the demo did: each task's round trip (one producer and one
/// consumer), or how many tasks went through (several).
#[derive(Debug, Clone)]
pub enum DemoReport {
    /// The round trip of each task, in order.
    RoundTrips(Vec<Duration>),
    /// Several producers or consumers: what each consumer received.
    Tasks(SharedDemo),
}

/// What the demo with several producers or consumers saw. Every task sent
/// was received exactly once by one of the consumers, or reported lost by
/// the channel (see [`ipc_core::Transport::loss_report`]) after the death
/// of the consumer that had it in hand.
#[derive(Debug, Clone, Default)]
pub struct SharedDemo {
    /// Tasks each consumer received (until it died, for one that died).
    pub per_consumer: Vec<u64>,
    /// Tasks the channel reported lost: producer and task number.
    pub lost: Vec<(usize, u64)>,
    /// The consumers that died mid-run: number, pid, and how.
    pub died: Vec<(usize, u32, String)>,
}

/// A transport the harness can run, by method and variant.
#[derive(Clone, Copy)]
pub struct Entry {
    /// The method (`pipes`).
    pub method: &'static str,
    /// The variant (`pipe`).
    pub variant: &'static str,
    /// The modes it serves, the default first.
    pub modes: &'static [Mode],
    /// Whether several producers may share a channel.
    pub multi_producer: bool,
    /// Whether several consumers may share a channel.
    pub multi_consumer: bool,
    /// Whether `pingpong` and `stream` can run zero-copy (`--zero-copy`).
    pub zero_copy: bool,
    /// The largest message the transport carries at all.
    pub message_limit: fn() -> Limit,
    /// The largest `capacity` it takes.
    pub capacity_limit: fn() -> Limit,
    /// What must run in `main` before any thread starts.
    pub before_threads: fn() -> ipc_core::Result<()>,
    /// Runs a ping-pong.
    pub pingpong: fn(&RunConfig) -> Result<PingpongReport>,
    /// Runs a stream.
    pub stream: fn(&RunConfig) -> Result<StreamReport>,
    /// Runs the demo.
    pub demo: fn(&RunConfig) -> Result<DemoReport>,
    /// Runs the consumer in a peer process (see [`peer_main`] for its
    /// safety contract).
    pub peer: unsafe fn(&PeerSpec) -> Result<()>,
    /// Removes objects left behind by dead runs.
    pub clean: fn() -> ipc_core::Result<CleanReport>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entry({}/{})", self.method, self.variant)
    }
}

impl Entry {
    /// Registers a transport whose ends can move between threads: it runs in
    /// every mode it declares, with several producers or consumers where it
    /// has them.
    pub fn of<T: Transport>() -> Entry
    where
        T::Sender: Send,
        T::Receiver: Send,
    {
        Entry {
            pingpong: |cfg| measure::pingpong::<T>(cfg, connect_any::<T>),
            stream: |cfg| {
                if cfg.is_shared() {
                    shared::stream_shared::<T>(cfg)
                } else {
                    measure::stream::<T>(cfg, connect_any::<T>)
                }
            },
            demo: |cfg| {
                if cfg.is_shared() {
                    shared::demo_shared::<T>(cfg).map(DemoReport::Tasks)
                } else {
                    measure::demo::<T>(cfg, connect_any::<T>).map(DemoReport::RoundTrips)
                }
            },
            ..Self::common::<T>()
        }
    }

    /// Registers a transport whose ends can move between threads and which
    /// also sends and receives in place: as [`Entry::of`], and `pingpong`
    /// and `stream` run zero-copy when the run asks for it.
    pub fn with_zero_copy<T: Transport>() -> Entry
    where
        T::Sender: Send + SendInPlace,
        T::Receiver: Send + RecvInPlace,
    {
        Entry {
            zero_copy: true,
            pingpong: |cfg| {
                if cfg.zero_copy {
                    measure::pingpong_in_place::<T>(cfg)
                } else {
                    measure::pingpong::<T>(cfg, connect_any::<T>)
                }
            },
            stream: |cfg| {
                if cfg.zero_copy {
                    measure::stream_in_place::<T>(cfg)
                } else if cfg.is_shared() {
                    shared::stream_shared::<T>(cfg)
                } else {
                    measure::stream::<T>(cfg, connect_any::<T>)
                }
            },
            peer: peer_main_in_place::<T>,
            ..Self::of::<T>()
        }
    }

    /// Registers a transport whose ends stay on one thread (coroutine mode).
    pub fn local<T: Transport>() -> Entry {
        Entry {
            pingpong: |cfg| measure::pingpong::<T>(cfg, connect_local::<T>),
            stream: |cfg| {
                one_side_each(cfg)?;
                measure::stream::<T>(cfg, connect_local::<T>)
            },
            demo: |cfg| {
                one_side_each(cfg)?;
                measure::demo::<T>(cfg, connect_local::<T>).map(DemoReport::RoundTrips)
            },
            ..Self::common::<T>()
        }
    }

    /// What both kinds share; the runs are filled in by them.
    fn common<T: Transport>() -> Entry {
        Entry {
            method: T::NAME,
            variant: T::VARIANT,
            modes: T::MODES,
            multi_producer: T::MULTI_PRODUCER,
            multi_consumer: T::MULTI_CONSUMER,
            zero_copy: false,
            message_limit: T::message_limit,
            capacity_limit: T::capacity_limit,
            before_threads: T::before_threads,
            pingpong: |_| Err(HarnessError::Other("no ping-pong registered".into())),
            stream: |_| Err(HarnessError::Other("no stream registered".into())),
            demo: |_| Err(HarnessError::Other("no demo registered".into())),
            peer: peer_main::<T>,
            clean: T::clean,
        }
    }

    /// `method/variant`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.method, self.variant)
    }
}

fn one_side_each(cfg: &RunConfig) -> Result<()> {
    if cfg.is_shared() {
        return Err(HarnessError::Usage(
            "coroutine mode has one producer and one consumer on one thread".into(),
        ));
    }
    Ok(())
}
