//! C and C++ programs under `LD_PRELOAD=libtricolor_malloc.so`: semantics of the whole malloc
//! family, initialisation before `main`, threads, fork and C++ operators. Misuse and hostile
//! environments are `bad_input.rs`.

use std::process::Command;
use tricolor_tests::{Link, assert_ok, compile, libraries, run};

#[test]
fn c_program_runs_on_tricolor() {
    let exe = compile("preload.c", Link::None);
    let o = run(Command::new(exe), true);
    assert_ok("preload.c under LD_PRELOAD", &o);
    assert!(String::from_utf8_lossy(&o.stdout).contains(" 0 failed"));
}

#[test]
fn cxx_operators_run_on_tricolor() {
    let exe = compile("cxx.cpp", Link::None);
    let o = run(Command::new(exe), true);
    assert_ok("cxx.cpp under LD_PRELOAD", &o);
}

#[test]
fn the_preload_library_exports_the_whole_family() {
    let o = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(libraries().preload())
        .output();
    let Ok(o) = o else {
        panic!("nm (binutils) is needed for this test")
    };
    let syms = String::from_utf8_lossy(&o.stdout);
    let names = [
        "malloc",
        "free",
        "calloc",
        "realloc",
        "reallocarray",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
        "malloc_usable_size",
        "mallinfo2",
        "mallinfo",
        "malloc_stats",
        "malloc_info",
        "tc_malloc",
        "tc_calloc",
        "tc_realloc",
        "tc_free",
        "tc_free_sized",
        "tc_aligned_alloc",
        "tc_posix_memalign",
        "tc_malloc_usable_size",
        "_Znwm",
        "_Znam",
        "_ZdlPv",
        "_ZdaPv",
        "_ZdlPvm",
        "_ZdaPvm",
        "_ZnwmSt11align_val_t",
        "_ZdlPvSt11align_val_t",
        "_ZdlPvmSt11align_val_t",
        "_ZnwmRKSt9nothrow_t",
        "_ZnwmSt11align_val_tRKSt9nothrow_t",
    ];
    for n in names {
        assert!(
            syms.lines().any(|l| l.ends_with(&format!(" T {n}"))),
            "{n} is not exported"
        );
    }
}
