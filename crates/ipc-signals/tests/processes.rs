//! The signals transports with the other end in another process. Every
//! thread of a process that receives data signals must block them, so this
//! test binary runs without the test runner's threads (`harness = false`)
//! and calls `ipc_signals::init()` first; it runs the conformance suite's
//! process flavour for both variants, and the checks that need a process of
//! their own: a foreign process's signal, the data range used up.

use std::process::{Command, Stdio};
use std::time::Duration;

use ipc_core::conformance::{self, Processes};
use ipc_core::liveness::PeerProcess;
use ipc_core::{Error, Handover, Mode, Options, Receiver, Transport};
use ipc_signals::{Doorbell, Rt};

/// Set in a child that only queues one signal to a process and exits.
const FOREIGN: &str = "IPC_SIGNALS_TEST_FOREIGN";

fn main() {
    if let Ok(what) = std::env::var(FOREIGN) {
        queue_as_a_stranger(&what);
        return;
    }
    ipc_signals::init().expect("block the data signals");
    let mut failed = 0;
    // SAFETY: in this test binary only the process flavour sets the
    // variables its children read.
    unsafe {
        failed += conformance::run_suite::<Rt, Processes>("rt_processes");
        failed += conformance::run_suite::<Doorbell, Processes>("doorbell_processes");
    }
    let only = conformance::only_test();
    let own: [(&str, fn()); 2] = [
        (
            "a_signal_from_a_foreign_process_is_ignored_and_counted",
            a_signal_from_a_foreign_process_is_ignored_and_counted,
        ),
        (
            "the_data_range_used_up_gives_a_clear_error",
            the_data_range_used_up_gives_a_clear_error,
        ),
    ];
    for (name, test) in own {
        if only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        let ok = std::panic::catch_unwind(test).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    if failed > 0 {
        eprintln!("{failed} test(s) failed");
        std::process::exit(101);
    }
}

/// In the stranger child: `pid signo value`, one queued signal.
fn queue_as_a_stranger(what: &str) {
    let n: Vec<i64> = what.split(' ').filter_map(|w| w.parse().ok()).collect();
    let value = libc::sigval {
        sival_ptr: n[2] as usize as *mut libc::c_void,
    };
    // SAFETY: sigqueue takes plain values; the pointer is never dereferenced.
    unsafe { libc::sigqueue(n[0] as i32, n[1] as i32, value) };
}

fn a_signal_from_a_foreign_process_is_ignored_and_counted() {
    let (tx, mut rx) = Rt::channel(Mode::Process, &Options::default()).expect("channel");
    // The sender goes to a child that never sends (a sleeping process).
    let ep = Rt::export_sender(tx, &mut Handover::new()).expect("export");
    let signo = ep.extra[0] as i64;
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
    let peer = PeerProcess::of_child(&sleeper).expect("its identity");
    Rt::set_peer_of_receiver(&mut rx, &peer).expect("peer");
    // A stranger queues what would be a whole 4-byte message on the
    // channel's signal.
    let header = 4 | (u64::from(u32::from_le_bytes(*b"evil")) << 32);
    let status = Command::new(std::env::current_exe().expect("this binary"))
        .env(FOREIGN, format!("{} {signo} {header}", std::process::id()))
        .stdout(Stdio::null())
        .status()
        .expect("the stranger");
    assert!(status.success());
    match rx.recv_timeout(Duration::from_millis(300)) {
        Err(Error::Timeout) => {}
        other => panic!("expected Timeout, got {:?}", other.map(<[u8]>::to_vec)),
    }
    assert_eq!(rx.foreign_signals(), 1);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

fn the_data_range_used_up_gives_a_clear_error() {
    let mut held = Vec::new();
    let err = loop {
        match Rt::channel(Mode::Process, &Options::default()) {
            Ok(ends) => held.push(ends),
            Err(e) => break e,
        }
        assert!(held.len() <= 64, "more channels than real-time signals");
    };
    let (low, high) = ipc_signals::numbers::data_bounds();
    assert_eq!(held.len(), (high - low + 1) as usize);
    assert!(
        matches!(&err, Error::InUse(why) if why.contains("every data signal")),
        "{err}"
    );
    held.pop();
    Rt::channel(Mode::Process, &Options::default()).expect("a number came back");
}
