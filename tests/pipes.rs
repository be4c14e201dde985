//! `ipc-pipes` run as a user runs it: the JSON contract, the demo, a peer
//! killed mid-run, a parent killed mid-run, Ctrl-C, `clean`, usage errors.

mod common;

use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-pipes");
const LIMIT: Duration = Duration::from_secs(60);

fn variants() -> [&'static str; 2] {
    ["pipe", "fifo"]
}

#[test]
fn pingpong_and_stream_print_the_contract_json() {
    for variant in variants() {
        for mode in ["process", "thread"] {
            let tmp = TempDir::new("json");
            let out = run(
                command(
                    BIN,
                    &tmp,
                    &[
                        "pingpong",
                        "--mode",
                        mode,
                        "--variant",
                        variant,
                        "--count",
                        "500",
                        "--json",
                    ],
                ),
                LIMIT,
            );
            assert!(out.status.success(), "{variant} {mode}: {}", stderr(&out));
            let v = json_line(&out);
            assert_eq!(v["schema"], 1);
            assert_eq!(v["method"], "pipes");
            assert_eq!(v["variant"], variant);
            assert_eq!(v["mode"], mode);
            assert_eq!(v["wait"], "block");
            assert_eq!(v["size"], 64);
            assert_eq!(v["count"], 500);
            assert_eq!(v["batch"], 1);
            assert!(v["pin"].is_null());
            let rtt = &v["rtt_ns"];
            let p: Vec<u64> = ["min", "p50", "p90", "p99", "p999", "max"]
                .iter()
                .map(|k| {
                    rtt[k]
                        .as_u64()
                        .unwrap_or_else(|| panic!("rtt_ns.{k} missing"))
                })
                .collect();
            assert!(
                p.windows(2).all(|w| w[0] <= w[1]),
                "percentiles out of order: {p:?}"
            );
            assert!(p[0] > 0, "a round trip cannot take 0 ns");
            assert!(v["msgs_per_s"].as_f64().is_some_and(|x| x > 0.0));
            assert!(v["cpu_ns_per_msg"].as_f64().is_some_and(|x| x > 0.0));

            let out = run(
                command(
                    BIN,
                    &tmp,
                    &[
                        "stream",
                        "--mode",
                        mode,
                        "--variant",
                        variant,
                        "--size",
                        "1024",
                        "--count",
                        "2000",
                        "--json",
                    ],
                ),
                LIMIT,
            );
            assert!(out.status.success(), "{variant} {mode}: {}", stderr(&out));
            let v = json_line(&out);
            assert_eq!(v["size"], 1024);
            assert_eq!(v["count"], 2000);
            assert_eq!(v["verify"], "full");
            assert!(v["bytes_per_s"].as_f64().is_some_and(|x| x > 0.0));
            assert!(
                tmp.leftovers().is_empty(),
                "left behind: {:?}",
                tmp.leftovers()
            );
        }
    }
}

#[test]
fn every_wait_and_odd_sizes_run() {
    let tmp = TempDir::new("waits");
    for wait in ["spin", "hybrid"] {
        for size in ["0", "7", "70000"] {
            let out = run(
                command(
                    BIN,
                    &tmp,
                    &[
                        "pingpong", "--wait", wait, "--size", size, "--count", "200", "--warmup",
                        "10", "--json",
                    ],
                ),
                LIMIT,
            );
            assert!(out.status.success(), "{wait} {size}: {}", stderr(&out));
            assert_eq!(json_line(&out)["size"].to_string(), size);
        }
    }
}

#[test]
fn the_demo_shows_every_task_in_order() {
    for variant in variants() {
        let tmp = TempDir::new("demo");
        let out = run(
            command(
                BIN,
                &tmp,
                &["--variant", variant, "--count", "4", "--interval-ms", "1"],
            ),
            LIMIT,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut from = 0;
        for i in 0..4 {
            for side in ["producer: sent", "consumer: got"] {
                let line = format!("{side} \"task {i}\"");
                let at = stdout[from..]
                    .find(&line)
                    .unwrap_or_else(|| panic!("no {line:?} in order in:\n{stdout}"));
                from += at + line.len();
            }
        }
        assert!(stdout.contains("4 tasks sent and acknowledged"), "{stdout}");
        assert!(
            tmp.leftovers().is_empty(),
            "left behind: {:?}",
            tmp.leftovers()
        );
    }
}

fn long_pipe_stream(tmp: &TempDir, variant: &str) -> (std::process::Child, u32) {
    long_stream(BIN, tmp, &["--variant", variant])
}

#[test]
fn a_killed_peer_ends_the_run_with_exit_code_3_and_says_so() {
    for variant in variants() {
        let tmp = TempDir::new("peerkill");
        let (child, peer) = long_pipe_stream(&tmp, variant);
        kill_the_peer_and_expect_exit_code_3(child, peer, variant);
        assert!(
            tmp.leftovers().is_empty(),
            "{variant}: left behind: {:?}",
            tmp.leftovers()
        );
    }
}

#[test]
fn a_killed_parent_leaves_no_orphan_and_clean_removes_its_fifos() {
    for variant in variants() {
        let tmp = TempDir::new("parentkill");
        let (child, peer) = long_pipe_stream(&tmp, variant);
        kill_the_parent_and_expect_the_peer_gone(child, peer, variant);
        if variant == "fifo" {
            assert!(
                !tmp.leftovers().is_empty(),
                "a SIGKILLed creator cannot clean up; expected its FIFO directory"
            );
        }
        let out = run(command(BIN, &tmp, &["clean"]), LIMIT);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            tmp.leftovers().is_empty(),
            "{variant}: clean left {:?}",
            tmp.leftovers()
        );
    }
}

#[test]
fn ctrl_c_removes_everything_and_stops_the_peer() {
    for variant in variants() {
        let tmp = TempDir::new("sigint");
        let (child, peer) = long_pipe_stream(&tmp, variant);
        ctrl_c_and_expect_both_gone(child, peer, variant);
        assert!(
            tmp.leftovers().is_empty(),
            "{variant}: left behind: {:?}",
            tmp.leftovers()
        );
    }
}

#[test]
fn clean_removes_a_dead_runs_directory_and_refuses_a_foreign_one() {
    let tmp = TempDir::new("clean");
    let dead = tmp
        .0
        .join(format!("ipc-showcase.pipes.{}.zzzz", u32::MAX - 7));
    std::fs::create_dir(&dead).expect("make a leftover");
    let foreign = tmp
        .0
        .join(format!("ipc-showcase.pipes.{}.yyyy", u32::MAX - 8));
    std::fs::create_dir(&foreign).expect("make a foreign leftover");
    let chowned = std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).is_ok();
    let out = run(command(BIN, &tmp, &["clean"]), LIMIT);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!dead.exists(), "the dead run's directory is still there");
    assert!(stdout.contains("removed"), "{stdout}");
    if chowned {
        assert!(foreign.exists(), "clean removed another user's directory");
        assert!(stdout.contains("belongs to uid 65534"), "{stdout}");
    }
}

#[test]
fn usage_errors_exit_2_with_a_reason() {
    let tmp = TempDir::new("usage");
    for (args, says) in [
        (&["pingpong", "--size", "not-a-number"][..], "invalid value"),
        (
            &["pingpong", "--mode", "coroutine"][..],
            "does not support coroutine mode",
        ),
        (
            &["pingpong", "--variant", "carrier-pigeon"][..],
            "unknown variant",
        ),
        (&["pingpong", "--wait", "resume"][..], "coroutine hand-off"),
        (&["pingpong", "--pin", "0"][..], "A,B"),
        (&["--peer", "{not json"][..], "bad peer specification"),
    ] {
        let out = run(command(BIN, &tmp, args), LIMIT);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    let out = run(command(BIN, &tmp, &["--help"]), LIMIT);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("pingpong"));
}
