//! Every binary, given every numeric option at its extremes and nonsense
//! values, ends with a clear error and exit code 2 (never an abort, a panic
//! or a hang), before anything is allocated or started.

mod common;

use std::time::Duration;

use common::*;

const COMPARE: &str = env!("CARGO_BIN_EXE_ipc-compare");
const LIMIT: Duration = Duration::from_secs(60);

/// The binary of every method in the one list, beside `ipc-compare`.
fn method_binaries() -> Vec<String> {
    let dir = std::path::Path::new(COMPARE)
        .parent()
        .expect("the binaries' directory");
    let mut methods: Vec<&str> = ipc_showcase::entries().iter().map(|e| e.method).collect();
    methods.dedup();
    methods
        .into_iter()
        .map(|m| dir.join(format!("ipc-{m}")).to_string_lossy().into_owned())
        .collect()
}

/// Runs `bin args`; it must exit with code 2, say why on stderr and print
/// no panic.
fn refused(bin: &str, args: &[&str], tmp: &TempDir) {
    let out = run(command(bin, tmp, args), LIMIT);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{bin} {args:?}: {:?}\n{err}",
        out.status
    );
    assert!(err.contains("error"), "{bin} {args:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("abort"),
        "{bin} {args:?}: {err}"
    );
}

const HUGE: &str = "18446744073709551615";
const BEYOND: &str = "99999999999999999999999";

#[test]
fn every_method_refuses_numbers_at_their_extremes_and_nonsense() {
    let tmp = TempDir::new("bounds");
    for bin in method_binaries() {
        for sub in ["pingpong", "stream"] {
            for (opt, values) in [
                (
                    "--size",
                    &["1073741825", HUGE, BEYOND, "-1", "abc", "1e3"][..],
                ),
                ("--count", &["0", "1000000000001", HUGE, BEYOND, "-5", "x"]),
                ("--warmup", &["1000000000001", HUGE, "-1"]),
                ("--batch", &["0", "1000000000001", HUGE, "many"]),
                (
                    "--peer-timeout",
                    &["0", "-1", "3601", "1e300", "nan", "inf", "soon"],
                ),
                ("--spin-us", &["10000001", HUGE, "-1"]),
                (
                    "--pin",
                    &["0", "0,99999", "99999,0", &format!("{BEYOND},0"), "a,b"],
                ),
                ("--capacity", &["0", "-1", BEYOND, "big"]),
                ("--mode", &["teleport"]),
                ("--wait", &["forever"]),
                ("--verify", &["some"]),
            ] {
                for value in values {
                    refused(&bin, &[sub, opt, value], &tmp);
                }
            }
        }
        for (opt, value) in [
            ("--producers", "0"),
            ("--producers", "65"),
            ("--consumers", "0"),
            ("--consumers", BEYOND),
        ] {
            refused(&bin, &["stream", opt, value], &tmp);
            refused(&bin, &[opt, value], &tmp);
        }
        for (opt, value) in [
            ("--count", "0"),
            ("--interval-ms", "3600001"),
            ("--interval-ms", HUGE),
        ] {
            refused(&bin, &[opt, value], &tmp);
        }
    }
    assert!(tmp.leftovers().is_empty(), "{:?}", tmp.leftovers());
}

#[test]
fn a_size_or_capacity_beyond_what_the_method_allows_names_the_limit() {
    let tmp = TempDir::new("limits");
    let dir = std::path::Path::new(COMPARE).parent().expect("dir");
    let shm = dir.join("ipc-shm").to_string_lossy().into_owned();
    let pipes = dir.join("ipc-pipes").to_string_lossy().into_owned();
    let channels = dir.join("ipc-channels").to_string_lossy().into_owned();
    for (bin, args, says) in [
        (
            &shm,
            &["pingpong", "--size", "1073741820"][..],
            "largest message of shm/ring",
        ),
        (&shm, &["pingpong", "--capacity", "4294967296"], "2 GiB"),
        (
            &pipes,
            &["stream", "--capacity", HUGE],
            "largest pipe buffer",
        ),
        (
            &channels,
            &["stream", "--capacity", "2147483648"],
            "up front",
        ),
        (
            &shm,
            &["stream", "--producers", "2"],
            "one producer per channel",
        ),
        (
            &channels,
            &["stream", "--consumers", "2"],
            "one consumer per channel",
        ),
        (
            &channels,
            &["stream", "--producers", "2", "--size", "4"],
            "at least 8",
        ),
    ] {
        let out = run(command(bin, &tmp, args), LIMIT);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn compare_refuses_numbers_at_their_extremes() {
    let tmp = TempDir::new("bounds-compare");
    for args in [
        &["--sizes", "1073741825"][..],
        &["--sizes", "64,-1"],
        &["--count", "0"],
        &["--count", HUGE],
        &["--peer-timeout", "0"],
        &["--peer-timeout", "1e300"],
        &["--pin", "0"],
        &["--pin", "0,99999"],
    ] {
        refused(COMPARE, args, &tmp);
    }
}
