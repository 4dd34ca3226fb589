//! C programs against `tricolor.h`: the whole allocator API through `libtricolor.so` and
//! `libtricolor.a`, and the library loaded with `dlopen` and first used by several threads.

use std::process::Command;
use tricolor_tests::{Link, assert_ok, compile, libraries, run};

#[test]
fn api_through_the_shared_library() {
    let exe = compile("api.c", Link::Shared);
    let o = run(Command::new(exe), false);
    assert_ok("api.c (libtricolor.so)", &o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 failed"));
}

#[test]
fn api_through_the_static_library() {
    let exe = compile("api.c", Link::Static);
    let o = run(Command::new(exe), false);
    assert_ok("api.c (libtricolor.a)", &o);
}

#[test]
fn dlopen_then_threads() {
    let exe = compile("dlopen.c", Link::None);
    let mut cmd = Command::new(exe);
    cmd.arg(libraries().dir.join("libtricolor.so"));
    assert_ok("dlopen.c", &run(cmd, false));
}

#[test]
fn pkg_config_file_points_at_the_tree() {
    let pc = std::fs::read_to_string(libraries().root.join("ffi/tricolor.pc")).unwrap();
    assert!(pc.contains("includedir=${prefix}/ffi/include"));
    assert!(pc.contains("-ltricolor"));
    assert!(libraries().include().join("tricolor.h").exists());
}
