//! `ipc-signals` run as a user runs it: the JSON contract for both variants
//! in both modes, a peer or a parent killed mid-run, Ctrl-C, the largest
//! message, and nothing left in /dev/shm.

mod common;

use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-signals");
const LIMIT: Duration = Duration::from_secs(120);

/// The objects in /dev/shm that process `pid` created.
fn regions_of(pid: u32) -> Vec<String> {
    dev_shm_objects_of("signals", pid)
}

#[test]
fn both_variants_in_both_modes_print_the_contract_json_and_leave_nothing() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("signals-json");
    for variant in ["rt", "doorbell"] {
        for mode in ["process", "thread"] {
            for wait in ["block", "spin", "hybrid"] {
                for size in ["0", "8", "4096"] {
                    let args = [
                        "pingpong",
                        "--variant",
                        variant,
                        "--mode",
                        mode,
                        "--wait",
                        wait,
                        "--size",
                        size,
                        "--count",
                        "200",
                        "--warmup",
                        "20",
                        "--json",
                    ];
                    let (out, pid) = run_with_pid(command(BIN, &tmp, &args), LIMIT);
                    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
                    let v = json_line(&out);
                    assert_eq!(
                        (
                            v["method"].as_str(),
                            v["variant"].as_str(),
                            v["mode"].as_str()
                        ),
                        (Some("signals"), Some(variant), Some(mode))
                    );
                    assert_eq!(v["size"].to_string(), size);
                    assert!(v["rtt_ns"]["p50"].as_u64().is_some_and(|p| p > 0));
                    assert!(
                        regions_of(pid).is_empty(),
                        "{args:?} left {:?}",
                        regions_of(pid)
                    );
                }
            }
        }
        let out = run(
            command(
                BIN,
                &tmp,
                &[
                    "stream",
                    "--variant",
                    variant,
                    "--size",
                    "64",
                    "--count",
                    "3000",
                    "--json",
                ],
            ),
            LIMIT,
        );
        assert!(out.status.success(), "{variant} stream: {}", stderr(&out));
        assert_eq!(json_line(&out)["verify"], "full");
    }
}

#[test]
fn the_demo_shows_every_task() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("signals-demo");
    for variant in ["rt", "doorbell"] {
        let out = run(
            command(
                BIN,
                &tmp,
                &["--variant", variant, "--count", "3", "--interval-ms", "1"],
            ),
            LIMIT,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("consumer: got \"task 2\""), "{stdout}");
        assert!(stdout.contains("3 tasks sent and acknowledged"), "{stdout}");
    }
}

#[test]
fn a_message_above_the_rt_maximum_is_refused_naming_the_limit() {
    let tmp = TempDir::new("signals-size");
    let out = run(command(BIN, &tmp, &["pingpong", "--size", "65537"]), LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("64 KiB"), "{}", stderr(&out));
    let out = run(
        command(
            BIN,
            &tmp,
            &[
                "pingpong",
                "--variant",
                "doorbell",
                "--size",
                "65537",
                "--count",
                "50",
            ],
        ),
        LIMIT,
    );
    assert!(
        out.status.success(),
        "the doorbell carries the ring's sizes: {}",
        stderr(&out)
    );
}

#[test]
fn a_killed_peer_ends_the_run_with_exit_code_3_and_nothing_is_left() {
    let _serial = one_at_a_time();
    for variant in ["rt", "doorbell"] {
        for wait in ["block", "spin"] {
            let tmp = TempDir::new("signals-peerkill");
            let (child, peer) = long_stream(BIN, &tmp, &["--variant", variant, "--wait", wait]);
            let parent = child.id();
            kill_the_peer_and_expect_exit_code_3(child, peer, &format!("{variant} {wait}"));
            assert!(
                regions_of(parent).is_empty(),
                "{variant}: left {:?}",
                regions_of(parent)
            );
        }
    }
}

#[test]
fn a_killed_parent_takes_its_peer_along_and_clean_removes_the_doorbells_region() {
    let _serial = one_at_a_time();
    for variant in ["rt", "doorbell"] {
        let tmp = TempDir::new("signals-parentkill");
        let (child, peer) = long_stream(BIN, &tmp, &["--variant", variant]);
        let parent = child.id();
        kill_the_parent_and_expect_the_peer_gone(child, peer, variant);
        let out = run(command(BIN, &tmp, &["clean"]), LIMIT);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            regions_of(parent).is_empty(),
            "{variant}: clean left {:?}",
            regions_of(parent)
        );
    }
}

#[test]
fn ctrl_c_removes_everything_and_stops_the_peer() {
    let _serial = one_at_a_time();
    for variant in ["rt", "doorbell"] {
        let tmp = TempDir::new("signals-sigint");
        let (child, peer) = long_stream(BIN, &tmp, &["--variant", variant, "--wait", "hybrid"]);
        let parent = child.id();
        ctrl_c_and_expect_both_gone(child, peer, variant);
        assert!(
            regions_of(parent).is_empty(),
            "{variant}: left {:?}",
            regions_of(parent)
        );
    }
}
