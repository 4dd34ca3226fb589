//! Heap profiles: the estimates are unbiased (live and freed bytes of a known workload,
//! found by function name in the written file), frees are seen, the file is what
//! `go tool pprof` reads, the environment's writes happen (at exit, on `SIGUSR2`), and misuse
//! of a sampled block is still caught. Children run the environment cases (settings are read
//! once per process).

use std::process::Command;
use tricolor_alloc::profile::proto::Profile;
use tricolor_alloc::{Tricolor, profile};

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

/// Set in a child's environment: the child runs where `membarrier` is refused, as on kernels
/// before 5.10 or under a seccomp profile that forbids it.
const DENY_MEMBARRIER: &str = "TRICOLOR_TEST_DENY_MEMBARRIER";

/// Runs before `main`, so before the allocator decides its front end: with
/// [`DENY_MEMBARRIER`] set, installs a seccomp filter under which `membarrier` fails with
/// `ENOSYS` and every other system call is allowed.
#[used]
#[unsafe(link_section = ".init_array")]
static DENY_MEMBARRIER_AT_START: extern "C" fn() = deny_membarrier_if_asked;

extern "C" fn deny_membarrier_if_asked() {
    // SAFETY: getenv with a NUL-terminated name, before any other thread exists.
    if unsafe { libc::getenv(c"TRICOLOR_TEST_DENY_MEMBARRIER".as_ptr()) }.is_null() {
        return;
    }
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let filter = [
        // The architecture (offset 4 of seccomp_data): anything but x86-64 is allowed as is.
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 4),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 3,
            k: 0xc000_003e, // AUDIT_ARCH_X86_64
        },
        // The system call's number (offset 0).
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_membarrier as u32,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with integer arguments, then with a pointer to a filter program that
    // lives across the call (the kernel copies it).
    let installed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) == 0
    };
    if !installed {
        // SAFETY: writes a static message to stderr and ends the process, allocating nothing.
        unsafe {
            let msg = b"cannot install the seccomp filter\n";
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::_exit(3);
        }
    }
}

/// The four values (alloc objects, alloc bytes, inuse objects, inuse bytes) summed over the
/// samples whose stack names a function containing `needle`.
fn totals(p: &Profile, needle: &str) -> [i64; 4] {
    let mut t = [0; 4];
    for s in &p.sample {
        if p.stack(s).iter().any(|n| n.contains(needle)) {
            for (a, v) in t.iter_mut().zip(&s.value) {
                *a += v;
            }
        }
    }
    t
}

fn read(bytes: &[u8]) -> Profile {
    Profile::read(bytes).expect("a profile.proto message")
}

const HELD: usize = 40_000;
const HELD_SIZE: usize = 1000;
const CHURNED: usize = 200_000;
const CHURN_SIZE: usize = 100;

#[inline(never)]
fn hold_the_big_ones() -> Vec<Vec<u8>> {
    let v = (0..HELD).map(|i| vec![i as u8; HELD_SIZE]).collect();
    // Not a tail call: this function's frame must be on the sampled stacks.
    std::hint::black_box(v)
}

#[inline(never)]
fn churn_small_ones() -> u64 {
    let mut sum = 0;
    for i in 0..CHURNED {
        let v = std::hint::black_box(vec![i as u8; CHURN_SIZE]);
        sum += u64::from(v[CHURN_SIZE - 1]);
    }
    sum
}

/// The bytes the heap holds for a request of `size` (its class's size).
fn class_bytes(size: usize) -> i64 {
    let c = tricolor_alloc::size_class::class_for(size, 1).unwrap();
    tricolor_alloc::size_class::CLASSES[c].size as i64
}

fn near(got: i64, want: i64, what: &str) {
    let r = got as f64 / want as f64;
    assert!(
        (0.8..1.25).contains(&r),
        "{what}: estimated {got}, true {want} ({r:.3}x)"
    );
}

#[test]
fn estimates_are_unbiased_and_frees_are_seen() {
    // 16 KiB: about 2,400 samples of the held set and 1,200 of the churned one, so each
    // estimate's standard error is 2-3% and the 20% bounds are seven of them.
    profile::set_rate(16 * 1024);
    let held = hold_the_big_ones();
    let sum = churn_small_ones();
    assert_eq!(sum, (0..CHURNED).map(|i| u64::from(i as u8)).sum::<u64>());
    assert!(
        held.iter()
            .enumerate()
            .all(|(i, v)| v.len() == HELD_SIZE && v[7] == i as u8)
    );

    let p = read(&profile::encode());
    let names: Vec<_> = p
        .sample_type
        .iter()
        .map(|t| p.string_table[t.r#type as usize].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "alloc_objects",
            "alloc_space",
            "inuse_objects",
            "inuse_space"
        ]
    );
    assert_eq!(p.period, 16 * 1024);
    let live = HELD as i64 * class_bytes(HELD_SIZE);
    let h = totals(&p, "hold_the_big_ones");
    near(h[1], live, "held, allocated bytes");
    near(h[3], live, "held, live bytes");
    near(h[2], HELD as i64, "held, live objects");
    let c = totals(&p, "churn_small_ones");
    near(
        c[1],
        CHURNED as i64 * class_bytes(CHURN_SIZE),
        "churned, allocated bytes",
    );
    assert!(c[3] < c[1] / 50, "churned blocks were freed: {c:?}");
    // No stack holds the allocator's frames: they are trimmed from the top, with whatever
    // was inlined into them.
    for s in &p.sample {
        let stack = p.stack(s);
        assert!(
            !stack.iter().any(|f| f.contains("tricolor_alloc::")
                || ["capture", "record_here", "alloc_sampled"].contains(f)),
            "{stack:?}"
        );
    }

    // Sampled blocks are ordinary blocks to their users, and freeing them is seen.
    drop(held);
    let p = read(&profile::encode());
    let h2 = totals(&p, "hold_the_big_ones");
    assert!(h2[3] < h[3] / 50, "freed: {h2:?}");
    assert!(h2[1] >= h[1], "allocations stay counted");

    // `go tool pprof` reads the file and names the program's own functions.
    let path = std::env::temp_dir().join(format!("tricolor-profile-{}.pb", std::process::id()));
    profile::dump(&path).unwrap();
    match Command::new("go")
        .args(["tool", "pprof", "-top", "-sample_index=alloc_space"])
        .arg(&path)
        .output()
    {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(text.contains("churn_small_ones"), "{text}");
            assert!(text.contains("hold_the_big_ones"), "{text}");
        }
        // CI installs Go (golang-go); elsewhere the check is skipped, and says so.
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("go tool pprof not run: {e}")
        }
        Err(e) => panic!("go tool pprof: {e}"),
    }
    std::fs::remove_file(&path).ok();
}

/// Runs `test` in a child with `env` and checks that it passed.
#[test]
#[ignore = "run by a_sampled_small_block_reallocated_within_its_page_stays_put in a child"]
fn child_reallocates_sampled_blocks() {
    use std::alloc::{GlobalAlloc, Layout};
    let l = Layout::from_size_align(1000, 8).unwrap();
    for round in 0..64u8 {
        // Every allocation is sampled (rate 1): the block is a one-page run of its own.
        // SAFETY: the block is allocated with `l`, resized within its page with realloc's
        // contract (old layout, new size), read within its sizes, and freed once with the
        // layout of its last size.
        unsafe {
            let p = GLOBAL.alloc(l);
            p.write_bytes(round, 1000);
            let q = GLOBAL.realloc(p, l, 3000);
            assert_eq!(
                q, p,
                "round {round}: grown within its page, the sample moved"
            );
            let r = GLOBAL.realloc(q, Layout::from_size_align(3000, 8).unwrap(), 200);
            assert_eq!(
                r, p,
                "round {round}: shrunk within its page, the sample moved"
            );
            assert!(
                std::slice::from_raw_parts(r, 200)
                    .iter()
                    .all(|&b| b == round),
                "round {round}: contents lost"
            );
            // Past its page it moves, contents and all.
            let big = GLOBAL.realloc(r, Layout::from_size_align(200, 8).unwrap(), 20_000);
            assert!(
                std::slice::from_raw_parts(big, 200)
                    .iter()
                    .all(|&b| b == round),
                "round {round}: contents lost in the move"
            );
            GLOBAL.dealloc(big, Layout::from_size_align(20_000, 8).unwrap());
        }
    }
}

#[test]
fn a_sampled_small_block_reallocated_within_its_page_stays_put() {
    child_succeeds(
        "child_reallocates_sampled_blocks",
        &[("TRICOLOR_PROFILE_RATE", "1")],
    );
}

fn child_succeeds(test: &str, env: &[(&str, &str)]) {
    let out = child(test, env);
    assert!(
        out.status.success(),
        "{test}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn child(test: &str, env: &[(&str, &str)]) -> std::process::Output {
    child_with_pid(test, env).0
}

fn child_with_pid(test: &str, env: &[(&str, &str)]) -> (std::process::Output, u32) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--ignored"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let c = cmd.spawn().unwrap();
    let pid = c.id();
    (c.wait_with_output().unwrap(), pid)
}

#[test]
#[ignore = "run by sampled_blocks_from_alloc_zeroed_read_zero in a child"]
fn child_zeroes_sampled_blocks() {
    use std::alloc::{GlobalAlloc, Layout};
    let l = Layout::from_size_align(1000, 8).unwrap();
    for round in 0..50 {
        // Every allocation is sampled (rate 1): each block is a page run of its own, and the
        // runs freed here come back dirty for the zeroed ones.
        // SAFETY: each block is allocated with `l`, written within its 1000 bytes, and freed
        // once with `l`.
        unsafe {
            let dirty: Vec<*mut u8> = (0..64).map(|_| GLOBAL.alloc(l)).collect();
            for &p in &dirty {
                p.write_bytes(0xff, 1000);
            }
            for p in dirty {
                GLOBAL.dealloc(p, l);
            }
            let zeroed: Vec<*mut u8> = (0..64).map(|_| GLOBAL.alloc_zeroed(l)).collect();
            for &p in &zeroed {
                assert!(
                    std::slice::from_raw_parts(p, 1000).iter().all(|&b| b == 0),
                    "round {round}: a sampled zeroed block holds old bytes"
                );
            }
            for p in zeroed {
                GLOBAL.dealloc(p, l);
            }
        }
    }
}

#[test]
fn sampled_blocks_from_alloc_zeroed_read_zero() {
    child_succeeds(
        "child_zeroes_sampled_blocks",
        &[("TRICOLOR_PROFILE_RATE", "1")],
    );
}

#[test]
#[ignore = "run by frame_pointer_stacks_are_taken in a child"]
fn child_samples_by_frame_pointers() {
    profile::set_rate(16 * 1024);
    let held = hold_the_big_ones();
    let p = read(&profile::encode());
    let live = HELD as i64 * class_bytes(HELD_SIZE);
    // Whatever the build, the samples are taken and counted (the walk never faults).
    let all: i64 = p.sample.iter().map(|s| s.value[3]).sum();
    assert!(
        all as f64 > 0.8 * live as f64,
        "live bytes {all}, held {live}"
    );
    // In a frame-pointer build (`.ci/run` makes one), the stacks name the allocating function.
    if std::env::var_os("TRICOLOR_TEST_FRAME_POINTERS").is_some() {
        near(
            totals(&p, "hold_the_big_ones")[3],
            live,
            "held, live bytes, frame-pointer stacks",
        );
    }
    assert_eq!(held.len(), HELD);
}

#[test]
fn frame_pointer_stacks_are_taken() {
    child_succeeds(
        "child_samples_by_frame_pointers",
        &[("TRICOLOR_PROFILE_FP", "1")],
    );
}

#[test]
#[ignore = "run by environment_profiles_are_written in a child"]
fn child_allocates_and_signals() {
    let held = hold_the_big_ones();
    if std::env::var_os("RAISE").is_some() {
        let want = format!("{}.1", std::env::var("TRICOLOR_PROFILE").unwrap());
        assert!(signal_and_wait_for(&want), "no {want}");
    }
    assert_eq!(held.len(), HELD);
}

/// Sends `SIGUSR2` to this process and waits up to 30 s for the profile `path` it should
/// make the profiler write; false if it never came.
fn signal_and_wait_for(path: &str) -> bool {
    // SAFETY: raising a signal at ourselves; the profiler's handler only writes a byte.
    unsafe { libc::raise(libc::SIGUSR2) };
    let start = std::time::Instant::now();
    while !std::path::Path::new(path).exists() {
        if start.elapsed().as_secs() >= 30 {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

/// A process that forks: its child, signalled, writes its own profile (`%p` gives it its own
/// name), and the parent writes none.
#[test]
#[ignore = "run by a_forked_child_writes_its_own_profile in a child"]
fn child_forks_and_its_child_signals() {
    let held = hold_the_big_ones();
    let pattern = std::env::var("TRICOLOR_PROFILE").unwrap();
    // SAFETY: the forked child only allocates, signals itself, polls a file and exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let again = hold_the_big_ones();
        let want = format!(
            "{}.1",
            pattern.replace("%p", &std::process::id().to_string())
        );
        let found = signal_and_wait_for(&want);
        drop(again);
        // SAFETY: leaving the forked child at once, without the test harness's exit path.
        unsafe { libc::_exit(if found { 0 } else { 3 }) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child just forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child wrote no profile on SIGUSR2 ({status:#x})"
    );
    // Give a wrongly woken parent thread time to write.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mine = format!(
        "{}.1",
        pattern.replace("%p", &std::process::id().to_string())
    );
    assert!(
        !std::path::Path::new(&mine).exists(),
        "the parent wrote {mine}"
    );
    assert_eq!(held.len(), HELD);
}

#[test]
fn a_forked_child_writes_its_own_profile() {
    let dir = std::env::temp_dir().join(format!("tricolor-profile-fork-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pattern = dir.join("heap-%p.pb");
    child_succeeds(
        "child_forks_and_its_child_signals",
        &[
            ("TRICOLOR_PROFILE", pattern.to_str().unwrap()),
            ("TRICOLOR_PROFILE_SIGNAL", "1"),
        ],
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn environment_profiles_are_written() {
    let dir = std::env::temp_dir().join(format!("tricolor-profile-env-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("heap.pb");
    let p = path.to_str().unwrap();
    child_succeeds(
        "child_allocates_and_signals",
        &[
            ("TRICOLOR_PROFILE", p),
            ("TRICOLOR_PROFILE_SIGNAL", "1"),
            ("RAISE", "1"),
        ],
    );
    for file in [path.clone(), dir.join("heap.pb.1")] {
        let prof = read(&std::fs::read(&file).unwrap());
        assert_eq!(prof.period, 512 * 1024, "the default rate");
        let h = totals(&prof, "hold_the_big_ones");
        assert!(h[0] > 0, "{}: {h:?}", file.display());
    }
    // `%p` in the path is the process id, for programs that start others.
    let pattern = dir.join("heap-%p.pb");
    let (out, pid) = child_with_pid(
        "child_allocates_and_signals",
        &[("TRICOLOR_PROFILE", pattern.to_str().unwrap())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = dir.join(format!("heap-{pid}.pb"));
    assert!(
        totals(
            &read(&std::fs::read(&written).unwrap()),
            "hold_the_big_ones"
        )[0] > 0
    );
    std::fs::remove_dir_all(&dir).ok();

    // A malformed rate is reported, and nothing is sampled.
    let out = child(
        "child_allocates_and_signals",
        &[("TRICOLOR_PROFILE_RATE", "512k")],
    );
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TRICOLOR_PROFILE_RATE") && err.contains("512k"),
        "{err}"
    );
}

#[test]
#[ignore = "run by a_sampled_block_freed_twice_aborts in a child"]
fn child_frees_twice() {
    // Every allocation is sampled at rate 1: this block is a page run of its own.
    let p = tricolor_alloc::alloc(48, 8);
    // SAFETY: freed once legitimately; the second free is the misuse under test.
    unsafe {
        tricolor_alloc::dealloc(p, 48, 8);
        tricolor_alloc::dealloc(p, 48, 8);
    }
}

#[test]
fn a_sampled_block_freed_twice_aborts() {
    let out = child("child_frees_twice", &[("TRICOLOR_PROFILE_RATE", "1")]);
    assert!(!out.status.success());
    // A freed page run may merge with its free neighbours before the second free, which then
    // finds no live span there: "invalid pointer" then, as for any large block.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tricolor: dealloc(): double free detected 0x")
            || err.contains("tricolor: dealloc(): invalid pointer 0x"),
        "{err}"
    );
}

/// Sampling under concurrency: four threads allocate stamped blocks (a sample every 256
/// bytes on average, so most are page runs of their own), hand them to the next thread,
/// which checks every byte and frees them. Then every bucket's frees are at most its
/// allocations, and the profile still reads.
#[test]
#[ignore = "run by sampling_under_concurrency in a child (it sets a rate of 256)"]
fn child_samples_from_four_threads() {
    profile::set_rate(256);
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..4)
        .map(|_| std::sync::mpsc::channel::<Vec<u8>>())
        .unzip();
    let mut handles = Vec::new();
    for (t, rx) in rxs.into_iter().enumerate() {
        let tx = txs[(t + 1) % 4].clone();
        handles.push(std::thread::spawn(move || {
            for i in 0..20_000usize {
                let n = 16 + (i * 7919 + t * 31) % 3000;
                let stamp = (i ^ t) as u8;
                tx.send(vec![stamp; n]).unwrap();
                if i % 2 == 1 {
                    for _ in 0..2 {
                        let v = rx.recv().unwrap();
                        assert!(v.iter().all(|&b| b == v[0]), "a block's bytes changed");
                    }
                }
            }
            rx
        }));
    }
    drop(txs);
    for h in handles {
        let rx = h.join().unwrap();
        while let Ok(v) = rx.try_recv() {
            assert!(v.iter().all(|&b| b == v[0]), "a block's bytes changed");
        }
    }
    let p = read(&profile::encode());
    assert!(p.sample.len() > 10);
    for s in &p.sample {
        assert!(s.value[2] >= 0 && s.value[2] <= s.value[0], "{:?}", s.value);
    }
}

#[test]
fn sampling_under_concurrency() {
    let out = child("child_samples_from_four_threads", &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// While sampling, the per-CPU lists' counters trip the samples, and the profiler moves them
/// (`percpu::counters`): the allocation counts must not show it. Three threads allocate and
/// free blocks of two classes nothing else here uses, at a rate of 4 KiB (a sample per 20-odd
/// blocks), while a fourth reads the counts, which folds them (racing the counters' moves).
/// Then each class counts exactly the allocations that were not sampled, the samples being
/// large allocations, and the samples came at the rate. A move left out of the record
/// (`counters` rule 2) makes a count jump by about 2^32. Then, with sampling off, nothing is
/// sampled and every allocation is counted.
#[test]
#[ignore = "run by sampling_keeps_counts_exact in a child (it sets a rate of 4 KiB)"]
fn child_counts_while_sampling() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const SIZES: [usize; 2] = [176, 208];
    const ROUNDS: usize = 3_000;
    const BLOCKS: usize = 40;
    const THREADS: usize = 3;
    if std::env::var_os(DENY_MEMBARRIER).is_some() {
        // SAFETY: MEMBARRIER_CMD_QUERY takes no pointers.
        let r = unsafe { libc::syscall(libc::SYS_membarrier, 0, 0, 0) };
        assert_eq!(
            (r, std::io::Error::last_os_error().raw_os_error()),
            (-1, Some(libc::ENOSYS)),
            "membarrier is refused in this child"
        );
    }
    let classes = SIZES.map(|s| tricolor_alloc::size_class::class_for(s, 8).unwrap());
    let allocs = || classes.map(|c| tricolor_alloc::class_stats(c).unwrap().allocs);
    let denied = std::env::var_os(DENY_MEMBARRIER).is_some();
    let from_start = std::env::var_os("TRICOLOR_PROFILE_RATE").is_some();
    if from_start {
        // The environment's rate: the slabs were built with their counters armed.
        assert_eq!(profile::rate(), 4096);
    } else {
        profile::set_rate(4096);
    }
    // Which way the small allocations are sampled: by the per-CPU lists' counters, unless
    // they could not be armed (no membarrier, and the rate set after the slabs were built).
    let per_cpu = tricolor_alloc::front_end() == tricolor_alloc::FrontEnd::PerCpu;
    assert_eq!(
        profile::sampled_by_counters(),
        per_cpu && (!denied || from_start),
        "per-CPU {per_cpu}, denied {denied}, from the start {from_start}"
    );
    let before = allocs();
    // Nothing else allocates from these classes: a count far from zero is a counter's start
    // or jump left out of its record.
    assert!(
        before.iter().all(|&n| n < 1 << 20),
        "counts before the test: {before:?}"
    );
    let large_before = tricolor_alloc::stats().large_allocs;
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut last = allocs();
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                let now = allocs();
                for i in 0..2 {
                    assert!(
                        now[i] >= last[i],
                        "a count went back: {last:?} then {now:?}"
                    );
                    let most = before[i] + (THREADS * ROUNDS * BLOCKS) as u64;
                    assert!(now[i] <= most, "a count ran ahead: {now:?}, at most {most}");
                }
                last = now;
                reads += 1;
            }
            reads
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut held: Vec<*mut u8> = Vec::with_capacity(BLOCKS);
                    for r in 0..ROUNDS {
                        let size = SIZES[(r + t) % 2];
                        let layout = std::alloc::Layout::from_size_align(size, 8).unwrap();
                        for b in 0..BLOCKS {
                            // SAFETY: a non-zero layout.
                            let p = unsafe { std::alloc::alloc(layout) };
                            assert!(!p.is_null());
                            // SAFETY: `size` bytes, ours.
                            unsafe { p.write_bytes((b ^ t) as u8, size) };
                            held.push(p);
                        }
                        for (b, p) in held.drain(..).enumerate() {
                            // SAFETY: allocated above with this layout; freed once.
                            unsafe {
                                assert_eq!(*p.add(size - 1), (b ^ t) as u8, "a block changed");
                                std::alloc::dealloc(p, layout);
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    let after = allocs();
    let sampled = tricolor_alloc::stats().large_allocs - large_before;
    let small: u64 = (0..2).map(|i| after[i] - before[i]).sum();
    let total = (THREADS * ROUNDS * BLOCKS) as u64;
    // Every allocation is a small one of these classes or a sample (a large allocation; the
    // test makes no other).
    assert!(
        small <= total && small + sampled >= total,
        "{small} small allocations and {sampled} samples for {total} allocations"
    );
    // And the samples came at the rate: a block of `s` bytes is sampled with probability
    // 1 - e^(-s/4096); about 16,500 are expected here, with a standard deviation near 130,
    // so 10% is a dozen of them. (An allocation served while its counter stays tripped is
    // not eligible: when the counters' moves only tried their lock, the reads here cost
    // four samples in five.)
    let expected: f64 = classes
        .iter()
        .map(|&c| {
            let size = tricolor_alloc::size_class::CLASSES[c].size as f64;
            total as f64 / 2.0 * (1.0 - (-size / 4096.0).exp())
        })
        .sum();
    let r = sampled as f64 / expected;
    assert!(
        (0.9..1.1).contains(&r),
        "{sampled} samples where {expected:.0} were expected"
    );

    // Sampling off: the counters were left armed, and trip into nothing. Every allocation
    // is a small one, counted, and none is sampled.
    profile::set_rate(0);
    let before = allocs();
    let large_before = tricolor_alloc::stats().large_allocs;
    let layout = std::alloc::Layout::from_size_align(SIZES[0], 8).unwrap();
    for _ in 0..ROUNDS {
        // SAFETY: a non-zero layout; freed at once with it.
        unsafe {
            let p = std::hint::black_box(std::alloc::alloc(layout));
            std::alloc::dealloc(p, layout)
        };
    }
    assert_eq!(
        tricolor_alloc::stats().large_allocs,
        large_before,
        "sampled while off"
    );
    assert_eq!(allocs()[0] - before[0], ROUNDS as u64);
}

#[test]
fn sampling_keeps_counts_exact() {
    child_succeeds("child_counts_while_sampling", &[]);
}

/// Where `membarrier` is refused, a rate set after the first allocation cannot arm the
/// counters on other CPUs, and the per-CPU lists sample by the out-of-line countdown instead:
/// counts stay exact and the samples come at the rate all the same.
#[test]
fn sampling_keeps_counts_exact_without_membarrier() {
    child_succeeds("child_counts_while_sampling", &[(DENY_MEMBARRIER, "1")]);
}

/// Sampling from the start (`TRICOLOR_PROFILE_RATE`) arms the counters as the slabs are
/// built, so it samples by the counters even where `membarrier` is refused; and where it is
/// not.
#[test]
fn sampling_from_the_start_keeps_counts_exact() {
    let rate = ("TRICOLOR_PROFILE_RATE", "4096");
    child_succeeds("child_counts_while_sampling", &[rate]);
    child_succeeds(
        "child_counts_while_sampling",
        &[rate, (DENY_MEMBARRIER, "1")],
    );
}

/// Samples taken on a stack that is not the thread's (a coroutine's, made with
/// `makecontext`) are unwound by libgcc: the walkers read only inside the thread's own stack.
/// Every allocation is sampled, with the cached unwinder and with frame pointers.
#[test]
#[ignore = "run by samples_on_a_coroutine_stack in a child (it samples every allocation)"]
fn child_samples_on_a_coroutine_stack() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SUM: AtomicU64 = AtomicU64::new(0);
    extern "C" fn on_coroutine() {
        for i in 0..1000u64 {
            let v = std::hint::black_box(vec![i as u8; 64 + i as usize % 200]);
            SUM.fetch_add(u64::from(v[0]), Ordering::Relaxed);
        }
    }
    profile::set_rate(1);
    let stack = vec![0u8; 256 * 1024];
    // SAFETY: zeroed ucontext_t values are valid inputs to getcontext, which fills them; the
    // coroutine runs on `stack`, which outlives it, and returns to `main` through uc_link.
    unsafe {
        let mut main: libc::ucontext_t = std::mem::zeroed();
        let mut co: libc::ucontext_t = std::mem::zeroed();
        assert_eq!(libc::getcontext(&mut co), 0);
        co.uc_stack.ss_sp = stack.as_ptr() as *mut libc::c_void;
        co.uc_stack.ss_size = stack.len();
        co.uc_link = &mut main;
        libc::makecontext(&mut co, on_coroutine, 0);
        assert_eq!(libc::swapcontext(&mut main, &co), 0);
    }
    assert_eq!(
        SUM.load(Ordering::Relaxed),
        (0..1000u64).map(|i| i as u8 as u64).sum::<u64>()
    );
    profile::set_rate(0);
    let p = read(&profile::encode());
    assert!(
        totals(&p, "on_coroutine")[0] > 0,
        "the coroutine's samples are in"
    );
}

#[test]
fn samples_on_a_coroutine_stack() {
    child_succeeds("child_samples_on_a_coroutine_stack", &[]);
    child_succeeds(
        "child_samples_on_a_coroutine_stack",
        &[("TRICOLOR_PROFILE_FP", "1")],
    );
}
