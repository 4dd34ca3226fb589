//! The front end in use is visible and follows the environment: per-CPU caches when glibc has
//! registered rseq, per-thread caches when `GLIBC_TUNABLES=glibc.pthread.rseq=0` disables it
//! or `TRICOLOR_PERCPU=0` asks for them. Each case runs in a child process (the mode is decided
//! once per process).

use std::process::Command;
use tricolor_alloc::{FrontEnd, Tricolor, front_end};

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

fn rseq_registered_here() -> bool {
    // SAFETY: dlsym with NUL-terminated names; reading glibc's `__rseq_size` if present.
    unsafe {
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()).cast::<u32>();
        !size.is_null() && *size >= 20
    }
}

fn child_mode(env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["report_mode", "--exact", "--nocapture", "--ignored"])
        .env("TRICOLOR_REPORT_MODE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find_map(|l| l.strip_prefix("MODE "))
        .unwrap_or("none")
        .to_string()
}

#[test]
#[ignore = "helper run by the other tests in a child process"]
fn report_mode() {
    if std::env::var_os("TRICOLOR_REPORT_MODE").is_some() {
        let v: Vec<u64> = (0..100).collect();
        eprintln!("MODE {:?} {}", front_end(), v.len());
    }
}

#[test]
fn per_cpu_when_rseq_is_registered() {
    let expected = if rseq_registered_here() {
        "PerCpu"
    } else {
        "PerThread"
    };
    assert_eq!(format!("{:?}", front_end()), expected);
    // In the parent, too: the mode of this process.
    assert_eq!(front_end() == FrontEnd::PerCpu, rseq_registered_here());
}

#[test]
fn per_thread_when_glibc_rseq_is_disabled() {
    assert!(child_mode(&[("GLIBC_TUNABLES", "glibc.pthread.rseq=0")]).starts_with("PerThread"));
}

#[test]
fn per_thread_when_asked() {
    assert!(child_mode(&[("TRICOLOR_PERCPU", "0")]).starts_with("PerThread"));
}
