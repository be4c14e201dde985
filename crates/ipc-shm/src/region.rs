//! A named POSIX shared-memory region, owned by its creator.
//!
//! The default backend is our own: `shm_open(O_CREAT | O_EXCL, 0600)`,
//! `ftruncate`, `posix_fallocate` (so a full /dev/shm fails at creation, never
//! with SIGBUS later) and `mmap`; the creator unlinks it on drop, on Ctrl-C
//! (through [`ipc_core::names`]) and the next creator or `clean` removes the
//! region of a dead one. With the cargo feature `shared_memory`, the same
//! region can be backed by the `shared_memory` crate instead ([`Crate`]).

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::ptr::NonNull;

use ipc_core::names::{self, CleanReport, Owned, Resource};
use ipc_core::{Error, Result};
use nix::fcntl::OFlag;
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::stat::Mode as Perm;

/// Where POSIX shared memory lives on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// How a region is created and mapped.
pub trait Backend: Send + Sync + 'static {
    /// The variant name a transport on this backend carries.
    const VARIANT: &'static str;
    /// Creates and maps a new zero-filled region of `len` bytes named `name`.
    /// When it fails after the name exists, the caller removes the name.
    fn create(name: &str, len: usize) -> Result<Mapping>;
    /// Maps the existing region `name`.
    fn open(name: &str) -> Result<Mapping>;
}

/// A mapping of a region into this process.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// What keeps the mapping alive (and unmaps it on drop).
    _keep: Box<dyn Send + Sync>,
}

/// Our own backend over nix.
#[derive(Debug)]
pub struct Native;

/// A region of shared memory mapped into this process; the creator's copy
/// removes the name when dropped.
pub struct Region {
    map: Mapping,
    name: String,
    _owned: Option<Owned>,
}

// SAFETY: the region is plain memory shared with another process; Region only
// hands out its address and length, and every access to the memory goes
// through atomics or the ring's single-producer single-consumer protocol.
unsafe impl Send for Region {}
// SAFETY: as above; &Region gives no unsynchronised access.
unsafe impl Sync for Region {}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Region")
            .field("name", &self.name)
            .field("len", &self.map.len)
            .finish()
    }
}

impl Region {
    /// Creates a fresh region of `len` bytes for `method`, after removing the
    /// regions of dead creators of the same method.
    pub fn create<B: Backend>(method: &str, len: usize) -> Result<Self> {
        let _ = clean(method);
        let name = format!("/{}", names::unique_name(method));
        // Registered before it exists, so that Ctrl-C during a long
        // allocation removes it too; if creating fails half-way (after the
        // name exists), dropping `owned` removes it. If the name was taken
        // (O_EXCL), the object there is somebody else's: it is refused and
        // forgotten, never removed.
        let owned = Owned::register(Resource::Shm(name.clone()));
        let map = match B::create(&name, len) {
            Ok(map) => map,
            Err(e) if e.is_already_exists() => {
                owned.abandon();
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(Region {
            map,
            name,
            _owned: Some(owned),
        })
    }

    /// Maps the region `name` another process created; refuses one another user owns.
    pub fn open<B: Backend>(name: &str) -> Result<Self> {
        check_owner(name)?;
        Ok(Region {
            map: B::open(name)?,
            name: name.to_owned(),
            _owned: None,
        })
    }

    /// Its name, with the leading '/'.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The start of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.ptr.as_ptr()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.map.len
    }

    /// Whether it is empty (never, for a mapped region).
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }

    /// Forgets the name without removing it, as a crash would (for tests of cleanup).
    pub fn abandon(mut self) {
        if let Some(owned) = self._owned.take() {
            owned.abandon();
        }
    }
}

fn check_owner(name: &str) -> Result<()> {
    let path = Path::new(SHM_DIR).join(name.trim_start_matches('/'));
    let meta = std::fs::metadata(&path)
        .map_err(|e| Error::io(format!("open the shared memory {name}"), e))?;
    check_uid(&path, meta.uid())
}

/// Refuses an object at `path` that user `owner`, not this process's, owns.
fn check_uid(path: &Path, owner: u32) -> Result<()> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let me = unsafe { libc::geteuid() };
    if owner != me {
        return Err(Error::Foreign {
            path: path.to_owned(),
            owner,
        });
    }
    Ok(())
}

/// Removes the regions of `method` whose creators are dead.
pub fn clean(method: &str) -> Result<CleanReport> {
    names::clean_dir(Path::new(SHM_DIR), method, |p| {
        let name = format!(
            "/{}",
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        Resource::Shm(name).remove()
    })
}

struct NativeMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: NativeMap only unmaps its own mapping on drop.
unsafe impl Send for NativeMap {}
// SAFETY: &NativeMap gives no access at all.
unsafe impl Sync for NativeMap {}

impl Drop for NativeMap {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and the mapping is
        // unmapped once, here, after every user (the Region) is gone.
        unsafe {
            let _ = nix::sys::mman::munmap(self.ptr.cast(), self.len);
        }
    }
}

fn map_fd(fd: impl AsFd, len: usize, name: &str) -> Result<Mapping> {
    let size = std::num::NonZeroUsize::new(len)
        .ok_or_else(|| Error::BadEndpoint(format!("{name} is empty")))?;
    // SAFETY: a fresh shared mapping of a shm fd at no fixed address cannot
    // alias any Rust object; the memory is only reached through the ring's
    // atomics and copies.
    let ptr = unsafe {
        nix::sys::mman::mmap(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
    }
    .map_err(|e| Error::sys(format!("map the shared memory {name}"), e))?;
    let ptr = ptr.cast::<u8>();
    Ok(Mapping {
        ptr,
        len,
        _keep: Box::new(NativeMap { ptr, len }),
    })
}

fn allocate(fd: &OwnedFd, len: usize, name: &str) -> Result<()> {
    nix::unistd::ftruncate(fd, len as libc::off_t)
        .map_err(|e| Error::sys(format!("size the shared memory {name}"), e))?;
    nix::fcntl::posix_fallocate(fd, 0, len as libc::off_t).map_err(|e| {
        Error::sys(
            format!(
                "reserve {len} bytes of shared memory for {name} (is /dev/shm full or too small?)"
            ),
            e,
        )
    })
}

impl Backend for Native {
    const VARIANT: &'static str = "ring";

    fn create(name: &str, len: usize) -> Result<Mapping> {
        let fd = nix::sys::mman::shm_open(
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR | OFlag::O_CLOEXEC,
            Perm::S_IRUSR | Perm::S_IWUSR,
        )
        .map_err(|e| Error::sys(format!("create the shared memory {name}"), e))?;
        allocate(&fd, len, name)?;
        map_fd(&fd, len, name)
    }

    fn open(name: &str) -> Result<Mapping> {
        let fd = nix::sys::mman::shm_open(name, OFlag::O_RDWR | OFlag::O_CLOEXEC, Perm::empty())
            .map_err(|e| Error::sys(format!("open the shared memory {name}"), e))?;
        let stat = nix::sys::stat::fstat(&fd)
            .map_err(|e| Error::sys(format!("size of the shared memory {name}"), e))?;
        // Checked again on the object opened, not only on the name before
        // (another user could have put a different object there in between).
        check_uid(
            &Path::new(SHM_DIR).join(name.trim_start_matches('/')),
            stat.st_uid,
        )?;
        map_fd(&fd, stat.st_size as usize, name)
    }
}

/// The backend built on the `shared_memory` crate (cargo feature `shared_memory`).
#[cfg(feature = "shared_memory")]
#[derive(Debug)]
pub struct Crate;

#[cfg(feature = "shared_memory")]
struct CrateMap {
    _shm: shared_memory::Shmem,
}

// SAFETY: the Shmem is only kept to unmap on drop; the memory is reached
// through the Region's pointer under the ring's protocol.
#[cfg(feature = "shared_memory")]
unsafe impl Send for CrateMap {}
// SAFETY: &CrateMap gives no access at all.
#[cfg(feature = "shared_memory")]
unsafe impl Sync for CrateMap {}

#[cfg(feature = "shared_memory")]
impl Backend for Crate {
    const VARIANT: &'static str = "ring-shared_memory";

    fn create(name: &str, len: usize) -> Result<Mapping> {
        let mut shm = shared_memory::ShmemConf::new()
            .os_id(name)
            .size(len)
            .create()
            .map_err(|e| {
                let source = match e {
                    shared_memory::ShmemError::MappingIdExists => {
                        std::io::Error::from(std::io::ErrorKind::AlreadyExists)
                    }
                    e => std::io::Error::other(e.to_string()),
                };
                Error::io(format!("create the shared memory {name}"), source)
            })?;
        // Our Region removes the name (also on Ctrl-C), not the crate.
        shm.set_owner(false);
        // The crate does not reserve the pages; do it through our own fd.
        let fd = nix::sys::mman::shm_open(name, OFlag::O_RDWR | OFlag::O_CLOEXEC, Perm::empty())
            .map_err(|e| Error::sys(format!("open the shared memory {name}"), e))?;
        nix::fcntl::posix_fallocate(&fd, 0, len as libc::off_t).map_err(|e| {
            Error::sys(
                format!("reserve {len} bytes of shared memory for {name}"),
                e,
            )
        })?;
        let ptr = NonNull::new(shm.as_ptr())
            .ok_or_else(|| Error::BadEndpoint(format!("{name} mapped at null")))?;
        Ok(Mapping {
            ptr,
            len: shm.len().min(len),
            _keep: Box::new(CrateMap { _shm: shm }),
        })
    }

    fn open(name: &str) -> Result<Mapping> {
        let shm = shared_memory::ShmemConf::new()
            .os_id(name)
            .open()
            .map_err(|e| {
                Error::io(
                    format!("open the shared memory {name}"),
                    std::io::Error::other(e.to_string()),
                )
            })?;
        let ptr = NonNull::new(shm.as_ptr())
            .ok_or_else(|| Error::BadEndpoint(format!("{name} mapped at null")))?;
        // The crate gives no fd to fstat: check the owner of the object by
        // name, then that the object mapped is that one (another user could
        // have put a different object under the name in between).
        let path = Path::new(SHM_DIR).join(name.trim_start_matches('/'));
        let meta = std::fs::metadata(&path)
            .map_err(|e| Error::io(format!("open the shared memory {name}"), e))?;
        check_uid(&path, meta.uid())?;
        match mapped_inode(ptr.as_ptr() as usize) {
            Some(ino) if ino == meta.ino() => {}
            _ => {
                return Err(Error::BadEndpoint(format!(
                    "the object mapped for {name} is not the one whose owner was checked (it was replaced meanwhile)"
                )))
            }
        }
        Ok(Mapping {
            ptr,
            len: shm.len(),
            _keep: Box::new(CrateMap { _shm: shm }),
        })
    }
}

/// The inode of the file mapped at address `start` in this process, from
/// its line in /proc/self/maps (`start-end perms offset dev inode path`),
/// which any process may read about itself.
#[cfg(feature = "shared_memory")]
fn mapped_inode(start: usize) -> Option<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let first = usize::from_str_radix(range.split('-').next()?, 16).ok()?;
        if first != start {
            return None;
        }
        fields.nth(3)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn region_lives_and_dies<B: Backend>() {
        let region = Region::create::<B>("shmtest", 1 << 16).expect("create");
        let path = Path::new(SHM_DIR).join(region.name().trim_start_matches('/'));
        assert_eq!(
            std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        // SAFETY: the region is ours, 64 KiB long, and nobody else maps it.
        unsafe { region.as_ptr().add(100).write(42) };
        let other = Region::open::<B>(region.name()).expect("open");
        // SAFETY: as above; both mappings show the same memory.
        assert_eq!(unsafe { other.as_ptr().add(100).read() }, 42);
        drop(other);
        assert!(path.exists(), "only the creator removes the name");
        drop(region);
        assert!(!path.exists(), "the creator removed the name");
    }

    /// A name found taken when the region is made: the object there is
    /// somebody else's: refused, never adopted, never removed. The name's
    /// random part comes from this thread's generator, seeded twice alike.
    fn a_name_taken_by_someone_else_is_refused_and_left_alone<B: Backend>(seed: u64) {
        fastrand::seed(seed);
        let name = format!("/{}", names::unique_name("shmsquat"));
        let squatter = nix::sys::mman::shm_open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Perm::S_IRUSR | Perm::S_IWUSR,
        )
        .expect("the squatter's object");
        fastrand::seed(seed);
        let err = Region::create::<B>("shmsquat", 4096).expect_err("the name is taken");
        assert!(err.is_already_exists(), "{err}");
        let path = Path::new(SHM_DIR).join(&name[1..]);
        assert!(path.exists(), "the squatter's object was removed");
        assert!(!names::registered().contains(&Resource::Shm(name.clone())));
        drop(squatter);
        nix::sys::mman::shm_unlink(name.as_str()).expect("remove the squatter's object");
    }

    #[test]
    fn native_refuses_a_name_someone_else_took() {
        a_name_taken_by_someone_else_is_refused_and_left_alone::<Native>(0x5917);
    }

    #[cfg(feature = "shared_memory")]
    #[test]
    fn crate_refuses_a_name_someone_else_took() {
        a_name_taken_by_someone_else_is_refused_and_left_alone::<Crate>(0x5918);
    }

    #[test]
    fn native_region_is_owner_only_shared_and_removed_by_its_creator() {
        region_lives_and_dies::<Native>();
    }

    #[cfg(feature = "shared_memory")]
    #[test]
    fn crate_region_is_owner_only_shared_and_removed_by_its_creator() {
        region_lives_and_dies::<Crate>();
    }

    /// A region that another user owns, made under our name, as an attacker
    /// could; `None` when this process may not give files away (not root).
    fn foreign_region(test: &str) -> Option<(String, std::path::PathBuf)> {
        let name = format!("/{}{test}.{}.1.frgn", names::PREFIX, std::process::id());
        drop(Native::create(&name, 4096).expect("make the region"));
        let path = Path::new(SHM_DIR).join(name.trim_start_matches('/'));
        if std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_err() {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        Some((name, path))
    }

    fn a_foreign_region_is_refused<B: Backend>(test: &str) {
        let Some((name, path)) = foreign_region(test) else {
            return; // not root: cannot make a foreign object to test with
        };
        let result = Region::open::<B>(&name).map(drop);
        let _ = std::fs::remove_file(&path);
        match result {
            Err(Error::Foreign { owner, .. }) => assert_eq!(owner, 65534),
            other => panic!("expected Foreign, got {other:?}"),
        }
    }

    #[test]
    fn the_native_backend_refuses_a_region_another_user_owns() {
        a_foreign_region_is_refused::<Native>("shmtest4");
    }

    #[cfg(feature = "shared_memory")]
    #[test]
    fn the_crate_backend_refuses_a_region_another_user_owns() {
        // Past the name check, as if the object were swapped after it.
        let Some((name, path)) = foreign_region("shmtest5") else {
            return;
        };
        let result = Crate::open(&name).map(drop);
        let _ = std::fs::remove_file(&path);
        assert!(
            matches!(result, Err(Error::Foreign { owner: 65534, .. })),
            "{:?}",
            result.map(|_| ())
        );
        a_foreign_region_is_refused::<Crate>("shmtest6");
    }

    #[cfg(feature = "shared_memory")]
    #[test]
    fn the_crate_backend_finds_the_inode_it_mapped() {
        let region = Region::create::<Crate>("shmtest7", 1 << 16).expect("create");
        let path = Path::new(SHM_DIR).join(region.name().trim_start_matches('/'));
        let ino = std::fs::metadata(&path).expect("stat").ino();
        let other = Region::open::<Crate>(region.name()).expect("open");
        assert_eq!(mapped_inode(other.as_ptr() as usize), Some(ino));
    }

    #[test]
    fn a_dead_creators_region_is_removed_by_the_next_creator() {
        let name = format!("/{}shmtest2.{}.1.dead", names::PREFIX, u32::MAX - 3);
        let _ = Native::create(&name, 4096).expect("leftover");
        let path = Path::new(SHM_DIR).join(name.trim_start_matches('/'));
        assert!(path.exists());
        let fresh = Region::create::<Native>("shmtest2", 4096).expect("create");
        assert!(
            !path.exists(),
            "the stale region of a dead creator is still there"
        );
        drop(fresh);
    }

    #[test]
    fn a_region_that_is_too_large_fails_at_creation() {
        let err = Region::create::<Native>("shmtest3", 1 << 50).expect_err("too large");
        assert!(err.to_string().contains("shared memory"), "{err}");
        let leftovers = std::fs::read_dir(SHM_DIR)
            .expect("list")
            .flatten()
            .filter(|e| {
                e.file_name().to_string_lossy().starts_with(&format!(
                    "{}shmtest3.{}",
                    names::PREFIX,
                    std::process::id()
                ))
            })
            .count();
        assert_eq!(leftovers, 0);
    }
}
