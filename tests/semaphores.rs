//! `ipc-semaphores` run as a user runs it: the JSON contract in both modes,
//! the demo with several producers and consumers (also with a consumer
//! killed mid-run), a peer or a parent killed mid-run, Ctrl-C, a message
//! over the largest slot, and nothing left in /dev/shm.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-semaphores");
const LIMIT: Duration = Duration::from_secs(120);

/// The objects in /dev/shm that process `pid` created.
fn buffers_of(pid: u32) -> Vec<String> {
    dev_shm_objects_of("semaphores", pid)
}

#[test]
fn both_modes_print_the_contract_json_and_leave_nothing() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("semaphores-json");
    for mode in ["process", "thread"] {
        for wait in ["block", "spin", "hybrid"] {
            for (command_name, size) in [("pingpong", "0"), ("pingpong", "4096"), ("stream", "64")]
            {
                let args = [
                    command_name,
                    "--mode",
                    mode,
                    "--wait",
                    wait,
                    "--size",
                    size,
                    "--count",
                    "300",
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
                    (Some("semaphores"), Some("posix"), Some(mode))
                );
                assert_eq!(v["size"].to_string(), size);
                if command_name == "pingpong" {
                    assert!(v["rtt_ns"]["p50"].as_u64().is_some_and(|p| p > 0), "{v}");
                } else {
                    assert!(v["msgs_per_s"].as_f64().is_some_and(|m| m > 0.0), "{v}");
                }
                assert!(
                    buffers_of(pid).is_empty(),
                    "{args:?} left {:?}",
                    buffers_of(pid)
                );
            }
        }
    }
    assert!(tmp.leftovers().is_empty(), "{:?}", tmp.leftovers());
}

#[test]
fn the_demo_counts_per_consumer_and_checks_every_task() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("semaphores-demo");
    for (mode, p, c) in [
        ("process", "3", "2"),
        ("thread", "4", "4"),
        ("process", "1", "4"),
    ] {
        let args = [
            "--mode",
            mode,
            "--producers",
            p,
            "--consumers",
            c,
            "--count",
            "6",
            "--interval-ms",
            "1",
        ];
        let (out, pid) = run_with_pid(command(BIN, &tmp, &args), LIMIT);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let consumers: usize = c.parse().expect("c");
        let counts: u64 = (0..consumers)
            .map(|j| {
                let prefix = format!("consumer {j}: ");
                let line = stdout
                    .lines()
                    .find(|l| l.starts_with(&prefix) && l.ends_with(" tasks"))
                    .unwrap_or_else(|| panic!("no count for consumer {j}:\n{stdout}"));
                line[prefix.len()..line.len() - " tasks".len()]
                    .parse::<u64>()
                    .expect("a count")
            })
            .sum();
        let tasks = 6 * p.parse::<u64>().expect("p");
        assert_eq!(counts, tasks, "{stdout}");
        let check =
            format!("check: {tasks} tasks from {p} producer(s), each received exactly once");
        assert!(stdout.contains(&check), "{stdout}");
        assert!(stdout.contains("0 reported lost"), "{stdout}");
        assert!(
            buffers_of(pid).is_empty(),
            "{args:?} left {:?}",
            buffers_of(pid)
        );
    }
}

#[test]
fn a_consumer_killed_mid_demo_leaves_the_others_to_finish_and_the_check_holds() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("semaphores-demo-kill");
    let args = [
        "--producers",
        "2",
        "--consumers",
        "3",
        "--count",
        "1500",
        "--interval-ms",
        "1",
    ];
    // Thousands of lines: into a file, so that a full pipe cannot stop it.
    let (out_path, err_path) = (tmp.0.join("stdout"), tmp.0.join("stderr"));
    let mut child = command(BIN, &tmp, &args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start the demo");
    let parent = child.id();
    let started = Instant::now();
    while children(parent).len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the consumers did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let victim = children(parent)[1];
    signal(victim, libc::SIGKILL);
    let status = wait_bounded(&mut child, LIMIT).expect("the demo did not finish");
    let stdout = std::fs::read_to_string(&out_path).expect("stdout");
    let err = std::fs::read_to_string(&err_path).expect("stderr");
    assert_eq!(
        status.code(),
        Some(3),
        "a consumer died: exit code 3\n{err}"
    );
    assert!(
        err.contains("the other consumers finished the run"),
        "{err}"
    );
    let died = format!("then its process (pid {victim}) was killed by signal 9");
    assert!(stdout.contains(&died), "{stdout}");
    let lost = stdout.lines().filter(|l| l.starts_with("lost: ")).count();
    assert!(lost <= 1, "{lost} lost for one death:\n{stdout}");
    assert!(
        stdout.contains(&format!("{lost} reported lost; none missing or duplicated")),
        "{stdout}"
    );
    assert!(
        buffers_of(parent).is_empty(),
        "left {:?}",
        buffers_of(parent)
    );
}

#[test]
fn a_message_over_the_largest_slot_is_refused_naming_the_limit() {
    let tmp = TempDir::new("semaphores-size");
    let out = run(
        command(BIN, &tmp, &["pingpong", "--size", "16777217"]),
        LIMIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("16 MiB"), "{}", stderr(&out));
}

#[test]
fn a_killed_peer_ends_the_run_with_exit_code_3_and_nothing_is_left() {
    let _serial = one_at_a_time();
    for wait in ["block", "spin"] {
        let tmp = TempDir::new("semaphores-peerkill");
        let (child, peer) = long_stream(BIN, &tmp, &["--wait", wait]);
        let parent = child.id();
        kill_the_peer_and_expect_exit_code_3(child, peer, wait);
        assert!(
            buffers_of(parent).is_empty(),
            "{wait}: left {:?}",
            buffers_of(parent)
        );
    }
}

#[test]
fn a_killed_parents_buffers_go_at_the_next_start_or_clean() {
    let _serial = one_at_a_time();
    for next in [
        &["clean"][..],
        &["pingpong", "--count", "10", "--warmup", "0"],
    ] {
        let tmp = TempDir::new("semaphores-parentkill");
        let (child, peer) = long_stream(BIN, &tmp, &[]);
        let parent = child.id();
        assert!(!buffers_of(parent).is_empty(), "the run has a buffer");
        kill_the_parent_and_expect_the_peer_gone(child, peer, "semaphores");
        assert!(!buffers_of(parent).is_empty(), "nobody removed them yet");
        let out = run(command(BIN, &tmp, next), LIMIT);
        assert!(out.status.success(), "{next:?}: {}", stderr(&out));
        assert!(
            buffers_of(parent).is_empty(),
            "{next:?} left {:?}",
            buffers_of(parent)
        );
    }
}

#[test]
fn ctrl_c_removes_everything_and_stops_the_peer() {
    let _serial = one_at_a_time();
    let tmp = TempDir::new("semaphores-sigint");
    let (child, peer) = long_stream(BIN, &tmp, &["--wait", "hybrid"]);
    let parent = child.id();
    ctrl_c_and_expect_both_gone(child, peer, "Ctrl-C");
    assert!(
        buffers_of(parent).is_empty(),
        "left {:?}",
        buffers_of(parent)
    );
}
