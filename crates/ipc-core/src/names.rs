//! Names, ownership and cleanup of the named OS objects the transports create.
//!
//! Every object is named `ipc-showcase.<method>.<pid>.<start>.<random>`
//! (the creator's pid and its start time in clock ticks after boot),
//! created owner-only, registered here while it lives (so that Ctrl-C can
//! remove it: see [`remove_all_registered`]) and removed by its creator on
//! drop. A leftover of a crashed run is *stale* when no process with that pid
//! and that start time runs any more: a pid given to another process later
//! has another start time, and nothing here reads the wall clock, which can
//! be stepped. Stale objects are removed by `clean` and by the next creator
//! of the same method; objects another user owns are never touched.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::liveness::ProcessId;
use crate::sys;

/// The prefix of every named object of the project.
pub const PREFIX: &str = "ipc-showcase.";

/// A fresh, unique name for an object of `method`:
/// `ipc-showcase.<method>.<pid>.<start>.<random>`.
pub fn unique_name(method: &str) -> String {
    let random: String = (0..6)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    let me = ProcessId::current();
    format!(
        "{PREFIX}{method}.{}.{}.{random}",
        me.pid(),
        me.start_ticks()
    )
}

/// The creator recorded in a name made by [`unique_name`] for `method`: its
/// pid, and its start time where the name carries one.
pub fn creator(name: &str, method: &str) -> Option<(u32, Option<u64>)> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix(method)?;
    rest.starts_with('.').then(|| creator_of_any(name))?
}

/// The creator recorded in a name made by [`unique_name`], whatever its
/// method.
pub fn creator_of_any(name: &str) -> Option<(u32, Option<u64>)> {
    let (_method, rest) = name.strip_prefix(PREFIX)?.split_once('.')?;
    let mut parts = rest.split('.');
    let pid = parts.next()?.parse().ok()?;
    let start = match (parts.next(), parts.next()) {
        (Some(start), Some(_random)) => start.parse().ok(),
        _ => None,
    };
    Some((pid, start))
}

/// Whether the creator a name records (see [`creator`]) is gone: no process
/// with that pid and start time runs. A name without a start time counts
/// its creator as alive while any process has that pid. It fails safe, as
/// [`ProcessId::is_running`] does: a creator whose /proc entry cannot be
/// read for another reason than its absence counts as alive, since taking
/// a live creator for a dead one would remove what it still uses.
pub fn creator_is_gone(pid: u32, start: Option<u64>) -> bool {
    !ProcessId::from_parts(pid, start.unwrap_or(0)).is_running()
}

/// The objects that processes `pids` made and that are on the machine now,
/// by the creator our names carry ([`creator_of_any`]): in /dev/shm, in
/// `dir` (a `$TMPDIR`) and in the abstract Unix socket namespace, sorted.
/// For the checks that a run or a channel left nothing behind.
pub fn objects_of(pids: &[u32], dir: &Path) -> Vec<String> {
    // Abstract socket names show in /proc/net/unix with a leading '@'.
    let ours = |name: &str| {
        creator_of_any(name.trim_start_matches('@')).is_some_and(|(pid, _)| pids.contains(&pid))
    };
    let listed = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| ours(n))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found = listed(Path::new("/dev/shm"));
    found.extend(listed(dir));
    found.extend(
        std::fs::read_to_string("/proc/net/unix")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().nth(7))
            .filter(|n| ours(n))
            .map(str::to_owned),
    );
    found.sort();
    found
}

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
            Resource::Path(p) if p.is_dir() => remove_dir_all(p),
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

    /// Forgets the object without removing it: for a name found taken
    /// (the object there is somebody else's), and for tests of cleanup (as
    /// a crash would).
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

/// Every object this process owns now (for tests that check that none is
/// left registered).
pub fn registered() -> Vec<Resource> {
    lock_registry().iter().map(|(_, r)| r.clone()).collect()
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
    /// Objects of dead creators that could not be removed: `(object, why)`.
    pub failed: Vec<(PathBuf, String)>,
}

impl CleanReport {
    /// Adds another pass's findings to this one.
    pub fn merge(&mut self, other: CleanReport) {
        self.removed.extend(other.removed);
        self.live.extend(other.live);
        self.foreign.extend(other.foreign);
        self.failed.extend(other.failed);
    }
}

/// Removes the stale objects of `method` in directory `dir` (entries named
/// `ipc-showcase.<method>.<pid>...`), calling `remove` for each. A removal
/// that fails is reported in [`CleanReport::failed`] and the pass goes on;
/// an object that vanishes meanwhile (another cleaner took it) is skipped.
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
        let Some((pid, start)) = creator(&name, method) else {
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
        if !creator_is_gone(pid, start) {
            report.live.push(path);
            continue;
        }
        match remove(&path) {
            Ok(()) => report.removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.failed.push((path, e.to_string())),
        }
    }
    Ok(report)
}

/// Removes directory `path` with its contents; parts that vanish meanwhile
/// (another cleaner at work) are not an error.
pub fn remove_dir_all(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !path.exists() => Ok(()),
        other => other,
    }
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
        let _ = clean_dir(&base, method, remove_dir_all);
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
    fn names_carry_the_creator_pid_and_start() {
        let name = unique_name("pipes");
        assert!(name.starts_with("ipc-showcase.pipes."));
        let me = ProcessId::current();
        assert_eq!(
            creator(&name, "pipes"),
            Some((me.pid(), Some(me.start_ticks())))
        );
        assert_eq!(creator(&name, "shm"), None);
        assert_eq!(
            creator("ipc-showcase.pipes.42.k3x9", "pipes"),
            Some((42, None)),
            "a name without a start time"
        );
        assert_ne!(unique_name("pipes"), name);
        assert!(!creator_is_gone(me.pid(), Some(me.start_ticks())));
        assert!(
            creator_is_gone(me.pid(), Some(me.start_ticks() + 1)),
            "the same pid started later is another process"
        );
        assert!(!creator_is_gone(me.pid(), None));
    }

    #[test]
    fn a_failed_removal_is_reported_and_the_pass_goes_on() {
        let base = temp_dir().join(format!("ipc-test.clean.{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("base");
        let dead = |tag: &str| base.join(format!("{PREFIX}coretest3.{}.1.{tag}", u32::MAX - 5));
        for tag in ["a", "b", "c"] {
            std::fs::create_dir(dead(tag)).expect("leftover");
        }
        let report = clean_dir(&base, "coretest3", |p| {
            if p.ends_with(dead("b").file_name().expect("name")) {
                Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            } else if p.ends_with(dead("c").file_name().expect("name")) {
                // Another cleaner got there first.
                std::fs::remove_dir(p)?;
                Err(std::io::Error::from(std::io::ErrorKind::NotFound))
            } else {
                std::fs::remove_dir(p)
            }
        })
        .expect("clean");
        assert_eq!(report.removed, vec![dead("a")]);
        assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
        assert_eq!(report.failed[0].0, dead("b"));
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn two_cleaners_at_once_do_not_fail_each_other() {
        let base = temp_dir().join(format!("ipc-test.clean2.{}", std::process::id()));
        for i in 0..200 {
            let dir = base.join(format!("{PREFIX}coretest4.{}.1.{i}", u32::MAX - 6));
            std::fs::create_dir_all(dir.join("a/b/c")).expect("leftover");
        }
        let cleaners: Vec<_> = (0..2)
            .map(|_| {
                let base = base.clone();
                std::thread::spawn(move || clean_dir(&base, "coretest4", remove_dir_all))
            })
            .collect();
        let mut removed = 0;
        for c in cleaners {
            let report = c.join().expect("cleaner").expect("clean");
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            removed += report.removed.len();
        }
        assert!(removed >= 200, "removed {removed}");
        assert_eq!(std::fs::read_dir(&base).expect("list").count(), 0);
        let _ = std::fs::remove_dir_all(&base);
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
        let dead = temp_dir().join(format!("{PREFIX}coretest2.{}.1.abcd", u32::MAX - 1));
        std::fs::create_dir(&dead).expect("create leftover");
        let report = clean_dir(&temp_dir(), "coretest2", remove_dir_all).expect("clean");
        assert!(report.removed.contains(&dead));
        assert!(report.live.contains(&live.path().to_owned()));
        assert!(!dead.exists() && live.path().exists());
    }

    #[test]
    fn a_directory_name_someone_else_took_is_refused_and_left_alone() {
        fastrand::seed(0xd1e);
        let taken = temp_dir().join(unique_name("coretest5"));
        std::fs::create_dir(&taken).expect("the squatter's directory");
        std::fs::write(taken.join("theirs"), b"x").expect("a file of theirs");
        fastrand::seed(0xd1e);
        let err = PrivateDir::create("coretest5").expect_err("the name is taken");
        assert!(err.is_already_exists(), "{err}");
        assert!(
            taken.join("theirs").exists(),
            "the squatter's directory was touched"
        );
        assert!(!registered().contains(&Resource::Path(taken.clone())));
        std::fs::remove_dir_all(&taken).expect("remove the squatter's directory");
    }

    #[test]
    fn the_objects_of_a_process_are_found_by_the_creator_in_their_names() {
        let dir = PrivateDir::create("coretest6").expect("create");
        let name = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("its name")
            .to_owned();
        let me = std::process::id();
        assert!(objects_of(&[me], &temp_dir()).contains(&name));
        assert!(!objects_of(&[me + 1], &temp_dir()).contains(&name));
        drop(dir);
        assert!(!objects_of(&[me], &temp_dir()).contains(&name));
    }

    #[test]
    fn a_reused_pid_is_told_apart_by_its_start_time() {
        let base = temp_dir().join(format!("ipc-test.reused.{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("base");
        let me = ProcessId::current();
        // Faked records: this live process (kept); a creator that had this
        // pid before (another start time: gone, whoever has the pid now);
        // a live process under a record without a start (kept: the pid is
        // all there is to go by).
        let record = |start: &str, tag: &str| {
            let path = base.join(format!("{PREFIX}coretest4.{}.{start}{tag}", me.pid()));
            std::fs::write(&path, b"").expect("a faked record");
            path
        };
        let live = record(&format!("{}.", me.start_ticks()), "live");
        let reused = record(&format!("{}.", me.start_ticks() + 7), "reused");
        let no_start = record("", "nostart");
        let report = clean_dir(&base, "coretest4", |p| std::fs::remove_file(p)).expect("clean");
        assert_eq!(report.removed, vec![reused.clone()]);
        assert!(live.exists() && no_start.exists() && !reused.exists());
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn an_unknown_start_time_never_makes_a_live_creator_gone() {
        // What a creator records when it could not read its own start.
        let me = ProcessId::current();
        assert!(!creator_is_gone(me.pid(), Some(0)));
        assert!(ProcessId::from_parts(me.pid(), 0).is_running());
        assert!(creator_is_gone(u32::MAX - 3, Some(0)), "no such pid");
    }
}
