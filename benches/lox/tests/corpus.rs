//! Runs every Lox program in `tests/corpus/` through `tricolor-lox` and checks it against the
//! expectations it carries, as the book's test suite does: `// expect: OUTPUT` for each line
//! printed, `// expect runtime error: MESSAGE` (stderr, the line's number in the trace, exit
//! 70), `// Error...` for a compile error on that line (stderr `[line N] Error...`, exit 65).
//! Each program runs twice: normally, and in the GC stress mode (a collection before every
//! allocation, verification on).

use std::path::Path;
use std::process::Command;

struct Expect {
    stdout: Vec<String>,
    /// Compile errors: the whole of stderr.
    stderr: Vec<String>,
    /// A runtime error: its message and the line of the trace's first frame (the rest of the
    /// trace is not checked, as in the book's test runner).
    runtime: Option<(String, usize)>,
    code: i32,
}

fn expectations(src: &str) -> Expect {
    let mut e = Expect {
        stdout: Vec::new(),
        stderr: Vec::new(),
        runtime: None,
        code: 0,
    };
    for (i, line) in src.lines().enumerate() {
        let n = i + 1;
        if let Some((_, rest)) = line.split_once("// expect: ") {
            e.stdout.push(rest.to_string());
        } else if let Some((_, rest)) = line.split_once("// expect runtime error: ") {
            e.runtime = Some((rest.to_string(), n));
            e.code = 70;
        } else if let Some((_, rest)) = line.split_once("// [line ") {
            e.stderr.push(format!("[line {rest}"));
            e.code = 65;
        } else if let Some((_, rest)) = line.split_once("// Error") {
            e.stderr.push(format!("[line {n}] Error{rest}"));
            e.code = 65;
        }
    }
    e
}

fn run(path: &Path, stress: bool) -> Result<(), String> {
    let src = std::fs::read_to_string(path).unwrap();
    let want = expectations(&src);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tricolor-lox"));
    cmd.arg(path).env_remove("GODEBUG");
    if stress {
        cmd.env("TRICOLOR_LOX_STRESS_GC", "1");
    }
    let o = cmd.output().unwrap();
    let out: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect();
    let err: Vec<String> = String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(String::from)
        .collect();
    let code = o.status.code().unwrap_or(-1);
    let err_ok = match &want.runtime {
        Some((msg, line)) => {
            err.len() >= 2 && err[0] == *msg && err[1].starts_with(&format!("[line {line}] in "))
        }
        None => err == want.stderr,
    };
    if out != want.stdout || !err_ok || code != want.code {
        return Err(format!(
            "{} (stress {stress}):\n  stdout {out:?}\n  want   {:?}\n  stderr {err:?}\n  want   {:?}\n  exit {code}, want {}",
            path.display(),
            want.stdout,
            want.runtime
                .as_ref()
                .map_or(want.stderr.clone(), |(m, l)| vec![
                    m.clone(),
                    format!("[line {l}] in ...")
                ]),
            want.code
        ));
    }
    Ok(())
}

fn corpus() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "lox"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the corpus is there");
    files
}

#[test]
fn the_corpus_runs_as_expected() {
    let failures: Vec<String> = corpus()
        .iter()
        .filter_map(|p| run(p, false).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_corpus_runs_as_expected_under_gc_stress() {
    let failures: Vec<String> = corpus().iter().filter_map(|p| run(p, true).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
