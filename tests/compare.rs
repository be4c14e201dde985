//! `ipc-compare` as a user runs it: a table sorted by median round trip
//! with a row for every entry of the one list and the references beside
//! them, one JSON line per result, results.json (with the machine and the
//! command) / results.csv / SVG charts an XML parser accepts / report.html
//! holding every row and every chart, the same rows run after run, `diff`,
//! and a run that goes on past a row whose peer was killed.

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

/// The references that stand beside some entry of the list at `size`.
fn expected_references(size: usize) -> BTreeSet<String> {
    let ids: Vec<String> = ipc_showcase::entries().iter().map(|e| e.id()).collect();
    ipc_showcase::references::references()
        .into_iter()
        .filter(|r| size <= r.max_size && r.beside.iter().any(|b| ids.iter().any(|i| i == b)))
        .map(|r| r.name.to_owned())
        .collect()
}

fn methods(results: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    results.iter().filter(|r| r["kind"] == "method").collect()
}

fn references(results: &[serde_json::Value]) -> BTreeSet<String> {
    results
        .iter()
        .filter(|r| r["kind"] == "reference")
        .map(|r| r["variant"].as_str().unwrap_or("?").to_owned())
        .collect()
}

fn results_of(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).expect("results.json"))
        .expect("JSON")
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
        .filter_map(|l| l.split_whitespace().rev().nth(7)?.parse().ok())
        .collect();
    let doc = results_of(&out_dir);
    let results = doc["results"].as_array().expect("results array");
    assert_eq!(
        p50s.len(),
        results.len(),
        "a table row per result:\n{stdout}"
    );
    assert!(
        p50s.windows(2).all(|w| w[0] <= w[1]),
        "not sorted by p50: {p50s:?}"
    );

    // results.json: the machine, the command line, one row per result.
    for field in ["cpu", "kernel", "rustc", "date"] {
        assert!(
            doc["machine"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "machine.{field}: {}",
            doc["machine"]
        );
    }
    assert!(doc["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(
        doc["command"]
            .as_str()
            .is_some_and(|c| c.starts_with("ipc-compare --quick")),
        "{}",
        doc["command"]
    );
    let rows: BTreeSet<String> = methods(results).into_iter().map(row_of).collect();
    assert_eq!(rows, expected_rows(), "the rows are the list's entries");
    assert_eq!(
        references(results),
        expected_references(64),
        "every reference beside an entry at 64 B"
    );
    for r in results {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["size"], 64, "--quick is a first look at 64 B: {r}");
        assert!(r["rtt_ns"]["p50"].as_u64().is_some_and(|p| p > 0), "{r}");
    }
    // Every row that waits as its reference does has its ratio.
    let pipe_block = results
        .iter()
        .find(|r| row_of(r) == "pipes/pipe process block")
        .expect("the pipe's blocking row");
    assert_eq!(pipe_block["reference"], "raw-pipe");
    assert!(
        pipe_block["x_reference"].as_f64().is_some_and(|x| x > 0.0),
        "{pipe_block}"
    );

    // The chart: SVG that an XML parser accepts, naming the runs.
    let svg = std::fs::read_to_string(out_dir.join("rtt_64.svg")).expect("rtt_64.svg");
    let xml = roxmltree::Document::parse(&svg).expect("rtt_64.svg is well-formed XML");
    assert_eq!(xml.root_element().tag_name().name(), "svg");
    assert!(
        svg.contains("shm/ring") && svg.contains("[ref] raw-pipe"),
        "{svg}"
    );

    // The page: a table row for every result and every chart inline.
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("report.html");
    for r in results {
        let key = format!(
            "{}/{} {} {} {}",
            r["method"].as_str().unwrap_or("?"),
            r["variant"].as_str().unwrap_or("?"),
            r["mode"].as_str().unwrap_or("?"),
            r["wait"].as_str().unwrap_or("?"),
            r["size"]
        );
        assert!(
            html.contains(&format!("data-row=\"{key}\"")),
            "no row {key} on the page"
        );
    }
    assert_eq!(html.matches("<tr class=").count(), results.len());
    assert!(html.contains("<figure id=\"rtt_64.svg\"") && html.matches("<svg").count() == 1);
    assert!(!html.contains("<script"), "the page needs no script");
    for question in [
        "Are processes that talk through the kernel slow?",
        "Is shared memory between threads much faster?",
        "Does a coroutine switch cost almost nothing?",
    ] {
        let at = html
            .find(question)
            .unwrap_or_else(|| panic!("no answer to {question}"));
        let answer: String = html[at..].chars().take(200).collect();
        assert!(
            !answer.contains("Not measured"),
            "{question} went unanswered"
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
                "--budget-ms",
                "600000",
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
    let (methods, refs): (Vec<_>, Vec<_>) = lines.iter().partition(|v| v["kind"] == "method");
    assert_eq!(methods.len(), 6, "pipe: two modes x three waits");
    for v in &methods {
        assert_eq!(v["schema"], 1);
        assert_eq!(v["variant"], "pipe");
        assert_eq!(v["count"], 200);
        assert!(v["error"].is_null(), "{v}");
    }
    assert_eq!(refs.len(), 1, "the raw pipe beside it: {refs:?}");
    assert_eq!(refs[0]["variant"], "raw-pipe");
    // The reference is measured before the rows it stands beside.
    assert_eq!(lines[0]["kind"], "reference");
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
            "--budget-ms",
            "600000",
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
    // seconds, and its peer is the first child that is a peer (the raw pipe
    // measured before it forks one that is not).
    let peer = wait_for_peer(child.id(), Duration::from_secs(30));
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
    let results: Vec<serde_json::Value> = methods(results).into_iter().cloned().collect();
    assert_eq!(results.len(), 6, "pipe: two modes x three waits");
    let failed: Vec<&serde_json::Value> =
        results.iter().filter(|r| r["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    let why = failed[0]["error"].as_str().unwrap_or_default();
    assert!(why.contains("peer") && why.contains("signal 9"), "{why}");
    assert_eq!(row_of(failed[0]), "pipes/pipe process block");
    assert!(results.iter().filter(|r| r["status"] == "ok").count() == 5);
    for file in ["results.csv", "rtt_64.svg", "report.html"] {
        assert!(out_dir.join(file).exists(), "{file} was not written");
    }
    let csv = std::fs::read_to_string(out_dir.join("results.csv")).expect("csv");
    assert!(csv.lines().any(|l| l.contains(",failed,")), "{csv}");
    let html = std::fs::read_to_string(out_dir.join("report.html")).expect("report.html");
    assert_eq!(
        html.matches("<tr class=\"failed\"").count(),
        1,
        "the failed row on the page"
    );
    assert!(html.contains("signal 9"), "its reason on the page");
    std::fs::remove_dir_all(&out_dir).expect("remove the output");
}

#[test]
fn a_sweep_skips_sizes_above_a_methods_largest_and_twice_gives_the_same_rows() {
    let tmp = TempDir::new("compare-sweep");
    let mut keys = Vec::new();
    for round in ["a", "b"] {
        let out_dir = tmp.0.join(round);
        let out = run(
            command(
                BIN,
                &tmp,
                &[
                    "--sizes",
                    "8,1048576",
                    "--only",
                    "signals/rt",
                    "--count",
                    "100",
                    "--out",
                    out_dir.to_str().expect("utf-8"),
                ],
            ),
            Duration::from_secs(300),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let doc = results_of(&out_dir);
        let results = doc["results"].as_array().expect("results");
        let mut rows: Vec<String> = results
            .iter()
            .map(|r| format!("{} {} {}", row_of(r), r["size"], r["kind"]))
            .collect();
        rows.sort();
        // signals/rt carries at most 64 KiB: its 1 MiB rows are skipped,
        // said so, and nothing runs for them.
        for r in methods(results) {
            match r["size"].as_u64() {
                Some(8) => assert_eq!(r["status"], "ok", "{r}"),
                _ => {
                    assert_eq!(r["status"], "skipped", "{r}");
                    assert!(
                        r["error"].as_str().is_some_and(|e| e.contains("largest")),
                        "{r}"
                    );
                }
            }
        }
        // Two sizes: the chart of latency against size, and one per size
        // that ran, each a file and inline on the page.
        let html = std::fs::read_to_string(out_dir.join("report.html")).expect("report.html");
        for chart in ["rtt_by_size.svg", "rtt_8.svg", "rtt_1048576.svg"] {
            let svg = std::fs::read_to_string(out_dir.join(chart)).expect(chart);
            roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{chart}: {e}"));
            assert!(
                html.contains(&format!("<figure id=\"{chart}\"")),
                "{chart} not inline"
            );
        }
        assert_eq!(html.matches("<svg").count(), 3, "three charts inline");
        keys.push(rows);
    }
    assert_eq!(keys[0], keys[1], "two runs, two sets of rows");

    // diff: the two runs compared row by row.
    let (a, b) = (tmp.0.join("a/results.json"), tmp.0.join("b/results.json"));
    let out = run(
        command(
            BIN,
            &tmp,
            &[
                "diff",
                a.to_str().expect("utf-8"),
                b.to_str().expect("utf-8"),
            ],
        ),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rows moved by more than 10%"), "{text}");
    assert!(!text.contains("only in"), "the same rows: {text}");
    let out = run(
        command(
            BIN,
            &tmp,
            &["diff", a.to_str().expect("utf-8"), "/nonexistent.json"],
        ),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot read /nonexistent.json"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pinned_to_one_cpu_the_spinning_references_are_skipped_and_the_rows_run() {
    let tmp = TempDir::new("compare-pinned");
    let out_dir = tmp.0.join("out");
    let out = run(
        command(
            BIN,
            &tmp,
            &[
                "--quick",
                "--pin",
                "0,0",
                "--only",
                "shm/ring",
                "--count",
                "300",
                "--out",
                out_dir.to_str().expect("utf-8"),
            ],
        ),
        Duration::from_secs(300),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = results_of(&out_dir);
    let results = doc["results"].as_array().expect("results");
    assert_eq!(doc["pin"], serde_json::json!([0, 0]));
    for r in results {
        if r["kind"] == "reference" {
            assert_eq!(r["status"], "skipped", "{r}");
            assert!(
                r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("pinned CPU")),
                "{r}"
            );
        } else {
            assert_eq!(r["status"], "ok", "{r}");
            assert_eq!(r["pin"], serde_json::json!([0, 0]), "{r}");
        }
    }
    assert_eq!(
        references(results),
        BTreeSet::from(["slot-ring".to_owned()]),
        "the slot ring (the atomic floor stands beside 8 B only)"
    );
}
