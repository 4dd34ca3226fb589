//! Support for Tricolor's cross-crate tests: build the C-facing libraries, compile C and C++
//! programs against them, run programs with and without the `LD_PRELOAD` library.
//!
//! Why nested cargo: `cargo test` does not build a cdylib that no test depends on, and a test
//! cannot depend on one, so [`libraries`] runs `cargo build -p tricolor-ffi -p
//! tricolor-preload` once per test binary, in the profile and target directory of the tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where the libraries are.
pub struct Libraries {
    /// `target/<profile>`: holds libtricolor.so, libtricolor.a, libtricolor_malloc.so.
    pub dir: PathBuf,
    /// The workspace root.
    pub root: PathBuf,
}

impl Libraries {
    /// `libtricolor_malloc.so`.
    pub fn preload(&self) -> PathBuf {
        self.dir.join("libtricolor_malloc.so")
    }
    /// `ffi/include`.
    pub fn include(&self) -> PathBuf {
        self.root.join("ffi/include")
    }
}

/// Builds (once) and returns the C-facing libraries.
pub fn libraries() -> &'static Libraries {
    static LIBS: OnceLock<Libraries> = OnceLock::new();
    LIBS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        // This test binary is target/<profile>/deps/<name>.
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let target_dir = dir.parent().unwrap();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(&root)
            .args([
                "build",
                "-q",
                "-p",
                "tricolor-ffi",
                "-p",
                "tricolor-preload",
                "--target-dir",
            ])
            .arg(target_dir);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo");
        assert!(status.success(), "building the C libraries failed");
        Libraries { dir, root }
    })
}

/// A fresh scratch directory, unique within this process (tests run in parallel).
pub fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tricolor-test-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// How a C program links Tricolor.
#[derive(Clone, Copy)]
pub enum Link {
    /// Against `libtricolor.so`.
    Shared,
    /// Against `libtricolor.a`.
    Static,
    /// Not at all (the program uses `malloc`, or `dlopen`s the library).
    None,
}

/// Compiles `tests/c/<source>` (C, or C++ for `.cpp`) into an executable and returns its path.
pub fn compile(source: &str, link: Link) -> PathBuf {
    let src = libraries().root.join("tests/c").join(source);
    let out = scratch(&format!("bin-{}", source.replace('.', "-")))
        .join(source.split('.').next().unwrap());
    compile_at(&src, &out, link).unwrap_or_else(|e| panic!("compiling {source} failed:\n{e}"))
}

/// Compiles the C (or C++, for `.cpp`) program `src` against `tricolor.h` into `out`, linked
/// as `link` says; the compiler's messages when it fails.
pub fn compile_at(src: &Path, out: &Path, link: Link) -> Result<PathBuf, String> {
    let libs = libraries();
    let cpp = src.extension().is_some_and(|e| e == "cpp");
    let mut cmd = Command::new(if cpp {
        env!("TRICOLOR_TEST_CXX")
    } else {
        env!("TRICOLOR_TEST_CC")
    });
    cmd.args([
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-D_GNU_SOURCE",
        "-pthread",
    ])
    .arg(if cpp { "-std=c++17" } else { "-std=c11" })
    .arg("-I")
    .arg(libs.include())
    .arg(src)
    .arg("-o")
    .arg(out);
    match link {
        Link::Shared => {
            cmd.arg(format!("-L{}", libs.dir.display()))
                .arg(format!("-Wl,-rpath,{}", libs.dir.display()))
                .arg("-ltricolor");
        }
        Link::Static => {
            cmd.arg(libs.dir.join("libtricolor.a"));
        }
        Link::None => {}
    }
    cmd.args(["-ldl", "-lm"]);
    let o = cmd.output().expect("run the C compiler");
    if o.status.success() {
        Ok(out.to_path_buf())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// Runs `cmd`, with `libtricolor_malloc.so` preloaded when `preload` is set.
pub fn run(mut cmd: Command, preload: bool) -> Output {
    if preload {
        cmd.env("LD_PRELOAD", libraries().preload());
    } else {
        cmd.env_remove("LD_PRELOAD");
    }
    cmd.output().expect("run program")
}

/// Asserts that a run succeeded, showing its output otherwise.
pub fn assert_ok(what: &str, o: &Output) {
    assert!(o.status.success(), "{what} {}", describe(o));
}

/// A run's status and output, for a failure's message.
pub fn describe(o: &Output) -> String {
    format!(
        "failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// The documentation's Rust samples, compiled and run as doc tests of this crate so that they
// cannot drift from the code (`cargo test -p tricolor-tests --doc`); the C samples are
// `tests/docs.rs`'s.

#[doc = include_str!("../../README.md")]
pub mod readme {}

#[doc = include_str!("../../docs/allocator.md")]
pub mod allocator_guide {}

#[doc = include_str!("../../docs/embedding-rust.md")]
pub mod embedding_rust {}

#[doc = include_str!("../../docs/tuning.md")]
pub mod tuning_guide {}

// The guides without Rust samples, so that one added to them is tested too.

#[doc = include_str!("../../docs/README.md")]
pub mod guides_index {}

#[doc = include_str!("../../docs/embedding-c.md")]
pub mod embedding_c {}

#[doc = include_str!("../../docs/design.md")]
pub mod design {}

#[doc = include_str!("../../docs/benchmarks.md")]
pub mod benchmarks {}

#[doc = include_str!("../../docs/testing.md")]
pub mod testing_guide {}
