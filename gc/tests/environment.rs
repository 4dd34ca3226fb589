//! The environment as Go reads it: `GOGC`, `GODEBUG=gctrace=1`, and a malformed value
//! reported once. Each case runs this test binary again as a child with the variables set.

use std::process::Command;
use tricolor_gc::{Heap, Mutator};

const CHILD: &str = "TRICOLOR_GC_ENV_CHILD";

/// The child: the default heap, some garbage, two explicit collections; prints GOGC as read.
fn child() {
    let h = Heap::default_heap();
    let ty = h.register_type("node", 16, &[0, 8]).unwrap();
    let m = Mutator::attach(h);
    for _ in 0..300_000 {
        m.alloc(ty);
    }
    m.collect();
    m.collect();
    // A second heap reads the environment again: the complaint must not repeat.
    let _ = Heap::new(tricolor_gc::Config::from_env());
    println!(
        "gogc={} verify={} procs={}",
        h.stats().gc_percent,
        h.config().verify,
        h.config().procs
    );
}

fn run(vars: &[(&str, &str)]) -> (String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("GOGC")
        .env_remove("GODEBUG")
        .env_remove("TRICOLOR_GC_VERIFY")
        .env_remove("GOMAXPROCS");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn child_entry() {
    if std::env::var_os(CHILD).is_some() {
        child();
    }
}

#[test]
fn gogc_is_read_as_go_reads_it() {
    assert!(run(&[]).0.contains("gogc=100"));
    assert!(run(&[("GOGC", "250")]).0.contains("gogc=250"));
    assert!(run(&[("GOGC", "off")]).0.contains("gogc=-1"));
    let (out, err) = run(&[("GOGC", "50%")]);
    assert!(out.contains("gogc=100"), "malformed keeps the default");
    let complaint = "tricolor: GOGC=\"50%\" is malformed (accepted: off, or an integer percent); keeping the default (100)";
    assert_eq!(err.matches(complaint).count(), 1, "reported once:\n{err}");
    let (out, err) = run(&[("TRICOLOR_GC_VERIFY", "yes")]);
    let default = tricolor_gc::Config::default().verify;
    assert!(out.contains(&format!("verify={default}")), "{out}");
    assert!(err.contains("TRICOLOR_GC_VERIFY=\"yes\" is malformed"));
}

#[test]
fn gomaxprocs_is_read_as_go_reads_it() {
    let (out, _) = run(&[("GOMAXPROCS", "12")]);
    assert!(out.contains("procs=12"), "{out}");
    let (out, err) = run(&[("GOMAXPROCS", "0")]);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        out.contains(&format!("procs={cpus}")),
        "the default (the usable CPUs) is kept: {out}"
    );
    let complaint = "tricolor: GOMAXPROCS=\"0\" is malformed (accepted: an integer above 0); keeping the default (the CPUs this process may use)";
    assert_eq!(err.matches(complaint).count(), 1, "{err}");
}

#[test]
fn gctrace_prints_one_line_per_cycle_in_gos_format() {
    let (_, err) = run(&[("GODEBUG", "gctrace=1")]);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("gc ")).collect();
    assert!(lines.len() >= 2, "{err}");
    for (i, l) in lines.iter().enumerate() {
        assert!(l.starts_with(&format!("gc {} @", i + 1)), "{l}");
        for part in [
            "s ",
            "%: ",
            " ms clock, ",
            " ms cpu, ",
            " MB, ",
            " MB goal, ",
            " MB stacks, ",
            " MB globals, ",
            " P",
        ] {
            assert!(l.contains(part), "{l}: no {part:?}");
        }
    }
    let (_, quiet) = run(&[("GODEBUG", "gctrace=0")]);
    assert!(!quiet.lines().any(|l| l.starts_with("gc ")), "{quiet}");
}
