//! Real programs under `LD_PRELOAD=libtricolor_malloc.so`, each compared with its own run on
//! the system allocator: the output must be identical. The programs (defined in
//! `tricolor_benches::programs`, which the benchmark shares) come with Debian or are installed
//! by `.ci/run`; a missing one fails its test naming the package to install.

use std::process::Command;
use tricolor_benches::programs::{self, Program};
use tricolor_tests::{assert_ok, libraries, run, scratch};

fn same_output(p: &Program) {
    assert!(
        p.installed(),
        "{} is not installed: apt-get install {} (.ci/run does)",
        p.needs.0,
        p.needs.1
    );
    libraries();
    let plain = run(p.command(&scratch(&format!("{}-system", p.name))), false);
    assert_ok(&format!("{} (system malloc)", p.name), &plain);
    let ours = run(p.command(&scratch(&format!("{}-tricolor", p.name))), true);
    assert_ok(&format!("{} (Tricolor)", p.name), &ours);
    assert!(
        plain.stdout.len() > 20,
        "{}: printed too little to compare",
        p.name
    );
    assert!(
        plain.stdout == ours.stdout,
        "{}: output differs under Tricolor:\n--- system\n{}\n--- tricolor\n{}",
        p.name,
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&ours.stdout)
    );
}

fn program(name: &str) -> Program {
    programs::ALL.into_iter().find(|p| p.name == name).unwrap()
}

#[test]
fn python_workload() {
    same_output(&program("python"));
}

#[test]
fn sqlite_builds_and_queries_150k_rows() {
    same_output(&program("sqlite"));
}

#[test]
fn git_builds_a_repository() {
    same_output(&program("git"));
}

#[test]
fn multithreaded_xz() {
    same_output(&program("xz"));
}

#[test]
fn multithreaded_sort() {
    same_output(&program("sort"));
}

#[test]
fn the_preload_library_is_mapped_into_programs() {
    // Without this, "same output" could mean the preload silently failed to load.
    let mut c = Command::new("sh");
    c.arg("-c").arg("cat /proc/self/maps");
    let o = run(c, true);
    assert_ok("cat /proc/self/maps", &o);
    let maps = String::from_utf8_lossy(&o.stdout);
    assert!(
        maps.contains("libtricolor_malloc.so"),
        "not loaded:\n{maps}"
    );
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("ld.so"),
        "loader complained"
    );
}

/// `go tool pprof -top` of the heap profile an unchanged program wrote at exit under the
/// preload library (`TRICOLOR_PROFILE`): the profile must read, and name the program's own
/// functions (those starting with `prefix`).
fn profile_names_functions(name: &str, prefix: &str) {
    let p = program(name);
    assert!(p.installed(), "{} is not installed", p.needs.0);
    libraries();
    let path = scratch(&format!("{name}-profile")).join("heap.pb");
    let mut cmd = p.command(&scratch(&format!("{name}-profiled")));
    cmd.env("TRICOLOR_PROFILE", &path);
    let o = run(cmd, true);
    assert_ok(&format!("{name} (profiled)"), &o);
    let top = Command::new("go")
        .args(["tool", "pprof", "-top", "-sample_index=alloc_space"])
        .arg(&path)
        .output()
        .expect("go tool pprof (apt-get install golang-go; .ci/run does)");
    let text = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    let named = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(5)
                .is_some_and(|f| f.starts_with(prefix))
        })
        .count();
    assert!(
        named >= 3,
        "{name}: fewer than 3 of its functions in\n{text}"
    );
    assert!(
        !text.contains("tricolor_alloc::"),
        "allocator frames left in\n{text}"
    );
}

#[test]
fn python_heap_profile_names_pythons_functions() {
    profile_names_functions("python", "Py");
}

#[test]
fn sqlite_heap_profile_names_sqlites_functions() {
    profile_names_functions("sqlite", "sqlite3");
}
