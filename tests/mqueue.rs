//! `ipc-mqueue` run as a user runs it: the JSON contract in both modes, a
//! message over the limit that binds, a peer or a parent killed mid-run
//! (its queue gone once the next start or `clean` has run, whether or not
//! /dev/mqueue is mounted: the names are recorded in `$TMPDIR`), Ctrl-C.

mod common;

use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-mqueue");
const LIMIT: Duration = Duration::from_secs(120);

/// The queues process `pid` created, by the records in `tmp`.
fn queues_of(tmp: &TempDir, pid: u32) -> Vec<String> {
    let prefix = format!("ipc-showcase.mqueue.{pid}.");
    tmp.leftovers()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Whether queue `/name` exists.
fn queue_exists(name: &str) -> bool {
    match nix::mqueue::mq_open(
        &*format!("/{name}"),
        nix::mqueue::MQ_OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
        None,
    ) {
        Ok(q) => {
            let _ = nix::mqueue::mq_close(q);
            true
        }
        Err(_) => false,
    }
}

#[test]
fn both_modes_print_the_contract_json_and_leave_nothing() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("mqueue-json");
    for mode in ["process", "thread"] {
        for (cmd, size, wait) in [
            ("pingpong", "0", "block"),
            ("pingpong", "4096", "spin"),
            ("stream", "64", "hybrid"),
        ] {
            let args = [
                cmd, "--mode", mode, "--wait", wait, "--size", size, "--count", "300", "--warmup",
                "20", "--json",
            ];
            let out = run(command(BIN, &tmp, &args), LIMIT);
            assert!(out.status.success(), "{args:?}: {}", stderr(&out));
            let v = json_line(&out);
            assert_eq!(
                (
                    v["method"].as_str(),
                    v["variant"].as_str(),
                    v["mode"].as_str()
                ),
                (Some("mqueue"), Some("posix"), Some(mode))
            );
        }
    }
    assert!(tmp.leftovers().is_empty(), "{:?}", tmp.leftovers());
}

#[test]
fn a_message_over_the_limit_that_binds_is_refused_naming_it() {
    let tmp = TempDir::new("mqueue-size");
    let out = run(
        command(BIN, &tmp, &["pingpong", "--size", "100000000"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("msgsize_max") || err.contains("RLIMIT_MSGQUEUE") || err.contains("ceiling"),
        "{err}"
    );
}

#[test]
fn a_killed_peer_ends_the_run_with_exit_code_3_and_nothing_is_left() {
    let _serial = one_at_a_time();
    for wait in ["block", "spin"] {
        let tmp = TempDir::new("mqueue-peerkill");
        let (child, peer) = long_stream(BIN, &tmp, &["--wait", wait]);
        let parent = child.id();
        let names = queues_of(&tmp, parent);
        assert!(!names.is_empty(), "the run's queues are recorded");
        kill_the_peer_and_expect_exit_code_3(child, peer, wait);
        assert!(tmp.leftovers().is_empty(), "{wait}: {:?}", tmp.leftovers());
        for name in names {
            assert!(!queue_exists(&name), "{wait}: {name} is left");
        }
    }
}

#[test]
fn a_killed_parents_queues_go_at_the_next_start_or_clean() {
    let _serial = one_at_a_time();
    for next in [
        &["clean"][..],
        &["pingpong", "--count", "10", "--warmup", "0"],
    ] {
        let tmp = TempDir::new("mqueue-parentkill");
        let (child, peer) = long_stream(BIN, &tmp, &[]);
        let parent = child.id();
        let names = queues_of(&tmp, parent);
        assert!(!names.is_empty(), "the run's queues are recorded");
        kill_the_parent_and_expect_the_peer_gone(child, peer, "mqueue");
        let out = run(command(BIN, &tmp, next), LIMIT);
        assert!(out.status.success(), "{next:?}: {}", stderr(&out));
        for name in &names {
            assert!(!queue_exists(name), "{next:?} left {name}");
        }
        assert!(
            queues_of(&tmp, parent).is_empty(),
            "{next:?} left the records"
        );
    }
}

#[test]
fn ctrl_c_removes_the_queues_and_stops_the_peer() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("mqueue-sigint");
    let (child, peer) = long_stream(BIN, &tmp, &["--wait", "hybrid"]);
    let names = queues_of(&tmp, child.id());
    ctrl_c_and_expect_both_gone(child, peer, "Ctrl-C");
    for name in names {
        assert!(!queue_exists(&name), "{name} is left");
    }
    assert!(tmp.leftovers().is_empty(), "{:?}", tmp.leftovers());
}
