//! `tricolor bench`'s spike table: RSS after a freed spike while the program sleeps, per
//! allocator, each in its own child process (see `tricolor_benches::spike`).

use std::process::{Command, ExitCode};
use tricolor_benches::spike::{self, SAMPLES, Spike};
use tricolor_benches::{AllocFn, Rival};

/// The hidden sub-command a child runs.
pub const CHILD: &str = "__spike-cell";

/// The spike's size in MiB: about 800 MiB of mixed 16 B-1 MiB blocks, the spike the
/// memory-return goal is stated for.
pub const MIB: usize = 800;

/// The memory-return goal: RSS above the baseline below 64 MiB at 10 s after the spike, with
/// at most 2% of one CPU spent while the program sleeps.
const GOAL_MIB: f64 = 64.0;
const GOAL_CPU_PERCENT: f64 = 2.0;

struct Run {
    mib: usize,
    seconds: f64,
}

impl AllocFn<Spike> for Run {
    fn call<A: std::alloc::GlobalAlloc + Sync + 'static>(self, a: &'static A) -> Spike {
        spike::run(a, self.mib, self.seconds)
    }
}

/// Runs the spike on every allocator in `rivals` and prints the table; false if a child
/// failed or the checksums disagree. The children run at once (each mostly sleeps; the table
/// takes the idle window once, not once per allocator); each measures only itself.
pub fn table(rivals: &[Rival], seconds: f64) -> bool {
    let exe = std::env::current_exe().expect("own path");
    let samples: Vec<f64> = SAMPLES.iter().copied().filter(|&s| s <= seconds).collect();
    println!(
        "\nspike: {MIB} MiB of mixed 16 B-1 MiB objects allocated and touched, all freed, then the program\n\
         sleeps; RSS above the process's baseline (MiB) at each time after the last free, and the\n\
         CPU the process used while it slept (background threads), as ms and as a share of one CPU.\n\
         Goal for Tricolor: below {GOAL_MIB} MiB at 10 s with at most {GOAL_CPU_PERCENT}% of one CPU"
    );
    print!("{:<9} {:>8}", "allocator", "peak");
    for s in &samples {
        print!(" {:>7}", format!("{s:.0} s"));
    }
    println!(" {:>9} {:>6}", "idle CPU", "share");
    let mut ok = true;
    let mut checksum = None;
    // Tricolor's RSS at 10 s (MiB) and idle CPU share (%), for the verdict.
    let mut ours: Option<(f64, f64)> = None;
    let children: Vec<_> = rivals
        .iter()
        .map(|r| {
            Command::new(&exe)
                .args([CHILD, r.name(), &MIB.to_string(), &seconds.to_string()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn spike child")
        })
        .collect();
    for (&r, child) in rivals.iter().zip(children) {
        let out = child.wait_with_output().expect("wait for spike child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let parsed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("SPIKE "))
            .and_then(parse_line);
        let Some(s) = parsed.filter(|_| out.status.success()) else {
            if r != Rival::Tricolor {
                // A rival crashing is reported in its row, not as a failure of the bench.
                println!("{:<9} failed ({})", r.name(), out.status);
                continue;
            }
            ok = false;
            eprintln!(
                "tricolor bench: spike on {} failed ({}):\n{}",
                r.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            continue;
        };
        if checksum.is_some_and(|c| c != s.checksum) {
            ok = false;
            eprintln!("tricolor bench: spike checksums differ between allocators");
        }
        checksum = Some(s.checksum);
        let mib = |b: usize| b.saturating_sub(s.base) as f64 / (1 << 20) as f64;
        print!("{:<9} {:>8.1}", r.name(), mib(s.peak));
        for a in &s.after {
            print!(" {:>7.1}", mib(*a));
        }
        let window = samples.last().copied().unwrap_or(0.0).max(1e-3);
        let share = s.idle_cpu / window * 100.0;
        println!(" {:>6.1} ms {:>5.2}%", s.idle_cpu * 1e3, share);
        let at_10s = samples.iter().position(|&t| t >= 10.0);
        if let (Rival::Tricolor, Some(i)) = (r, at_10s) {
            ours = s.after.get(i).map(|&b| (mib(b), share));
        }
    }
    if let Some((rss, cpu)) = ours {
        println!("goal: {}", verdict(rss, cpu));
    }
    ok
}

/// The memory-return goal's verdict on Tricolor's RSS at 10 s and idle CPU share: "met", or by
/// how much each part is missed.
fn verdict(rss_mib: f64, cpu_percent: f64) -> String {
    let mut missed = Vec::new();
    if rss_mib >= GOAL_MIB {
        missed.push(format!(
            "RSS at 10 s {rss_mib:.1} MiB, {:.1} x the goal's {GOAL_MIB} MiB",
            rss_mib / GOAL_MIB
        ));
    }
    if cpu_percent > GOAL_CPU_PERCENT {
        missed.push(format!(
            "idle CPU {cpu_percent:.2}%, {:.1} x the goal's {GOAL_CPU_PERCENT}%",
            cpu_percent / GOAL_CPU_PERCENT
        ));
    }
    if missed.is_empty() {
        format!(
            "met: Tricolor {rss_mib:.1} MiB at 10 s (below {GOAL_MIB}), {cpu_percent:.2}% of one CPU (at most {GOAL_CPU_PERCENT}%)"
        )
    } else {
        format!("missed: {}", missed.join("; "))
    }
}

fn parse_line(l: &str) -> Option<Spike> {
    let f: Vec<&str> = l.split_whitespace().collect();
    let n = f.len();
    if n < 4 {
        return None;
    }
    Some(Spike {
        base: f[0].parse().ok()?,
        peak: f[1].parse().ok()?,
        after: f[2..n - 2]
            .iter()
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?,
        idle_cpu: f[n - 2].parse().ok()?,
        checksum: f[n - 1].parse().ok()?,
    })
}

/// The child: `__spike-cell <allocator> <MiB> <seconds>`; prints
/// `SPIKE <base> <peak> <after...> <idle cpu s> <checksum>`.
pub fn child(args: &[String]) -> ExitCode {
    let (Some(r), Some(mib), Some(seconds)) = (
        args.first().and_then(|s| Rival::parse(s)),
        args.get(1).and_then(|s| s.parse().ok()),
        args.get(2).and_then(|s| s.parse().ok()),
    ) else {
        eprintln!("tricolor: bad {CHILD} arguments {args:?}");
        return ExitCode::from(2);
    };
    let s = r.with(Run { mib, seconds });
    let after: Vec<String> = s.after.iter().map(ToString::to_string).collect();
    println!(
        "SPIKE {} {} {} {} {}",
        s.base,
        s.peak,
        after.join(" "),
        s.idle_cpu,
        s.checksum
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn the_verdict_names_each_part_missed() {
        assert!(verdict(3.2, 0.7).starts_with("met: "));
        assert_eq!(
            verdict(128.0, 0.5),
            "missed: RSS at 10 s 128.0 MiB, 2.0 x the goal's 64 MiB"
        );
        assert_eq!(
            verdict(10.0, 3.0),
            "missed: idle CPU 3.00%, 1.5 x the goal's 2%"
        );
        assert!(verdict(64.0, 2.5).contains("MiB") && verdict(64.0, 2.5).contains("CPU"));
    }
}
