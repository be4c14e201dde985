//! The crash matrix: every method and variant of the one list
//! (`ipc_showcase::entries()`) that has a process mode, run as a user runs
//! it (`ipc-<method> stream --mode process`) and killed with SIGKILL:
//! the consumer (the peer process), then the producer (the parent), at
//! start-up (as soon as the peer process exists), in steady state, and
//! mid-message (messages far larger than one system call or the channel
//! carries at once: a byte stream's frame, a chunk sequence of signals, a
//! semaphore buffer's slots, a shm loan with `--zero-copy`, so that the kill
//! lands inside one almost every time). Then Ctrl-C and SIGTERM of the
//! parent.
//!
//! Each case checks what the README promises: the survivor exits with code 3
//! and an error naming its peer's death within 2 s (a peer killed before it
//! could run any code of ours may also die of the death signal its parent's
//! death sends it, which is the same promise kept by the kernel); no process
//! of the run remains; and once `clean` has run nothing of the run is left
//! in `$TMPDIR`, /dev/shm, the abstract socket namespace or the message
//! queues. Ctrl-C and SIGTERM leave nothing even before `clean`.
//!
//! A method joins by being listed. `cargo test --test crash_matrix --
//! --nocapture` prints a line per case; `... -- --ignored --nocapture`
//! runs the long version: 20 kills at random points per side and variant.

mod common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ipc_core::Mode;

/// How long the survivor may take to notice and exit.
const SURVIVOR_LIMIT: Duration = Duration::from_secs(2);

/// How long a case waits before it calls the survivor hung.
const HUNG: Duration = Duration::from_secs(20);

/// Where the kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// As soon as the peer process exists.
    StartUp,
    /// After 300 ms of 64-byte messages.
    Steady,
    /// After 300 ms of messages of [`Target::big`] bytes.
    MidMessage,
    /// After a random delay (0-600 ms), with a random size (the long run).
    Random(u64),
}

/// Which side is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    /// The peer process, which receives.
    Consumer,
    /// The parent, which sends.
    Producer,
}

/// One transport of the list, as the matrix runs it.
#[derive(Debug, Clone)]
struct Target {
    method: &'static str,
    variant: &'static str,
    binary: PathBuf,
    zero_copy: bool,
    /// The mid-message size: 256 KiB, or the transport's maximum if less.
    big: usize,
}

impl Target {
    fn name(&self) -> String {
        format!("{}/{}", self.method, self.variant)
    }
}

/// Every entry of the list with a process mode.
fn targets() -> Vec<Target> {
    let any = PathBuf::from(env!("CARGO_BIN_EXE_ipc-compare"));
    ipc_showcase::entries()
        .into_iter()
        .filter(|e| e.modes.contains(&Mode::Process))
        .map(|e| Target {
            method: e.method,
            variant: e.variant,
            binary: any.with_file_name(format!("ipc-{}", e.method)),
            zero_copy: e.zero_copy,
            big: (e.message_limit)().bytes.min(256 * 1024),
        })
        .collect()
}

/// Makes this test process the reaper of orphans it leaves (a producer's
/// peer, once the producer is killed), so that the peer's exit status can be
/// read.
fn become_subreaper() {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag of this
    // process; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_CHILD_SUBREAPER");
}

/// A running `stream` of `target` in process mode.
struct Run {
    child: Child,
    peer: u32,
    stderr: std::thread::JoinHandle<String>,
    tmp: TempDir,
}

fn start(target: &Target, phase: Phase) -> Run {
    let mut size = match phase {
        Phase::StartUp | Phase::Steady => 64,
        Phase::MidMessage => target.big,
        Phase::Random(seed) => {
            if seed % 2 == 0 {
                64
            } else {
                target.big
            }
        }
    };
    let zero_copy = target.zero_copy && size > 64;
    if size < 16 {
        size = 16;
    }
    let tmp = TempDir::new(&format!("crash-{}", target.method));
    let size = size.to_string();
    let mut args = vec![
        "stream",
        "--mode",
        "process",
        "--variant",
        target.variant,
        "--count",
        "1000000000",
        "--verify",
        "seq",
        "--size",
        &size,
    ];
    if zero_copy {
        args.push("--zero-copy");
    }
    let mut child = command(target.binary.to_str().expect("a UTF-8 path"), &tmp, &args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    // The peer inherits the same stderr: the pipe ends when both have gone.
    let mut pipe = child.stderr.take().expect("stderr is piped");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let peer = wait_for_child(child.id(), Duration::from_secs(10));
    match phase {
        Phase::StartUp => {}
        Phase::Steady | Phase::MidMessage => {
            wait_for_thread(peer, "peer-signals", Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(300));
        }
        Phase::Random(seed) => {
            std::thread::sleep(Duration::from_millis(seed % 600));
        }
    }
    Run {
        child,
        peer,
        stderr,
        tmp,
    }
}

/// How a process ended, as `waitpid` said.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Code(i32),
    Signal(i32),
    /// Gone, and not ours to reap: its own parent reaped it while being
    /// killed (the harness's reaper thread can finish a `waitpid` before
    /// the SIGKILL takes it), and the exit status went with that parent.
    ReapedByParent,
}

/// Waits up to `limit` for `pid`, a child of this process (adopted or not).
fn reap(pid: u32, limit: Duration) -> Option<Ended> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only the status word we pass.
        let rc = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
        if rc == pid as i32 {
            return Some(if libc::WIFEXITED(status) {
                Ended::Code(libc::WEXITSTATUS(status))
            } else {
                Ended::Signal(libc::WTERMSIG(status))
            });
        }
        if rc < 0 {
            // Not our child (any more): reaped by its own parent.
            return (!alive(pid)).then_some(Ended::ReapedByParent);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What one case saw.
#[derive(Debug)]
struct Outcome {
    /// From the kill to the survivor's exit.
    noticed: Duration,
    /// Whether the survivor died of its death signal before it ran any
    /// code of ours (a peer killed at its very start), instead of exit 3.
    by_death_signal: bool,
    /// Whether the survivor's exit status could not be seen, because its
    /// dying parent reaped it ([`Ended::ReapedByParent`]), and it named the
    /// parent's death.
    status_unseen: bool,
    /// Whether the survivor, reaped by its dying parent, left no status and
    /// no message, having been killed before it caught SIGTERM (the death
    /// signal); see `kill_and_check`.
    silent_unseen: bool,
}

/// Kills `victim` of a run of `target` at `phase` and checks the promises.
fn kill_and_check(target: &Target, victim: Victim, phase: Phase) -> Result<Outcome, String> {
    let what = format!("{} {victim:?} killed at {phase:?}", target.name());
    let mut run = start(target, phase);
    let parent = run.child.id();
    let peer = run.peer;
    let (killed, survivor) = match victim {
        Victim::Consumer => (peer, parent),
        Victim::Producer => (parent, peer),
    };
    // Whether the peer, alive, could die of the death signal (SIGTERM)
    // without running any code of ours: it has not started the peer's image
    // yet, or does not catch SIGTERM yet. Read just before the kill; a peer
    // that catches it from then on names its parent's death as any other.
    let peer_dies_silently = victim == Victim::Producer && sigterm_ends_silently(peer, "--peer");
    signal(killed, libc::SIGKILL);
    let t0 = Instant::now();
    let ended = match victim {
        Victim::Consumer => wait_bounded(&mut run.child, HUNG).map(|s| match s.code() {
            Some(c) => Ended::Code(c),
            None => Ended::Signal(std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)),
        }),
        Victim::Producer => {
            let _ = run.child.wait();
            reap(survivor, HUNG)
        }
    };
    let noticed = t0.elapsed();
    if ended.is_none() {
        signal(parent, libc::SIGKILL);
        signal(peer, libc::SIGKILL);
        let _ = run.child.wait();
        let _ = reap(peer, Duration::from_secs(5));
    }
    let err = run.stderr.join().unwrap_or_default();
    let ended = ended.ok_or_else(|| format!("{what}: the survivor hung ({HUNG:?})"))?;
    let named = match victim {
        Victim::Consumer => err.contains("peer") && err.contains("signal 9"),
        Victim::Producer => err.contains(&format!("parent process (pid {parent}) is gone")),
    };
    let by_death_signal = victim == Victim::Producer && ended == Ended::Signal(libc::SIGTERM);
    let status_unseen = victim == Victim::Producer && ended == Ended::ReapedByParent;
    // A peer killed by the death signal before it caught SIGTERM, then
    // reaped by its dying parent: its status (the signal) went with the
    // parent, and it wrote nothing. A peer that caught SIGTERM before the
    // kill must name the parent's death, reaped or not.
    let silent_unseen = status_unseen && peer_dies_silently && err.trim().is_empty();
    if !((ended == Ended::Code(3) || status_unseen) && named || by_death_signal || silent_unseen) {
        return Err(format!(
            "{what}: the survivor ended {ended:?}, stderr: {err:?}"
        ));
    }
    if noticed > SURVIVOR_LIMIT {
        return Err(format!("{what}: the survivor took {noticed:?} to exit"));
    }
    for pid in [parent, peer] {
        if !wait_gone(pid, Duration::from_secs(2)) {
            return Err(format!("{what}: process {pid} of the run remains"));
        }
    }
    nothing_left_after_clean(target, &run.tmp, &[parent, peer])
        .map_err(|e| format!("{what}: {e}"))?;
    Ok(Outcome {
        noticed,
        by_death_signal,
        status_unseen: status_unseen && !silent_unseen,
        silent_unseen,
    })
}

/// Runs `clean` as the next user would and checks that nothing of processes
/// `pids` remains anywhere.
fn nothing_left_after_clean(target: &Target, tmp: &TempDir, pids: &[u32]) -> Result<(), String> {
    let queues: Vec<String> = tmp
        .leftovers()
        .into_iter()
        .filter(|n| n.starts_with("ipc-showcase.mqueue."))
        .collect();
    let out = run(
        command(
            target.binary.to_str().expect("a UTF-8 path"),
            tmp,
            &["clean"],
        ),
        Duration::from_secs(30),
    );
    if !out.status.success() {
        return Err(format!("clean failed: {}", stderr(&out)));
    }
    nothing_left(tmp, pids)?;
    for q in queues {
        let name = format!("/{q}");
        if nix::mqueue::mq_open(
            name.as_str(),
            nix::mqueue::MQ_OFlag::O_RDONLY,
            nix::sys::stat::Mode::empty(),
            None,
        )
        .is_ok()
        {
            return Err(format!("message queue {name} remains after clean"));
        }
    }
    Ok(())
}

/// Nothing of processes `pids` in `tmp`, /dev/shm or the abstract socket
/// namespace.
fn nothing_left(tmp: &TempDir, pids: &[u32]) -> Result<(), String> {
    let left = tmp.leftovers();
    if !left.is_empty() {
        return Err(format!("left in $TMPDIR: {left:?}"));
    }
    let objects = ipc_core::names::objects_of(pids, &tmp.0);
    if !objects.is_empty() {
        return Err(format!(
            "left in /dev/shm or the abstract socket namespace: {objects:?}"
        ));
    }
    Ok(())
}

/// Interrupts the parent of a steady run with `sig` and checks that both
/// processes go and nothing is left, without `clean`.
fn interrupt_and_check(target: &Target, sig: i32) -> Result<Outcome, String> {
    let what = format!("{} parent sent signal {sig}", target.name());
    let mut run = start(target, Phase::Steady);
    let (parent, peer) = (run.child.id(), run.peer);
    signal(parent, sig);
    let t0 = Instant::now();
    let status = wait_bounded(&mut run.child, HUNG);
    let noticed = t0.elapsed();
    let gone = wait_gone(peer, Duration::from_secs(5));
    let err = run.stderr.join().unwrap_or_default();
    let status = status.ok_or_else(|| format!("{what}: still running after {HUNG:?}"))?;
    if status.success() {
        return Err(format!("{what}: exited successfully"));
    }
    if !gone {
        return Err(format!("{what}: the peer outlived its parent"));
    }
    if !err.contains("removed this run's objects") {
        return Err(format!("{what}: stderr does not say so: {err:?}"));
    }
    nothing_left(&run.tmp, &[parent, peer]).map_err(|e| format!("{what}: {e}"))?;
    Ok(Outcome {
        noticed,
        by_death_signal: false,
        status_unseen: false,
        silent_unseen: false,
    })
}

/// The look the matrix takes at a peer before killing its parent: running
/// with SIGTERM at its default, or before the image it was started for,
/// says yes; a caught or ignored SIGTERM, or a zombie, says no.
#[test]
fn sigterm_ends_silently_reads_proc() {
    let spawn = |script: &str| {
        std::process::Command::new("sh")
            .args(["-c", script, "look-for-me"])
            .spawn()
            .expect("start sh")
    };
    // Within 5 s, however slowly the shells start.
    let eventually = |pid: u32, arg: &str, want: bool| {
        let start = Instant::now();
        while sigterm_ends_silently(pid, arg) != want {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{pid}: not {want}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let mut default = spawn("exec sleep 5");
    let mut ignoring = spawn("trap '' TERM; sleep 5; :");
    let mut catching = spawn("trap 'exit 0' TERM; sleep 5; :");
    let mut zombie = spawn("exit 0");
    eventually(ignoring.id(), "look-for-me", false);
    eventually(catching.id(), "look-for-me", false);
    eventually(zombie.id(), "look-for-me", false);
    // `exec sleep 5` ends up running sleep, whose arguments are "sleep" and
    // "5"; before that, sh's do not hold "5" alone.
    assert!(sigterm_ends_silently(default.id(), "5"));
    assert!(sigterm_ends_silently(default.id(), "not-started-yet"));
    for child in [&mut default, &mut ignoring, &mut catching] {
        let _ = child.kill();
    }
    for child in [&mut default, &mut ignoring, &mut catching, &mut zombie] {
        let _ = child.wait();
    }
    assert!(!sigterm_ends_silently(zombie.id(), "look-for-me"), "reaped");
}

/// Runs `case` on every target, prints a line for each, and fails with all
/// the failures at once.
fn over_every_target(label: &str, case: impl Fn(&Target) -> Result<Outcome, String>) {
    become_subreaper();
    let mut failures = Vec::new();
    for target in targets() {
        match case(&target) {
            Ok(o) => println!(
                "{label:<32} {:<28} ok, survivor out after {:?}{}",
                target.name(),
                o.noticed,
                if o.by_death_signal {
                    " (by the death signal)"
                } else if o.status_unseen {
                    " (reaped by its dying parent: exit status not seen)"
                } else if o.silent_unseen {
                    " (killed before it caught the death signal, reaped by its dying parent: no status, no message)"
                } else {
                    ""
                }
            ),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn consumer_killed_at_start_up() {
    over_every_target("consumer killed at start-up", |t| {
        kill_and_check(t, Victim::Consumer, Phase::StartUp)
    });
}

#[test]
fn consumer_killed_in_steady_state() {
    over_every_target("consumer killed in steady state", |t| {
        kill_and_check(t, Victim::Consumer, Phase::Steady)
    });
}

#[test]
fn consumer_killed_mid_message() {
    over_every_target("consumer killed mid-message", |t| {
        kill_and_check(t, Victim::Consumer, Phase::MidMessage)
    });
}

#[test]
fn producer_killed_at_start_up() {
    over_every_target("producer killed at start-up", |t| {
        kill_and_check(t, Victim::Producer, Phase::StartUp)
    });
}

#[test]
fn producer_killed_in_steady_state() {
    over_every_target("producer killed in steady state", |t| {
        kill_and_check(t, Victim::Producer, Phase::Steady)
    });
}

#[test]
fn producer_killed_mid_message() {
    over_every_target("producer killed mid-message", |t| {
        kill_and_check(t, Victim::Producer, Phase::MidMessage)
    });
}

#[test]
fn ctrl_c_of_the_parent_removes_everything() {
    over_every_target("Ctrl-C of the parent", |t| {
        interrupt_and_check(t, libc::SIGINT)
    });
}

#[test]
fn sigterm_of_the_parent_removes_everything() {
    over_every_target("SIGTERM of the parent", |t| {
        interrupt_and_check(t, libc::SIGTERM)
    });
}

/// The long version: for every target, 20 kills of each side at random
/// points (0-600 ms into the run, 64-byte or large messages).
/// `cargo test --release --test crash_matrix -- --ignored --nocapture`
#[test]
#[ignore = "long: 20 random kills per side and variant (several minutes)"]
fn random_points_twenty_kills_per_side() {
    become_subreaper();
    // fastrand seeds itself from the clock; the seed is printed, so that a
    // failing run can be told apart from another.
    let seed = fastrand::u64(..);
    println!("random seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut failures = Vec::new();
    for target in targets() {
        for victim in [Victim::Consumer, Victim::Producer] {
            let mut worst = Duration::ZERO;
            let (mut survived, mut by_signal, mut unseen, mut silent) = (0, 0, 0, 0);
            for _ in 0..20 {
                let seed = rng.u64(..);
                match kill_and_check(&target, victim, Phase::Random(seed)) {
                    Ok(o) => {
                        survived += 1;
                        by_signal += usize::from(o.by_death_signal);
                        unseen += usize::from(o.status_unseen);
                        silent += usize::from(o.silent_unseen);
                        worst = worst.max(o.noticed);
                    }
                    Err(e) => failures.push(e),
                }
            }
            println!(
                "{:<28} {victim:?} killed at random points: {survived}/20 as promised ({by_signal} by the death signal, {unseen} reaped by the dying parent, {silent} reaped silently), slowest exit {worst:?}",
                target.name()
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
