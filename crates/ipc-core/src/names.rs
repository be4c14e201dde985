//! Names, ownership and cleanup of the named OS objects the transports create.
//!
//! Every object is named `ipc-showcase.<method>.<pid>.<random>`, created
//! owner-only, registered here while it lives (so that Ctrl-C can remove it:
//! see [`remove_all_registered`]) and removed by its creator on drop. A
//! leftover of a crashed run is *stale* when its creator is no longer running,
//! or when the process now holding that pid started after the object was
//! created (a reused pid). Stale objects are removed by `clean` and by the next
//! creator of the same method; objects another user owns are never touched.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::sys;

/// The prefix of every named object of the project.
pub const PREFIX: &str = "ipc-showcase.";

/// A fresh, unique name for an object of `method`: `ipc-showcase.<method>.<pid>.<random>`.
pub fn unique_name(method: &str) -> String {
    let random: String = (0..6)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    format!("{PREFIX}{method}.{}.{random}", std::process::id())
}

/// The creator pid recorded in a name made by [`unique_name`] for `method`.
pub fn creator_pid(name: &str, method: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(PREFIX)?
        .strip_prefix(method)?
        .strip_prefix('.')?;
    rest.split('.').next()?.parse().ok()
}

/// Whether an object whose name records `pid` and that was last changed at
/// `created` outlived its creator.
///
/// A running process with that pid that started after the object existed did
/// not make it (the pid was reused). The start time from /proc is only good to
/// about a second (the boot time there is in whole seconds and the wall clock
/// may have been stepped since), so a margin of [`START_TIME_MARGIN`] keeps a
/// live creator from ever being taken for dead; the price is that a pid reused
/// within that margin still counts as the creator.
pub fn creator_is_gone(pid: u32, created: SystemTime) -> bool {
    if !sys::process_running(pid) {
        return true;
    }
    matches!(sys::process_start_time(pid), Some(start) if start > created + START_TIME_MARGIN)
}

/// See [`creator_is_gone`].
pub const START_TIME_MARGIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The directory for FIFOs and other files: `$TMPDIR`, or `/tmp`.
pub fn temp_dir() -> PathBuf {
    std::env::temp_dir()
}

/// One named OS object that its creator removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A file or a directory (removed with its contents).
    Path(PathBuf),
    /// A POSIX shared-memory object, by name (`/ipc-showcase.shm...`).
    Shm(String),
    /// A POSIX message queue, by name.
    Mqueue(String),
}

impl Resource {
    /// Removes the object; a missing object is not an error.
    pub fn remove(&self) -> std::io::Result<()> {
        let result = match self {
            Resource::Path(p) if p.is_dir() => std::fs::remove_dir_all(p),
            Resource::Path(p) => std::fs::remove_file(p),
            Resource::Shm(name) => sys::shm_unlink(name),
            Resource::Mqueue(name) => sys::mq_unlink(name),
        };
        match result {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

static REGISTRY: Mutex<Vec<(u64, Resource)>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A named object this process created: removed when the guard drops, and
/// by [`remove_all_registered`] if the process is interrupted first.
#[derive(Debug)]
pub struct Owned {
    id: u64,
    resource: Resource,
}

impl Owned {
    /// Registers `resource`, which this process just created.
    pub fn register(resource: Resource) -> Self {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        lock_registry().push((id, resource.clone()));
        Owned { id, resource }
    }

    /// The object.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Forgets the object without removing it, as a crash would (for tests of cleanup).
    pub fn abandon(self) {
        lock_registry().retain(|(id, _)| *id != self.id);
        std::mem::forget(self);
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        lock_registry().retain(|(id, _)| *id != self.id);
        let _ = self.resource.remove();
    }
}

fn lock_registry() -> std::sync::MutexGuard<'static, Vec<(u64, Resource)>> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes every object this process still owns. For a signal-handling
/// thread (never a signal handler) before the process exits on Ctrl-C.
pub fn remove_all_registered() {
    let all = std::mem::take(&mut *lock_registry());
    for (_, resource) in all {
        let _ = resource.remove();
    }
}

/// What a cleaning pass did.
#[derive(Debug, Default)]
pub struct CleanReport {
    /// Objects of dead creators, removed.
    pub removed: Vec<PathBuf>,
    /// Objects of running creators, left alone.
    pub live: Vec<PathBuf>,
    /// Objects another user owns, left alone: `(object, owner uid)`.
    pub foreign: Vec<(PathBuf, u32)>,
}

impl CleanReport {
    /// Adds another pass's findings to this one.
    pub fn merge(&mut self, other: CleanReport) {
        self.removed.extend(other.removed);
        self.live.extend(other.live);
        self.foreign.extend(other.foreign);
    }
}

/// Removes the stale objects of `method` in directory `dir` (entries named
/// `ipc-showcase.<method>.<pid>.*`), calling `remove` for each.
pub fn clean_dir(
    dir: &Path,
    method: &str,
    remove: impl Fn(&Path) -> std::io::Result<()>,
) -> Result<CleanReport> {
    let mut report = CleanReport::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = creator_pid(&name, method) else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() != me {
            report.foreign.push((path, meta.uid()));
            continue;
        }
        let changed = SystemTime::UNIX_EPOCH
            + std::time::Duration::new(
                meta.ctime().max(0) as u64,
                meta.ctime_nsec().clamp(0, 999_999_999) as u32,
            );
        let created = meta
            .modified()
            .unwrap_or(SystemTime::UNIX_EPOCH)
            .min(changed);
        if creator_is_gone(pid, created) {
            remove(&path).map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
            report.removed.push(path);
        } else {
            report.live.push(path);
        }
    }
    Ok(report)
}

/// A private directory `$TMPDIR/ipc-showcase.<method>.<pid>.<random>/`, mode
/// 0700, removed with its contents when dropped. Stale directories of the
/// same method are removed first.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    _owned: Owned,
}

impl PrivateDir {
    /// Creates the directory.
    pub fn create(method: &str) -> Result<Self> {
        let base = temp_dir();
        let _ = clean_dir(&base, method, |p| std::fs::remove_dir_all(p));
        let path = base.join(unique_name(method));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| Error::io(format!("create directory {}", path.display()), e))?;
        let owned = Owned::register(Resource::Path(path.clone()));
        Ok(PrivateDir {
            path,
            _owned: owned,
        })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_creator_pid() {
        let name = unique_name("pipes");
        assert!(name.starts_with("ipc-showcase.pipes."));
        assert_eq!(creator_pid(&name, "pipes"), Some(std::process::id()));
        assert_eq!(creator_pid(&name, "shm"), None);
        assert_ne!(unique_name("pipes"), name);
    }

    #[test]
    fn private_dir_is_owner_only_and_removed_on_drop() {
        let dir = PrivateDir::create("coretest").expect("create");
        let path = dir.path().to_owned();
        let mode = std::fs::metadata(&path).expect("stat").mode() & 0o777;
        assert_eq!(mode, 0o700);
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn abandoned_dir_of_a_dead_creator_is_cleaned_but_a_live_one_is_not() {
        let live = PrivateDir::create("coretest2").expect("create");
        // Fake a leftover of a dead process: a pid that cannot be running.
        let dead = temp_dir().join(format!("{PREFIX}coretest2.{}.abcd", u32::MAX - 1));
        std::fs::create_dir(&dead).expect("create leftover");
        let report =
            clean_dir(&temp_dir(), "coretest2", |p| std::fs::remove_dir_all(p)).expect("clean");
        assert!(report.removed.contains(&dead));
        assert!(report.live.contains(&live.path().to_owned()));
        assert!(!dead.exists() && live.path().exists());
    }
}
