//! Every C sample in `README.md` and `docs/*.md` compiles against `tricolor.h` and runs, so the
//! documentation cannot drift from the C API. (The Rust samples are doc tests of this crate:
//! `tests/src/lib.rs` includes the same files.)
//!
//! The rule the documents follow: every block fenced as `` ```c `` is a complete C11 program
//! with a `main` that returns 0 when all went well. It is compiled as the C tests are (`-std=c11
//! -Wall -Wextra -Werror -D_GNU_SOURCE -pthread`, the header from `ffi/include`), linked with
//! `libtricolor.so`, and run with `TRICOLOR_GC_VERIFY=1` (so the collector checks every store
//! and every marking a sample makes) and without `GOGC`, `GOMEMLIMIT` and `GODEBUG` from the
//! caller's environment; it must exit with status 0. A block whose first line contains
//! `LD_PRELOAD` is a program written against the standard `malloc` family alone: it is
//! linked without Tricolor and run with `libtricolor_malloc.so` preloaded. Code that is not a
//! complete program goes in a block fenced as `` ```text ``.

use std::path::{Path, PathBuf};
use std::process::Command;
use tricolor_tests::{Link, compile_at, describe, libraries, run, scratch};

/// A fenced C block: where it starts (file and line of the fence) and its text.
struct Sample {
    file: String,
    line: usize,
    code: String,
}

/// The `` ```c `` blocks of a Markdown text, with the line of each opening fence.
fn c_blocks(file: &str, text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start();
        match &mut open {
            None if fence.starts_with("```") => {
                if fence.trim_end() == "```c" {
                    open = Some((i + 1, String::new()));
                } else {
                    // Another language: skip to its closing fence.
                    open = Some((0, String::new()));
                }
            }
            None => {}
            Some((start, code)) => {
                if fence.trim_end() == "```" {
                    if *start != 0 {
                        out.push(Sample {
                            file: file.to_string(),
                            line: *start,
                            code: std::mem::take(code),
                        });
                    }
                    open = None;
                } else {
                    code.push_str(line);
                    code.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "{file}: a code block is not closed");
    out
}

/// Every Markdown file the rule covers: the README and `docs/*.md`.
fn documents() -> Vec<PathBuf> {
    let root = &libraries().root;
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("read docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn all_samples() -> Vec<Sample> {
    let root = &libraries().root;
    let mut out = Vec::new();
    for path in documents() {
        let text = std::fs::read_to_string(&path).expect("read a document");
        let name = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        out.extend(c_blocks(&name, &text));
    }
    out
}

fn preloaded(s: &Sample) -> bool {
    s.code
        .lines()
        .next()
        .is_some_and(|l| l.contains("LD_PRELOAD"))
}

/// Compiles one sample; the executable, or the compiler's messages.
fn compile_sample(s: &Sample, dir: &Path) -> Result<PathBuf, String> {
    let stem = format!(
        "{}-{}",
        s.file.replace(['/', '.'], "-").to_lowercase(),
        s.line
    );
    let src = dir.join(format!("{stem}.c"));
    std::fs::write(&src, &s.code).expect("write the sample");
    let link = if preloaded(s) {
        Link::None
    } else {
        Link::Shared
    };
    compile_at(&src, &dir.join(&stem), link)
}

/// Compiles and runs one sample; `Err` says what went wrong.
fn check(s: &Sample, dir: &Path) -> Result<(), String> {
    let exe = compile_sample(s, dir).map_err(|e| format!("does not compile:\n{e}"))?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(dir)
        .env("TRICOLOR_GC_VERIFY", "1")
        .env_remove("GOGC")
        .env_remove("GOMEMLIMIT")
        .env_remove("GODEBUG");
    let o = run(cmd, preloaded(s));
    if o.status.success() {
        Ok(())
    } else {
        Err(describe(&o))
    }
}

#[test]
fn every_c_sample_compiles_and_runs() {
    let samples = all_samples();
    // The README and the C embedding guide have samples: finding none means the extraction
    // broke, not that there is nothing to check.
    for file in ["README.md", "docs/embedding-c.md", "docs/allocator.md"] {
        assert!(
            samples.iter().any(|s| s.file == file),
            "no ```c sample found in {file}"
        );
    }
    let dir = scratch("docs-c");
    let failures: Vec<String> = samples
        .iter()
        .filter_map(|s| {
            check(s, &dir)
                .err()
                .map(|e| format!("{}:{}: {e}", s.file, s.line))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} C samples failed:\n\n{}",
        failures.len(),
        samples.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_sample_that_does_not_compile_is_reported() {
    let text = "text\n```c\nint main(void) { return undeclared; }\n```\n";
    let samples = c_blocks("broken.md", text);
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].line, 2);
    let err = check(&samples[0], &scratch("docs-broken")).unwrap_err();
    assert!(err.contains("does not compile"), "{err}");
}

#[test]
fn a_sample_that_fails_is_reported() {
    let text =
        "```c\n#include \"tricolor.h\"\nint main(void) { return tc_malloc(0) ? 3 : 4; }\n```\n";
    let samples = c_blocks("fails.md", text);
    let err = check(&samples[0], &scratch("docs-fails")).unwrap_err();
    assert!(err.contains("failed"), "{err}");
}

#[test]
fn only_c_blocks_are_taken() {
    let text = "```sh\nint main(void) {}\n```\n```rust\nfn main() {}\n```\n  ```c\nint main(void) { return 0; }\n  ```\n";
    let samples = c_blocks("mixed.md", text);
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].line, 7);
    assert_eq!(samples[0].code, "int main(void) { return 0; }\n");
}
