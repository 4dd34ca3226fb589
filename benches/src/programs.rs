//! Real programs used both as tests (under `LD_PRELOAD`, output compared with the system
//! allocator: `tests/tests/programs.rs`) and as benchmarks (`tricolor bench --programs`).
//! Each is a shell command run in a scratch directory; its stdout is deterministic.

use std::path::Path;
use std::process::Command;

/// A real program run.
#[derive(Clone, Copy, Debug)]
pub struct Program {
    /// Table and test name.
    pub name: &'static str,
    /// What it does.
    pub what: &'static str,
    /// The executable it needs, and the Debian package that has it.
    pub needs: (&'static str, &'static str),
}

/// Every program, in table order.
pub const ALL: [Program; 5] = [
    Program {
        name: "python",
        what: "python3 (PYTHONMALLOC=malloc): dicts, json, sort, regex, zlib, 4 threads",
        needs: ("python3", "python3"),
    },
    Program {
        name: "sqlite",
        what: "sqlite3: 150k rows, two indexes, group by, delete, vacuum",
        needs: ("sqlite3", "sqlite3"),
    },
    Program {
        name: "git",
        what: "git: 5 commits of 60 files, log --stat, gc --aggressive, fsck",
        needs: ("git", "git"),
    },
    Program {
        name: "xz",
        what: "xz -T2 compress and decompress 36 MB of text",
        needs: ("xz", "xz-utils"),
    },
    Program {
        name: "sort",
        what: "sort --parallel=2 of 600k lines",
        needs: ("sort", "coreutils"),
    },
];

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

const GIT: &str = "set -e
git init -q -b main repo && cd repo
for c in 1 2 3 4 5; do
  for f in $(seq 1 60); do seq $((f * c)) $((f * c + f * 40)) > file$f.txt; done
  git add -A && git commit -q -m \"commit $c\"
done
git log --stat --format='%H %s' | head -40
git gc -q --aggressive
git fsck --strict 2>&1
git rev-parse HEAD";

/// Writes the text input of the xz and sort runs (600k pseudo-random lines) if missing.
fn text_input(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("input.txt");
    if !path.exists() {
        let mut text = String::with_capacity(40 << 20);
        let mut x: u64 = 88172645463325252;
        for i in 0..600_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(&format!(
                "{x:016x} line {i} {}\n",
                "w".repeat((x % 40) as usize)
            ));
        }
        std::fs::write(&path, text).expect("write input");
    }
    path
}

impl Program {
    /// The command for one run in `dir` (an empty scratch directory per run; inputs are
    /// created there).
    pub fn command(&self, dir: &Path) -> Command {
        let mut c = Command::new("sh");
        c.current_dir(dir);
        match self.name {
            "python" => {
                let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/workload.py");
                c.arg("-c").arg(format!("python3 '{}'", script.display()));
                c.env("PYTHONMALLOC", "malloc").env("PYTHONHASHSEED", "0");
            }
            "sqlite" => {
                c.arg("-c")
                    .arg("sqlite3 t.db \"$TRICOLOR_SQL\"")
                    .env("TRICOLOR_SQL", SQL);
            }
            "git" => {
                c.arg("-c")
                    .arg(GIT)
                    .env("HOME", dir)
                    .env("GIT_CONFIG_NOSYSTEM", "1");
                for who in ["AUTHOR", "COMMITTER"] {
                    c.env(format!("GIT_{who}_NAME"), "T")
                        .env(format!("GIT_{who}_EMAIL"), "t@example.invalid")
                        .env(format!("GIT_{who}_DATE"), "2026-01-01T00:00:00Z");
                }
            }
            "xz" => {
                let input = text_input(dir);
                c.arg("-c").arg(format!(
                    "xz -T2 --block-size=1MiB -c '{}' | xz -d -T2 | sha256sum",
                    input.display()
                ));
            }
            "sort" => {
                let input = text_input(dir);
                c.arg("-c").arg(format!(
                    "sort --parallel=2 -S 20M '{}' | sha256sum",
                    input.display()
                ));
            }
            other => panic!("unknown program {other}"),
        }
        c
    }

    /// Whether the program's executable is installed.
    pub fn installed(&self) -> bool {
        Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {}", self.needs.0))
            .output()
            .is_ok_and(|o| o.status.success())
    }
}
