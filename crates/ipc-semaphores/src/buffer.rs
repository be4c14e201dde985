//! The bounded buffer in its region: the lock (and the repair after a
//! death), the table of participants, the slots, the recount of the
//! semaphores.
//!
//! **Why the counts can be repaired.** A participant says in its ledger
//! what it is doing: `WAIT` before it waits on a semaphore, `HOLD` right
//! after it got the token, `SLOT` while it holds a slot (taken under the
//! mutex), `POST` from the moment it passes its slot on until it has
//! posted; and it changes the slot's state before it posts the semaphore
//! that counts it. A participant dies between two of these steps at most
//! once, leaving a token nobody holds or a post nobody made. The repair, run
//! under the mutex, does not need to know which: it recounts what the
//! semaphores must hold from the slots' states and the live participants'
//! ledgers (`empty` = free slots minus producers holding a token, `full` =
//! full slots minus consumers holding one) and sets them to that.
//!
//! Every race with a live participant leaves the recount one token too
//! many, never one too few: a waiter that got its token a moment ago and
//! has not said `HOLD` yet is counted as not holding it, and a post that
//! lands after the recount counted its slot adds one. A participant with a
//! token that finds no slot for it drops the token and waits again. So
//! after a repair the buffer never has fewer tokens than the truth, and the
//! capacity comes back whole.

use std::sync::Arc;
use std::time::Duration;

use ipc_core::liveness::{PeerProcess, ProcessId};
use ipc_core::{Error, LostMessage, Result};
use ipc_shm::Region;

use crate::layout::*;
use crate::sys::{self, Locked};

/// The buffer in a mapped region, shared by the ends that live in this process.
pub(crate) struct Buffer {
    region: Region,
    pub geo: Geometry,
}

// SAFETY: the region is memory shared with other processes: every access to
// it goes through atomics, or through the semaphores and mutex (raw
// pointers, process-shared objects), or copies into slots a participant
// holds by the protocol.
unsafe impl Send for Buffer {}
// SAFETY: as above; &Buffer gives no unsynchronised access.
unsafe impl Sync for Buffer {}

/// The lock, held; unlocked on drop.
pub(crate) struct Guard<'a> {
    buffer: &'a Buffer,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the buffer's mutex, which lives in the
        // mapped region for as long as the buffer.
        unsafe { sys::mutex_unlock(self.buffer.mutex()) };
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::io(what, e)
}

impl Buffer {
    /// The region's start, as a byte pointer.
    fn base(&self) -> *mut u8 {
        self.region.as_ptr()
    }

    pub(crate) fn name(&self) -> &str {
        self.region.name()
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the region is at least SLOTS_OFF long (checked at create
        // and open), page-aligned, and lives as long as self; Header is made
        // of atomics only, which other processes may change.
        unsafe { &*(self.base() as *const Header) }
    }

    pub(crate) fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: MUTEX_OFF is inside the region (checked length); only a
        // pointer is made, never a reference.
        unsafe { self.base().add(MUTEX_OFF) as *mut libc::pthread_mutex_t }
    }

    pub(crate) fn empty(&self) -> *mut libc::sem_t {
        // SAFETY: as for `mutex`.
        unsafe { self.base().add(EMPTY_OFF) as *mut libc::sem_t }
    }

    pub(crate) fn full(&self) -> *mut libc::sem_t {
        // SAFETY: as for `mutex`.
        unsafe { self.base().add(FULL_OFF) as *mut libc::sem_t }
    }

    pub(crate) fn participant(&self, i: usize) -> &Participant {
        let i = i.min(MAX_PARTICIPANTS - 1);
        // SAFETY: i < MAX_PARTICIPANTS keeps the entry inside the table,
        // inside the region; entries are atomics only.
        unsafe { &*(self.base().add(PARTICIPANTS_OFF + i * 64) as *const Participant) }
    }

    fn lost_entry(&self, i: usize) -> &Lost {
        // SAFETY: i % LOST_LOG keeps it inside the log; atomics only.
        unsafe { &*(self.base().add(LOST_OFF + (i % LOST_LOG) * 16) as *const Lost) }
    }

    pub(crate) fn slot(&self, s: usize) -> &SlotHeader {
        let s = s.min(self.geo.slots - 1);
        // SAFETY: s < slots keeps the header inside the region (its length
        // is region_len(geo), checked); headers are atomics only.
        unsafe { &*(self.base().add(SLOTS_OFF + s * self.geo.stride()) as *const SlotHeader) }
    }

    /// The payload of slot `s` (`slot_size` bytes).
    ///
    /// # Safety
    ///
    /// `s < geo.slots`.
    pub(crate) unsafe fn payload(&self, s: usize) -> *mut u8 {
        // SAFETY: with s < slots, the payload lies inside the region.
        unsafe {
            self.base()
                .add(SLOTS_OFF + s * self.geo.stride() + SLOT_HEADER)
        }
    }

    /// Makes a fresh buffer in a new region named for `method`.
    pub(crate) fn create(
        method: &'static str,
        geo: Geometry,
        open_within: Duration,
    ) -> Result<Arc<Buffer>> {
        let region = Region::create::<ipc_shm::Native>(method, geo.region_len())?;
        if region.len() < geo.region_len() {
            return Err(Error::BadEndpoint(format!(
                "{} was mapped shorter than asked",
                region.name()
            )));
        }
        let buffer = Buffer { region, geo };
        let h = buffer.header();
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        h.slot_size.store(geo.slot_size as u64, relaxed);
        h.slots.store(geo.slots as u64, relaxed);
        h.open_within_ns
            .store(open_within.as_nanos().min(u64::MAX as u128) as u64, relaxed);
        // SAFETY: fresh, zeroed, private memory until the magic is stored
        // below; the objects' places are inside it and aligned (64).
        unsafe {
            sys::mutex_init(buffer.mutex()).map_err(io("make the buffer's mutex"))?;
            sys::sem_init(buffer.empty(), geo.slots as u32)
                .map_err(io("make the semaphore empty"))?;
            sys::sem_init(buffer.full(), 0).map_err(io("make the semaphore full"))?;
        }
        h.magic.store(MAGIC, std::sync::atomic::Ordering::Release);
        Ok(Arc::new(buffer))
    }

    /// Maps the buffer another process created.
    pub(crate) fn open(name: &str) -> Result<Arc<Buffer>> {
        let region = Region::open::<ipc_shm::Native>(name)?;
        let bad = |why: &str| Error::BadEndpoint(format!("{name} {why}"));
        if region.len() < SLOTS_OFF {
            return Err(bad("is too small to be a buffer"));
        }
        // SAFETY: the region holds a header (length checked); atomics only.
        let h = unsafe { &*(region.as_ptr() as *const Header) };
        let acquire = std::sync::atomic::Ordering::Acquire;
        if h.magic.load(acquire) != MAGIC {
            return Err(bad("is not an ipc-showcase semaphore buffer"));
        }
        let geo = Geometry {
            slot_size: h.slot_size.load(acquire) as usize,
            slots: h.slots.load(acquire) as usize,
        };
        let fits = geo.slots >= 1
            && geo.slots <= crate::MAX_SLOTS
            && geo.slot_size <= crate::SLOT_LIMIT.bytes
            && geo.region_len() <= region.len();
        if !fits {
            return Err(bad("has an impossible size"));
        }
        Ok(Arc::new(Buffer { region, geo }))
    }

    /// Takes the mutex; after a holder that died, repairs first. While it
    /// is held, every 50 ms looks at who holds it: a lock word that names
    /// no thread, a thread of this one, or a thread of a process that takes
    /// no part in the channel was written by a peer that broke the protocol
    /// (`Corrupt`, never a wait for ever). A participant that holds it long
    /// (stopped, say) is waited for, as an honest peer is.
    pub(crate) fn lock(&self) -> Result<Guard<'_>> {
        let locked = loop {
            // SAFETY: the mutex lives in the region, mapped as long as self.
            match unsafe { sys::mutex_lock_for(self.mutex(), Duration::from_millis(50)) } {
                Ok(Some(locked)) => break locked,
                Ok(None) => {
                    if let Some(why) = self.lock_held_by_a_stranger() {
                        return Err(Error::Corrupt(format!("the buffer's lock {why}")));
                    }
                }
                Err(e) => return Err(io("lock the buffer")(e)),
            }
        };
        let guard = Guard { buffer: self };
        if locked == Locked::OwnerDied {
            self.repair(&guard);
            // SAFETY: held (the guard), repaired just now.
            unsafe { sys::mutex_consistent(self.mutex()) };
        }
        Ok(guard)
    }

    /// Why the thread the lock word names cannot be an honest holder, if it
    /// cannot: no such thread, this thread, or a thread of a process that is
    /// neither this one nor a participant. `None` when it may be (or when
    /// /proc cannot tell: then the wait goes on).
    fn lock_held_by_a_stranger(&self) -> Option<String> {
        // SAFETY: the mutex lives in the region, mapped as long as self.
        let tid = unsafe { sys::mutex_holder(self.mutex()) }?;
        // SAFETY: gettid has no arguments and cannot fail.
        if tid == unsafe { libc::gettid() } as u32 {
            return Some(format!(
                "names this very thread ({tid}), which does not hold it: a peer rewrote it"
            ));
        }
        let acquire = std::sync::atomic::Ordering::Acquire;
        match sys::process_of_thread(tid)? {
            None => Some(format!(
                "names thread {tid}, and no such thread exists: a peer rewrote it"
            )),
            Some(pid) if pid == std::process::id() => None,
            Some(pid) => {
                let takes_part = (0..MAX_PARTICIPANTS).any(|i| {
                    let p = self.participant(i);
                    p.state.load(acquire) != UNUSED
                        && p.owner.holder().is_some_and(|id| id.pid() == pid)
                });
                (!takes_part).then(|| {
                    format!("is held by thread {tid} of process {pid}, which takes no part in this channel: a peer rewrote it")
                })
            }
        }
    }

    /// Whether participant `i` is there: held by a running process, or
    /// handed over and still within its time to be opened by a process
    /// that runs (or that nobody has named yet).
    fn alive(&self, i: usize) -> bool {
        let p = self.participant(i);
        let acquire = std::sync::atomic::Ordering::Acquire;
        let running = |id: ProcessId| id == ProcessId::current() || id.is_running();
        match p.state.load(acquire) {
            HELD => p.owner.holder().is_some_and(running),
            HANDED => {
                let within = self.header().open_within_ns.load(acquire);
                let in_time =
                    sys::monotonic_ns().saturating_sub(p.handed_at_ns.load(acquire)) < within;
                in_time && p.owner.holder().is_none_or(running)
            }
            _ => false,
        }
    }

    /// The live participants of `role`.
    pub(crate) fn live(&self, role: u32) -> usize {
        (0..MAX_PARTICIPANTS)
            .filter(|&i| {
                let p = self.participant(i);
                p.role.load(std::sync::atomic::Ordering::Acquire) == role && self.alive(i)
            })
            .count()
    }

    /// Slots in `state`.
    pub(crate) fn count_slots(&self, state: u32) -> usize {
        (0..self.geo.slots)
            .filter(|&s| {
                self.slot(s)
                    .state
                    .load(std::sync::atomic::Ordering::Acquire)
                    == state
            })
            .count()
    }

    /// Whether some participant in the table is dead, or a slot is held
    /// by no participant (to be repaired).
    pub(crate) fn someone_died(&self) -> bool {
        let acquire = std::sync::atomic::Ordering::Acquire;
        let dead = (0..MAX_PARTICIPANTS)
            .any(|i| self.participant(i).state.load(acquire) != UNUSED && !self.alive(i));
        dead || (0..self.geo.slots).any(|s| {
            let slot = self.slot(s);
            let state = slot.state.load(acquire);
            let h = slot.holder.load(acquire) as usize;
            (state == WRITING || state == READING)
                && (h >= MAX_PARTICIPANTS || self.participant(h).state.load(acquire) == UNUSED)
        })
    }

    /// Repairs after deaths, if there were any (takes the lock).
    pub(crate) fn repair_if_needed(&self) -> Result<()> {
        if self.someone_died() {
            let guard = self.lock()?;
            self.repair(&guard);
        }
        Ok(())
    }

    /// Under the lock: frees what dead participants held (the message a
    /// dead producer was writing, or a dead consumer was reading or had in
    /// hand, is lost and logged), and any slot held by no participant at
    /// all; removes the dead from the table, and recounts the semaphores
    /// (see the module's doc).
    pub(crate) fn repair(&self, _held: &Guard<'_>) {
        let (acquire, release) = (
            std::sync::atomic::Ordering::Acquire,
            std::sync::atomic::Ordering::Release,
        );
        let dead: Vec<bool> = (0..MAX_PARTICIPANTS)
            .map(|i| self.participant(i).state.load(acquire) != UNUSED && !self.alive(i))
            .collect();
        let mut logged = [false; MAX_PARTICIPANTS];
        for s in 0..self.geo.slots {
            let slot = self.slot(s);
            let state = slot.state.load(acquire);
            if state != WRITING && state != READING {
                continue;
            }
            let h = slot.holder.load(acquire) as usize;
            let orphan = h >= MAX_PARTICIPANTS
                || dead[h]
                || self.participant(h).state.load(acquire) == UNUSED;
            if orphan {
                self.log_lost(LostMessage {
                    producer: slot.producer.load(acquire),
                    seq: slot.seq.load(acquire),
                });
                slot.state.store(FREE, release);
                if let Some(l) = logged.get_mut(h) {
                    *l = true;
                }
            }
        }
        for i in (0..MAX_PARTICIPANTS).filter(|&i| dead[i]) {
            let p = self.participant(i);
            let phase = p.phase.load(acquire);
            if !logged[i] && p.role.load(acquire) == CONSUMER && (phase == POST || phase == IN_HAND)
            {
                // It had freed its slot, the message copied out, and died
                // before it asked for the next one: whether it acted on
                // the message, nobody can tell.
                self.log_lost(LostMessage {
                    producer: p.in_hand_producer.load(acquire),
                    seq: p.in_hand_seq.load(acquire),
                });
            }
            p.phase.store(IDLE, release);
            p.role.store(0, release);
            p.owner.set(None);
            p.state.store(UNUSED, release);
        }
        self.recount();
    }

    /// Sets the semaphores to what the slots and the live ledgers say.
    fn recount(&self) {
        let acquire = std::sync::atomic::Ordering::Acquire;
        let holding = |role| {
            (0..MAX_PARTICIPANTS)
                .filter(|&i| {
                    let p = self.participant(i);
                    p.role.load(acquire) == role && p.phase.load(acquire) == HOLD && self.alive(i)
                })
                .count()
        };
        let empty = self.count_slots(FREE).saturating_sub(holding(PRODUCER));
        let full = self.count_slots(FULL).saturating_sub(holding(CONSUMER));
        for (sem, target) in [(self.empty(), empty), (self.full(), full)] {
            // SAFETY: the semaphores live in the region. A take or a post
            // by a live participant while we adjust the value leaves at
            // most a token too many (see the module's doc).
            unsafe {
                let mut value = sys::sem_value(sem).max(0) as usize;
                while value < target && sys::sem_post(sem).is_ok() {
                    value += 1;
                }
                while value > target && sys::sem_try(sem).unwrap_or(false) {
                    value -= 1;
                }
            }
        }
    }

    /// Under the lock: adds `lost` to the log.
    pub(crate) fn log_lost(&self, lost: LostMessage) {
        let n = self
            .header()
            .lost_count
            .load(std::sync::atomic::Ordering::Acquire);
        let entry = self.lost_entry(n as usize);
        entry
            .producer
            .store(lost.producer, std::sync::atomic::Ordering::Relaxed);
        entry
            .seq
            .store(lost.seq, std::sync::atomic::Ordering::Relaxed);
        // Wrapping: the count is in memory any process of the run can write.
        self.header()
            .lost_count
            .store(n.wrapping_add(1), std::sync::atomic::Ordering::Release);
    }

    /// The messages lost to deaths so far (the last [`LOST_LOG`]), after
    /// repairing the deaths no wait has noticed yet.
    pub(crate) fn lost(&self) -> Result<Vec<LostMessage>> {
        let held = self.lock()?;
        self.repair(&held);
        let n = self
            .header()
            .lost_count
            .load(std::sync::atomic::Ordering::Acquire) as usize;
        Ok((n.saturating_sub(LOST_LOG)..n)
            .map(|i| {
                let e = self.lost_entry(i);
                LostMessage {
                    producer: e.producer.load(std::sync::atomic::Ordering::Relaxed),
                    seq: e.seq.load(std::sync::atomic::Ordering::Relaxed),
                }
            })
            .collect())
    }

    /// Joins as a participant of `role`, held by this process.
    pub(crate) fn join(&self, role: u32) -> Result<usize> {
        let _held = self.lock()?;
        let release = std::sync::atomic::Ordering::Release;
        let i = (0..MAX_PARTICIPANTS)
            .find(|&i| {
                self.participant(i)
                    .state
                    .load(std::sync::atomic::Ordering::Acquire)
                    == UNUSED
            })
            .ok_or_else(|| {
                Error::InUse(format!(
                    "the buffer {} has {MAX_PARTICIPANTS} ends already",
                    self.name()
                ))
            })?;
        let p = self.participant(i);
        p.phase.store(IDLE, release);
        p.next_seq.store(0, release);
        if role == PRODUCER {
            let number = self
                .header()
                .next_producer
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            p.producer.store(number as u32, release);
        }
        p.role.store(role, release);
        p.owner.set(Some(ProcessId::current()));
        p.state.store(HELD, release);
        Ok(i)
    }

    /// Hands participant `i` (held here) to a process that will open it.
    pub(crate) fn hand_over(&self, i: usize) -> Result<()> {
        let _held = self.lock()?;
        let p = self.participant(i);
        let release = std::sync::atomic::Ordering::Release;
        if p.state.load(std::sync::atomic::Ordering::Acquire) != HELD
            || p.owner.holder() != Some(ProcessId::current())
        {
            return Err(Error::InUse(format!(
                "end {i} of {} is not this process's to hand over",
                self.name()
            )));
        }
        p.handed_at_ns.store(sys::monotonic_ns(), release);
        // A message this end received here was delivered here.
        p.phase.store(IDLE, release);
        p.owner.set(None);
        p.state.store(HANDED, release);
        Ok(())
    }

    /// In the child: takes participant `i`, which must be handed over with `role`.
    pub(crate) fn claim(&self, i: usize, role: u32) -> Result<()> {
        let _held = self.lock()?;
        let p = self.participant(i);
        let acquire = std::sync::atomic::Ordering::Acquire;
        if i >= MAX_PARTICIPANTS || p.state.load(acquire) != HANDED || p.role.load(acquire) != role
        {
            return Err(Error::InUse(format!(
                "end {i} of the buffer {} is not waiting to be opened (opened already, or never handed over)",
                self.name()
            )));
        }
        p.owner.set(Some(ProcessId::current()));
        p.state.store(HELD, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Participant `i` (held here) leaves: its end was dropped.
    pub(crate) fn leave(&self, i: usize) {
        if let Ok(_held) = self.lock() {
            let p = self.participant(i);
            if p.owner.holder() == Some(ProcessId::current()) {
                let release = std::sync::atomic::Ordering::Release;
                p.phase.store(IDLE, release);
                p.role.store(0, release);
                p.owner.set(None);
                p.state.store(UNUSED, release);
            }
        }
    }

    /// Names `peer` as the process that will open the handed-over
    /// participants nobody was named for yet, so that every process of the
    /// run sees it die before it opens them.
    pub(crate) fn expect(&self, peer: &PeerProcess) -> Result<()> {
        let _held = self.lock()?;
        for i in 0..MAX_PARTICIPANTS {
            let p = self.participant(i);
            if p.state.load(std::sync::atomic::Ordering::Acquire) == HANDED
                && p.owner.holder().is_none()
            {
                p.owner.set(Some(peer.id()));
            }
        }
        Ok(())
    }
}
