//! `ipc-compare --quick` as a user runs it: a table sorted by median round
//! trip with a row for every entry of the one list, one JSON line per
//! result, results.json / results.csv / charts, and a run that goes on past
//! a row whose peer was killed.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-compare");

/// The rows a comparison of every entry at one size must have:
/// `method/variant mode wait` for every mode and wait each entry has.
fn expected_rows() -> BTreeSet<String> {
    let mut rows = BTreeSet::new();
    for e in ipc_showcase::entries() {
        for &mode in e.modes {
            for wait in ipc_harness::compare::waits(mode) {
                rows.insert(format!("{} {} {}", e.id(), mode, wait.as_str()));
            }
        }
    }
    rows
}

fn row_of(r: &serde_json::Value) -> String {
    format!(
        "{}/{} {} {}",
        r["method"].as_str().unwrap_or("?"),
        r["variant"].as_str().unwrap_or("?"),
        r["mode"].as_str().unwrap_or("?"),
        r["wait"].as_str().unwrap_or("?")
    )
}

#[test]
fn quick_compare_writes_the_table_and_the_files() {
    let tmp = TempDir::new("compare");
    let out_dir = tmp.0.join("out");
    let out = run(
        command(
            BIN,
            &tmp,
            &[
                "--quick",
                "--count",
                "300",
                "--out",
                out_dir.to_str().expect("utf-8 path"),
            ],
        ),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("machine:"), "{stdout}");
    // The table is sorted by p50 (the fifth column).
    let p50s: Vec<u64> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("method"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(4)?.parse().ok())
        .collect();
    assert_eq!(
        p50s.len(),
        expected_rows().len(),
        "expected a row per entry, mode and wait:\n{stdout}"
    );
    assert!(
        p50s.windows(2).all(|w| w[0] <= w[1]),
        "not sorted by p50: {p50s:?}"
    );

    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("results.json")).expect("results.json"),
    )
    .expect("JSON");
    let results = doc["results"].as_array().expect("results array");
    let rows: BTreeSet<String> = results.iter().map(row_of).collect();
    assert_eq!(rows, expected_rows(), "the rows are the list's entries");
    assert_eq!(results.len(), rows.len(), "each row once");
    for r in results {
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r["rtt_ns"]["p50"].as_u64().is_some_and(|p| p > 0), "{r}");
    }
    for chart in ["rtt_p50.svg", "rtt_p99.svg", "cpu_per_msg.svg"] {
        let svg = std::fs::read_to_string(out_dir.join(chart)).expect(chart);
        assert!(
            svg.contains("<svg") && svg.contains("shm/ring"),
            "{chart} is not a chart of the runs"
        );
    }
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).expect("results.csv");
    assert_eq!(csv.lines().count(), results.len() + 1, "{csv}");
    assert!(csv.starts_with("method,variant,mode,wait,size"));
    std::fs::remove_dir_all(&out_dir).expect("remove the output");
    assert!(
        tmp.leftovers().is_empty(),
        "left behind: {:?}",
        tmp.leftovers()
    );
}

#[test]
fn json_mode_prints_one_valid_line_per_result() {
    let tmp = TempDir::new("compare-json");
    let out_dir = tmp.0.join("out");
    let out = run(
        command(
            BIN,
            &tmp,
            &[
                "--quick",
                "--count",
                "200",
                "--only",
                "pipes/pipe",
                "--json",
                "--out",
                out_dir.to_str().expect("utf-8"),
            ],
        ),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 6, "pipe: two modes x three waits");
    for v in &lines {
        assert_eq!(v["schema"], 1);
        assert_eq!(v["variant"], "pipe");
        assert_eq!(v["count"], 200);
        assert!(v["error"].is_null(), "{v}");
    }
}

#[test]
fn a_row_whose_peer_is_killed_fails_and_the_rest_of_the_run_goes_on() {
    let tmp = TempDir::new("compare-kill");
    let out_dir = tmp.0.join("out");
    let child = command(
        BIN,
        &tmp,
        &[
            "--quick",
            "--only",
            "pipes/pipe",
            "--count",
            "100000",
            "--peer-timeout",
            "2",
            "--json",
            "--out",
            out_dir.to_str().expect("utf-8"),
        ],
    )
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("start ipc-compare");
    let mut child = child;
    // The first row is process mode, blocking: 100 000 round trips take
    // seconds, and its peer is the first child.
    let peer = wait_for_child(child.id(), Duration::from_secs(30));
    wait_for_thread(peer, "peer-signals", Duration::from_secs(10));
    signal(peer, libc::SIGKILL);
    let status = wait_bounded(&mut child, Duration::from_secs(240))
        .expect("ipc-compare still running 240 s after the kill");
    let out = child.wait_with_output().expect("output");
    assert!(status.success(), "{status:?}: {}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("results.json")).expect("results.json"),
    )
    .expect("JSON");
    let results = doc["results"].as_array().expect("results");
    assert_eq!(results.len(), 6, "pipe: two modes x three waits");
    let failed: Vec<&serde_json::Value> =
        results.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    let why = failed[0]["error"].as_str().unwrap_or_default();
    assert!(why.contains("peer") && why.contains("signal 9"), "{why}");
    assert_eq!(row_of(failed[0]), "pipes/pipe process block");
    assert!(results.iter().filter(|r| r["status"] == "ok").count() == 5);
    for file in [
        "results.csv",
        "rtt_p50.svg",
        "rtt_p99.svg",
        "cpu_per_msg.svg",
    ] {
        assert!(out_dir.join(file).exists(), "{file} was not written");
    }
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).expect("csv");
    assert!(csv.lines().any(|l| l.contains(",failed,")), "{csv}");
    std::fs::remove_dir_all(&out_dir).expect("remove the output");
}
