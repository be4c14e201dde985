//! `ipc-shm` run as a user runs it: the JSON contract, a peer killed
//! mid-run, a parent killed mid-run, Ctrl-C, and nothing left in /dev/shm.

mod common;

use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-shm");
const LIMIT: Duration = Duration::from_secs(60);

/// The objects in /dev/shm that process `pid` created.
fn regions_of(pid: u32) -> Vec<String> {
    dev_shm_objects_of("shm", pid)
}

fn variants() -> Vec<&'static str> {
    if cfg!(feature = "shared_memory") {
        vec!["ring", "ring-shared_memory"]
    } else {
        vec!["ring"]
    }
}

#[test]
fn every_mode_and_wait_prints_the_contract_json_and_leaves_nothing() {
    let _serial = one_at_a_time();
    for variant in variants() {
        for mode in ["process", "thread"] {
            for wait in ["block", "spin", "hybrid"] {
                let tmp = TempDir::new("shm-json");
                let child = command(
                    BIN,
                    &tmp,
                    &[
                        "pingpong",
                        "--variant",
                        variant,
                        "--mode",
                        mode,
                        "--wait",
                        wait,
                        "--count",
                        "500",
                        "--json",
                    ],
                );
                let (out, pid) = run_with_pid(child, LIMIT);
                assert!(
                    out.status.success(),
                    "{variant} {mode} {wait}: {}",
                    stderr(&out)
                );
                assert!(
                    regions_of(pid).is_empty(),
                    "{variant} {mode} {wait} left {:?}",
                    regions_of(pid)
                );
                let v = json_line(&out);
                assert_eq!(
                    (v["method"].as_str(), v["variant"].as_str()),
                    (Some("shm"), Some(variant))
                );
                assert_eq!(
                    (v["mode"].as_str(), v["wait"].as_str()),
                    (Some(mode), Some(wait))
                );
                assert!(v["rtt_ns"]["p50"].as_u64().is_some_and(|p| p > 0));
            }
        }
        let tmp = TempDir::new("shm-stream");
        for size in ["0", "65536", "1048576"] {
            let (out, pid) = run_with_pid(
                command(
                    BIN,
                    &tmp,
                    &[
                        "stream",
                        "--variant",
                        variant,
                        "--size",
                        size,
                        "--count",
                        "300",
                        "--json",
                    ],
                ),
                LIMIT,
            );
            assert!(
                out.status.success(),
                "{variant} stream {size}: {}",
                stderr(&out)
            );
            assert_eq!(json_line(&out)["size"].to_string(), size);
            assert!(regions_of(pid).is_empty(), "left {:?}", regions_of(pid));
        }
    }
}

#[test]
fn zero_copy_pingpong_and_stream_run_in_both_modes_and_other_methods_refuse_it() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("shm-zero-copy");
    for mode in ["process", "thread"] {
        for (sub, size, wait) in [
            ("pingpong", "64", "spin"),
            ("pingpong", "0", "block"),
            ("stream", "65536", "block"),
            ("stream", "8", "hybrid"),
        ] {
            let args = [
                sub,
                "--zero-copy",
                "--mode",
                mode,
                "--wait",
                wait,
                "--size",
                size,
                "--count",
                "2000",
                "--json",
            ];
            let (out, pid) = run_with_pid(command(BIN, &tmp, &args), LIMIT);
            assert!(
                out.status.success(),
                "{sub} {mode} {size}: {}",
                stderr(&out)
            );
            assert_eq!(json_line(&out)["size"].to_string(), size);
            assert!(regions_of(pid).is_empty(), "left {:?}", regions_of(pid));
        }
    }
    let pipes = env!("CARGO_BIN_EXE_ipc-pipes");
    let out = run(command(pipes, &tmp, &["pingpong", "--zero-copy"]), LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no zero-copy path"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_killed_peer_ends_the_run_with_exit_code_3_and_the_regions_are_removed() {
    let _serial = one_at_a_time();
    for wait in ["block", "spin"] {
        let tmp = TempDir::new("shm-peerkill");
        let (child, peer) = long_stream(BIN, &tmp, &["--wait", wait]);
        let parent = child.id();
        assert!(
            !regions_of(parent).is_empty(),
            "the run's regions should exist while it runs"
        );
        kill_the_peer_and_expect_exit_code_3(child, peer, wait);
        assert!(
            regions_of(parent).is_empty(),
            "{wait}: left {:?}",
            regions_of(parent)
        );
    }
}

#[test]
fn a_killed_parent_takes_its_peer_along_and_the_next_start_or_clean_removes_its_regions() {
    let _serial = one_at_a_time();
    for then in ["next start", "clean"] {
        let tmp = TempDir::new("shm-parentkill");
        let (child, peer) = long_stream(BIN, &tmp, &[]);
        let parent = child.id();
        kill_the_parent_and_expect_the_peer_gone(child, peer, "shm");
        assert!(
            !regions_of(parent).is_empty(),
            "a SIGKILLed creator cannot remove its regions"
        );
        let args: &[&str] = if then == "clean" {
            &["clean"]
        } else {
            &["pingpong", "--count", "10"]
        };
        let out = run(command(BIN, &tmp, args), LIMIT);
        assert!(out.status.success(), "{then}: {}", stderr(&out));
        assert!(
            regions_of(parent).is_empty(),
            "{then} left {:?}",
            regions_of(parent)
        );
    }
}

#[test]
fn the_peer_of_a_killed_parent_says_why_it_stops() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("shm-orphan");
    let (mut child, peer) = long_stream(BIN, &tmp, &[]);
    // The peer's stderr is the parent's: capture the parent's after the kill.
    signal(child.id(), libc::SIGKILL);
    let _ = wait_bounded(&mut child, Duration::from_secs(10));
    assert!(wait_gone(peer, Duration::from_secs(10)));
    let err = stderr_of(child);
    assert!(
        err.contains("parent process") && err.contains("is gone"),
        "{err}"
    );
    let _ = run(command(BIN, &tmp, &["clean"]), LIMIT);
}

#[test]
fn ctrl_c_removes_the_regions_and_stops_the_peer() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("shm-sigint");
    let (child, peer) = long_stream(BIN, &tmp, &["--wait", "hybrid"]);
    let parent = child.id();
    ctrl_c_and_expect_both_gone(child, peer, "Ctrl-C");
    assert!(
        regions_of(parent).is_empty(),
        "left {:?}",
        regions_of(parent)
    );
}

#[test]
fn clean_refuses_a_region_another_user_owns() {
    let _serial = one_at_a_time();
    let name = format!("ipc-showcase.shm.{}.frgn", u32::MAX - 11);
    let path = std::path::Path::new("/dev/shm").join(&name);
    std::fs::write(&path, b"").expect("make a region file");
    if std::os::unix::fs::chown(&path, Some(65534), Some(65534)).is_err() {
        let _ = std::fs::remove_file(&path);
        return; // not root: cannot make a foreign object to test with
    }
    let tmp = TempDir::new("shm-foreign");
    let out = run(command(BIN, &tmp, &["clean"]), LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let still_there = path.exists();
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(still_there, "clean removed another user's region");
    assert!(stdout.contains("belongs to uid 65534"), "{stdout}");
}
