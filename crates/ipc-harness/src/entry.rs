//! One registered transport, with its type erased so that a binary can list
//! several (ipc-compare lists them all) in one table.

use ipc_core::names::CleanReport;
use ipc_core::{Mode, Transport};

use crate::error::Result;
use crate::peer::PeerSpec;
use crate::report::{PingpongReport, StreamReport};
use crate::run::{self, RunConfig};

/// A transport the harness can run, by method and variant.
#[derive(Clone, Copy)]
pub struct Entry {
    /// The method (`pipes`).
    pub method: &'static str,
    /// The variant (`pipe`).
    pub variant: &'static str,
    /// The modes it serves, the default first.
    pub modes: &'static [Mode],
    /// Runs a ping-pong.
    pub pingpong: fn(&RunConfig) -> Result<PingpongReport>,
    /// Runs a stream.
    pub stream: fn(&RunConfig) -> Result<StreamReport>,
    /// Runs the demo; returns each task's round trip.
    pub demo: fn(&RunConfig) -> Result<Vec<std::time::Duration>>,
    /// Runs the consumer in a peer process.
    pub peer: fn(&PeerSpec) -> Result<()>,
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
    /// every mode it declares.
    pub fn of<T: Transport>() -> Entry
    where
        T::Sender: Send,
        T::Receiver: Send,
    {
        Entry {
            method: T::NAME,
            variant: T::VARIANT,
            modes: T::MODES,
            pingpong: |cfg| run::pingpong::<T>(cfg, run::connect_any::<T>),
            stream: |cfg| run::stream::<T>(cfg, run::connect_any::<T>),
            demo: |cfg| run::demo::<T>(cfg, run::connect_any::<T>),
            peer: run::peer_main::<T>,
            clean: T::clean,
        }
    }

    /// Registers a transport whose ends stay on one thread (coroutine mode).
    pub fn local<T: Transport>() -> Entry {
        Entry {
            method: T::NAME,
            variant: T::VARIANT,
            modes: T::MODES,
            pingpong: |cfg| run::pingpong::<T>(cfg, run::connect_local::<T>),
            stream: |cfg| run::stream::<T>(cfg, run::connect_local::<T>),
            demo: |cfg| run::demo::<T>(cfg, run::connect_local::<T>),
            peer: run::peer_main::<T>,
            clean: T::clean,
        }
    }

    /// `method/variant`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.method, self.variant)
    }
}
