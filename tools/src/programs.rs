//! `tricolor bench --programs`: real programs (see `tricolor_benches::programs`) under each
//! allocator preloaded the same way (`LD_PRELOAD`), glibc being no preload at all. Reports the
//! median wall time and the median peak RSS (the largest `ru_maxrss` of the program and its
//! children), with ratios to Tricolor, and checks that every allocator produced glibc's
//! output. Rival libraries are Debian's (`libjemalloc2`, `libmimalloc2.0`,
//! `libtcmalloc-minimal4`); a missing one is skipped with a note.
//!
//! # Measuring a child's peak RSS
//! Linux starts a new program's `ru_maxrss` from the peak of the process image it replaces:
//! a child spawned from here (fork or vfork) reports at least this tool's own RSS (measured:
//! `/bin/true` reads 219 MiB when spawned from a 200 MiB process), so small programs read as
//! this process's size. Children therefore run under GNU time (`/usr/bin/time -f %M`, Debian's
//! `time`), which forks them from its own small image (about 2 MiB, the floor of what it can
//! report); without it, [`measured_command`] falls back to `wait4` here and says so once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;
use tricolor_benches::programs;

const LIBDIR: &str = "/usr/lib/x86_64-linux-gnu";

/// (name, preload library or None for glibc).
fn allocators() -> Vec<(&'static str, Option<PathBuf>)> {
    let own = std::env::current_exe()
        .unwrap()
        .with_file_name("libtricolor_malloc.so");
    let mut v = vec![("tricolor", Some(own)), ("glibc", None)];
    for (name, file) in [
        ("jemalloc", "libjemalloc.so.2"),
        ("mimalloc", "libmimalloc.so.2"),
        ("tcmalloc", "libtcmalloc_minimal.so.4"),
    ] {
        let path = Path::new(LIBDIR).join(file);
        if path.exists() {
            v.push((name, Some(path)));
        } else {
            println!(
                "note: {name} skipped ({} not found; apt-get install the Debian package)",
                path.display()
            );
        }
    }
    v
}

/// Makes sure `libtricolor_malloc.so` sits next to this binary, building it when run by cargo.
fn ensure_preload(path: &Path) -> bool {
    if path.exists() || cargo_build("tricolor-preload", path) {
        return true;
    }
    eprintln!(
        "tricolor bench: {} is missing: cargo build --release -p tricolor-preload",
        path.display()
    );
    false
}

/// Builds `package` through cargo (in release when `artifact` sits in a `release`
/// directory) when this tool runs under `cargo run`; true if `artifact` then exists.
pub fn cargo_build(package: &str, artifact: &Path) -> bool {
    if let Some(cargo) = std::env::var_os("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", package]);
        if artifact
            .parent()
            .and_then(|d| d.file_name())
            .is_some_and(|n| n == "release")
        {
            cmd.arg("--release");
        }
        if !cmd.status().is_ok_and(|s| s.success()) {
            return false;
        }
    }
    artifact.exists()
}

struct Run {
    secs: f64,
    peak_kib: u64,
    stdout: Vec<u8>,
}

fn run_once(p: &programs::Program, preload: Option<&Path>, dir: &Path) -> Result<Run, String> {
    let mut cmd = p.command(dir);
    match preload {
        Some(lib) => cmd.env("LD_PRELOAD", lib),
        None => cmd.env_remove("LD_PRELOAD"),
    };
    // Preloaded, TCMalloc is the only malloc, so its default `sbrk` is safe and is what its
    // users get (the variable is for the dlopen-loaded rival: `tricolor_benches::tcmalloc`).
    cmd.env_remove(tricolor_benches::tcmalloc::SKIP_SBRK);
    let (mut cmd, peak) = measured_command(&cmd);
    let err = std::fs::File::create(dir.join("stderr.txt")).map_err(|e| e.to_string())?;
    cmd.stdout(Stdio::piped()).stderr(err);
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .map_err(|e| e.to_string())?;
    let waited = wait_measured(&child, peak);
    let secs = start.elapsed().as_secs_f64();
    let peak_kib = waited.map_err(|status| {
        let stderr = std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default();
        format!("{}\n{stderr}", describe(status))
    })?;
    Ok(Run {
        secs,
        peak_kib,
        stdout,
    })
}

/// GNU time, if installed (module docs).
const GNU_TIME: &str = "/usr/bin/time";

/// Where a child run under GNU time leaves its peak.
pub struct PeakFile(Option<PathBuf>);

/// `cmd` (program, arguments, environment changes and directory; not its stdio, which the
/// caller sets on the result) wrapped in GNU time, which writes the program's peak RSS to the
/// returned file; or `cmd` as it is when GNU time is missing (module docs).
pub fn measured_command(cmd: &Command) -> (Command, PeakFile) {
    static NOTE: std::sync::Once = std::sync::Once::new();
    if !Path::new(GNU_TIME).is_file() {
        NOTE.call_once(|| {
            println!(
                "note: {GNU_TIME} (apt-get install time) not found: small peaks read as at least this process's RSS"
            )
        });
        let mut c = Command::new(cmd.get_program());
        c.args(cmd.get_args());
        copy_env(cmd, &mut c);
        return (c, PeakFile(None));
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let file = std::env::temp_dir().join(format!(
        "tricolor-peak-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let mut c = Command::new(GNU_TIME);
    c.arg("-f").arg("%M").arg("-o").arg(&file);
    c.arg(cmd.get_program()).args(cmd.get_args());
    copy_env(cmd, &mut c);
    (c, PeakFile(Some(file)))
}

fn copy_env(from: &Command, to: &mut Command) {
    for (k, v) in from.get_envs() {
        match v {
            Some(v) => to.env(k, v),
            None => to.env_remove(k),
        };
    }
    if let Some(d) = from.get_current_dir() {
        to.current_dir(d);
    }
}

/// Reaps `child` (started from [`measured_command`]'s command) with `wait4`: its peak RSS in
/// KiB (from GNU time's file, else `ru_maxrss` here) if it exited with status 0, else the raw
/// wait status. `child` must not be waited on again.
pub fn wait_measured(child: &std::process::Child, peak: PeakFile) -> Result<u64, i32> {
    let here = wait_peak(child);
    let Some(file) = peak.0 else {
        return here;
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
    let kib = here?;
    // GNU time writes "%M" last (after a line on a failed command's status).
    Ok(text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or(kib))
}

/// A failed child's wait status in words. Under GNU time, a program killed by signal N makes
/// time exit with 128 + N (module docs), which reads as that signal.
pub fn describe(status: i32) -> String {
    if libc::WIFSIGNALED(status) {
        return format!("killed by signal {}", libc::WTERMSIG(status));
    }
    match libc::WEXITSTATUS(status) {
        c if c > 128 && Path::new(GNU_TIME).is_file() => format!("killed by signal {}", c - 128),
        c => format!("exit status {c}"),
    }
}

/// Reaps `child` with `wait4`: its peak RSS (KiB, `ru_maxrss` of it and its waited-for
/// children) if it exited with status 0, else the raw wait status. `child` must not be
/// waited on again.
pub fn wait_peak(child: &std::process::Child) -> Result<u64, i32> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-buffer.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child (reaping it; the caller does not wait on it again).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    if pid < 0 || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(status);
    }
    Ok(usage.ru_maxrss as u64)
}

/// The median of a non-empty sample.
/// A child's run: wall time, peak RSS, and what it wrote.
pub struct Measured {
    pub secs: f64,
    pub peak_kib: u64,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with its stdout and stderr piped here (stderr drained on its own thread, so a
/// chatty child cannot fill that pipe and block while its stdout is read), timing it and
/// reaping it with [`wait_peak`]. An error carries the wait status and stderr.
pub fn run_measured(cmd: &mut Command) -> Result<Measured, String> {
    let (mut cmd, peak) = measured_command(cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let mut out = String::new();
    let read = child.stdout.take().unwrap().read_to_string(&mut out);
    let err = err_reader.join().unwrap_or_default();
    read.map_err(|e| e.to_string())?;
    let waited = wait_measured(&child, peak);
    let secs = start.elapsed().as_secs_f64();
    let peak_kib = waited.map_err(|status| format!("{}\n{err}", describe(status)))?;
    Ok(Measured {
        secs,
        peak_kib,
        stdout: out,
        stderr: err,
    })
}

pub fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Runs the programs table; `runs` per cell, `only` filters programs by name.
pub fn main(runs: usize, only: &[String]) -> ExitCode {
    let allocs = allocators();
    if !ensure_preload(allocs[0].1.as_deref().unwrap()) {
        return ExitCode::FAILURE;
    }
    let scratch = std::env::temp_dir().join(format!("tricolor-bench-{}", std::process::id()));
    println!(
        "tricolor bench --programs: {runs} runs per cell; median wall time and median peak RSS (ru_maxrss of the program tree)"
    );
    println!("ratios are allocator / tricolor: above 1.00 means Tricolor is faster or smaller\n");
    println!(
        "{:<8} {:<9} {:>9} {:>7} {:>9} {:>7}",
        "program", "allocator", "median s", "time x", "peak MiB", "peak x"
    );
    let mut failed = false;
    for p in programs::ALL
        .iter()
        .filter(|p| only.is_empty() || only.iter().any(|o| o == p.name))
    {
        if !p.installed() {
            println!(
                "{:<8} skipped: {} not installed (apt-get install {})",
                p.name, p.needs.0, p.needs.1
            );
            continue;
        }
        let mut rows: Vec<(&str, f64, f64)> = Vec::new();
        let mut reference: Option<Vec<u8>> = None;
        // Interleave allocators run by run, so drift in machine load spreads evenly.
        let mut samples: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); allocs.len()];
        for r in 0..runs {
            for (i, (name, lib)) in allocs.iter().enumerate() {
                let dir = scratch.join(format!("{}-{name}-{r}", p.name));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir).unwrap();
                match run_once(p, lib.as_deref(), &dir) {
                    Ok(run) => {
                        if *name == "glibc" && reference.is_none() {
                            reference = Some(run.stdout.clone());
                        }
                        if reference.as_ref().is_some_and(|want| *want != run.stdout) {
                            failed = true;
                            eprintln!(
                                "tricolor bench: {} under {name}: output differs from glibc's",
                                p.name
                            );
                        }
                        samples[i].0.push(run.secs);
                        samples[i].1.push(run.peak_kib as f64);
                    }
                    Err(e) => {
                        failed = true;
                        eprintln!("tricolor bench: {} under {name} failed: {e}", p.name);
                    }
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        for ((name, _), (t, m)) in allocs.iter().zip(samples) {
            if !t.is_empty() {
                rows.push((name, median(t), median(m)));
            }
        }
        let base = rows.iter().find(|r| r.0 == "tricolor").map(|r| (r.1, r.2));
        for (i, (name, t, m)) in rows.iter().enumerate() {
            let (tx, mx) = base.map_or(("-".into(), "-".into()), |(bt, bm)| {
                (format!("{:.2}", t / bt), format!("{:.2}", m / bm))
            });
            println!(
                "{:<8} {:<9} {:>9.3} {:>7} {:>9.1} {:>7}",
                if i == 0 { p.name } else { "" },
                name,
                t,
                tx,
                m / 1024.0,
                mx
            );
        }
    }
    println!("\nprograms:");
    for p in programs::ALL {
        println!("  {:<8} {}", p.name, p.what);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
