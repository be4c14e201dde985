//! `ipc-compare diff OLD.json NEW.json`: which rows moved between two runs
//! (two machines, two versions), by the ratio of their medians.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{HarnessError, Result};
use crate::report::human_ns;

/// A median that moved by less than this factor either way did not move.
const STILL: f64 = 1.10;

/// The rows of a results.json, by key, with their medians (`None`: the row
/// did not run), and the machine in one line.
fn load(path: &Path) -> Result<(String, BTreeMap<String, Option<u64>>)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HarnessError::Usage(format!("cannot read {}: {e}", path.display())))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| HarnessError::Usage(format!("{} is not JSON: {e}", path.display())))?;
    let results = doc["results"].as_array().ok_or_else(|| {
        HarnessError::Usage(format!(
            "{} has no \"results\": is it an ipc-compare results.json?",
            path.display()
        ))
    })?;
    let machine = match &doc["machine"] {
        serde_json::Value::String(s) => s.clone(),
        m => format!(
            "{}, {} CPUs, Linux {}, {}, {}",
            m["cpu"].as_str().unwrap_or("?"),
            m["cores"],
            m["kernel"].as_str().unwrap_or("?"),
            m["rustc"].as_str().unwrap_or("?"),
            m["date"].as_str().unwrap_or("?")
        ),
    };
    let mut rows = BTreeMap::new();
    for r in results {
        let key = format!(
            "{}/{} {} {} {} B",
            r["method"].as_str().unwrap_or("?"),
            r["variant"].as_str().unwrap_or("?"),
            r["mode"].as_str().unwrap_or("?"),
            r["wait"].as_str().unwrap_or("?"),
            r["size"]
        );
        rows.insert(key, r["rtt_ns"]["p50"].as_u64());
    }
    Ok((machine, rows))
}

/// The report of what moved between `old` and `new`, as text.
pub(super) fn report(old: &Path, new: &Path) -> Result<String> {
    let (old_machine, old_rows) = load(old)?;
    let (new_machine, new_rows) = load(new)?;
    let mut out = format!(
        "old: {} ({old_machine})\nnew: {} ({new_machine})\n\n",
        old.display(),
        new.display()
    );
    let mut moved = Vec::new();
    let mut still = 0;
    let mut only_old = Vec::new();
    let mut not_run = Vec::new();
    for (key, before) in &old_rows {
        match (before, new_rows.get(key)) {
            (_, None) => only_old.push(key.clone()),
            (Some(a), Some(Some(b))) => {
                let ratio = *b as f64 / (*a).max(1) as f64;
                if !(1.0 / STILL..=STILL).contains(&ratio) {
                    moved.push((key.clone(), *a, *b, ratio));
                } else {
                    still += 1;
                }
            }
            _ => not_run.push(key.clone()),
        }
    }
    let only_new: Vec<&String> = new_rows
        .keys()
        .filter(|k| !old_rows.contains_key(*k))
        .collect();
    moved.sort_by(|a, b| b.3.ln().abs().total_cmp(&a.3.ln().abs()));
    let _ = std::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "{} rows moved by more than {:.0}% (new median / old), {still} stayed within it\n",
            moved.len(),
            (STILL - 1.0) * 100.0
        ),
    );
    for (key, a, b, ratio) in &moved {
        out.push_str(&format!(
            "  {:<48} {:>10} -> {:>10}  {:>6.2}x {}\n",
            key,
            human_ns(*a as f64),
            human_ns(*b as f64),
            ratio,
            if *ratio > 1.0 { "slower" } else { "faster" }
        ));
    }
    for (what, keys) in [
        ("only in the old run", only_old.iter().collect::<Vec<_>>()),
        ("only in the new run", only_new),
        ("did not run in one of them", not_run.iter().collect()),
    ] {
        if !keys.is_empty() {
            out.push_str(&format!("{} rows {what}:\n", keys.len()));
            for k in keys {
                out.push_str(&format!("  {k}\n"));
            }
        }
    }
    Ok(out)
}

/// Prints the report.
pub(super) fn run(old: &Path, new: &Path) -> Result<()> {
    print!("{}", report(old, new)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, rows: &[(&str, u64)]) -> std::path::PathBuf {
        let results: Vec<serde_json::Value> = rows
            .iter()
            .map(|(v, p50)| {
                serde_json::json!({"method": "pipes", "variant": v, "mode": "process",
                    "wait": "block", "size": 64, "rtt_ns": {"p50": p50}})
            })
            .collect();
        let doc = serde_json::json!({"machine": {"cpu": "X", "cores": 2, "kernel": "6",
            "rustc": "r", "date": "d"}, "results": results});
        let path = dir.join(name);
        std::fs::write(&path, doc.to_string()).expect("write");
        path
    }

    #[test]
    fn rows_that_moved_are_named_with_their_ratio_and_the_rest_counted() {
        let dir = std::env::temp_dir().join(format!("ipc-diff-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let old = write(
            &dir,
            "old.json",
            &[("pipe", 1000), ("fifo", 1000), ("gone", 5)],
        );
        let new = write(
            &dir,
            "new.json",
            &[("pipe", 2500), ("fifo", 1050), ("new", 7)],
        );
        let text = report(&old, &new).expect("report");
        std::fs::remove_dir_all(&dir).expect("remove");
        assert!(text.contains("1 rows moved"), "{text}");
        assert!(text.contains("pipes/pipe process block 64 B"), "{text}");
        assert!(text.contains("2.50x slower"), "{text}");
        assert!(text.contains("1 stayed within"), "{text}");
        assert!(
            text.contains("only in the old run:\n  pipes/gone"),
            "{text}"
        );
        assert!(text.contains("only in the new run:\n  pipes/new"), "{text}");
    }

    #[test]
    fn a_file_that_is_not_results_is_a_usage_error() {
        let missing = report(
            Path::new("/nonexistent/a.json"),
            Path::new("/nonexistent/b.json"),
        );
        assert!(matches!(missing, Err(HarnessError::Usage(_))));
    }
}
