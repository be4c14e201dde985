//! `ipc-compare --quick` as a user runs it: a table sorted by median round
//! trip, one JSON line per result, and results.json / results.csv.

mod common;

use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ipc-compare");

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
    assert!(
        p50s.len() >= 12,
        "expected a row per variant, mode and wait:\n{stdout}"
    );
    assert!(
        p50s.windows(2).all(|w| w[0] <= w[1]),
        "not sorted by p50: {p50s:?}"
    );
    for method in [
        "pipes/pipe",
        "pipes/fifo",
        "shm/ring",
        "channels/mpsc",
        "coroutines/async",
    ] {
        assert!(
            stdout.contains(method),
            "{method} is missing from the table:\n{stdout}"
        );
    }

    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("results.json")).expect("results.json"),
    )
    .expect("JSON");
    let results = doc["results"].as_array().expect("results array");
    assert_eq!(results.len(), p50s.len());
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
