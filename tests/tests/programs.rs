//! Real programs under `LD_PRELOAD=libtricolor_malloc.so`, each compared with its own run on
//! the system allocator: the output must be identical. The programs come with Debian or are
//! installed by `.ci/run` (python3, sqlite3, git, xz, coreutils); a missing one fails the test
//! with the package to install.

use std::path::Path;
use std::process::{Command, Output};
use tricolor_tests::{assert_ok, libraries, run, scratch};

fn require(program: &str, package: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "{program} is not installed: apt-get install {package} (.ci/run does)"
    );
}

/// Runs `make()` without and with the preload library; both must succeed with equal stdout.
fn same_output(what: &str, make: impl Fn() -> Command) -> Output {
    libraries();
    let plain = run(make(), false);
    assert_ok(&format!("{what} (system malloc)"), &plain);
    let ours = run(make(), true);
    assert_ok(&format!("{what} (Tricolor)"), &ours);
    assert!(
        plain.stdout == ours.stdout,
        "{what}: output differs under Tricolor:\n--- system\n{}\n--- tricolor\n{}",
        String::from_utf8_lossy(&plain.stdout),
        String::from_utf8_lossy(&ours.stdout)
    );
    ours
}

#[test]
fn python_workload() {
    require("python3", "python3");
    let script = libraries().root.join("tests/programs/workload.py");
    let o = same_output("python3 workload.py", || {
        let mut c = Command::new("python3");
        c.arg(&script)
            .env("PYTHONMALLOC", "malloc")
            .env("PYTHONHASHSEED", "0");
        c
    });
    assert!(o.stdout.len() > 50, "python printed too little");
}

const SQL: &str = "
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, payload BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000)
INSERT INTO t SELECT i, i % 97, printf('name-%08d', i * 7919 % 150001), zeroblob(i % 300) FROM n;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp ON t(grp, name);
SELECT count(*), sum(length(payload)), max(name) FROM t;
SELECT grp, count(*), min(name) FROM t GROUP BY grp ORDER BY grp LIMIT 10;
SELECT name FROM t WHERE name LIKE 'name-0001%' ORDER BY name LIMIT 5;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
SELECT count(*), total(id) FROM t;
";

#[test]
fn sqlite_builds_and_queries_150k_rows() {
    require("sqlite3", "sqlite3");
    let dir = scratch("sqlite");
    let o = same_output("sqlite3", || {
        let db = dir.join("t.db");
        let _ = std::fs::remove_file(&db);
        let mut c = Command::new("sqlite3");
        c.arg(&db).arg(SQL);
        c
    });
    assert!(String::from_utf8_lossy(&o.stdout).contains("150000|"));
}

fn git(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args(args)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z");
    c
}

#[test]
fn git_builds_a_repository() {
    require("git", "git");
    let base = scratch("git");
    let round = std::sync::atomic::AtomicUsize::new(0);
    same_output("git", || {
        // A fresh repository per run; the script's output (hashes, log, fsck) must match.
        let dir = base.join(
            round
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .to_string(),
        );
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = Command::new("sh");
        c.current_dir(&dir).arg("-c").arg(
            "set -e
             git init -q -b main .
             for c in 1 2 3 4 5; do
               for f in $(seq 1 60); do seq $((f * c)) $((f * c + f * 40)) > file$f.txt; done
               git add -A && git commit -q -m \"commit $c\"
             done
             git log --stat --format='%H %s' | head -40
             git gc -q --aggressive
             git fsck --strict 2>&1
             git rev-parse HEAD",
        );
        for (k, v) in git(&dir, &[]).get_envs() {
            c.env(k, v.unwrap_or_default());
        }
        c
    });
}

#[test]
fn multithreaded_xz_and_sort() {
    require("xz", "xz-utils");
    let dir = scratch("mt");
    let input = dir.join("input.txt");
    let mut text = String::new();
    let mut x: u64 = 88172645463325252;
    for i in 0..600_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!(
            "{:016x} line {i} {}\n",
            x,
            "w".repeat((x % 40) as usize)
        ));
    }
    std::fs::write(&input, text).unwrap();
    same_output("xz -T2", || {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "xz -T2 --block-size=1MiB -c {} | xz -d -T2 | sha256sum",
            input.display()
        ));
        c
    });
    same_output("sort --parallel=2", || {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "sort --parallel=2 -S 20M {} | sha256sum",
            input.display()
        ));
        c
    });
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
