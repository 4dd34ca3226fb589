//! Misuse aborts with a message naming the pointer, instead of corrupting the heap. Each case
//! runs in a child process (this test binary re-run with `TRICOLOR_MISUSE` set) and the parent
//! checks for SIGABRT and the message.

use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use tricolor_alloc::Tricolor;

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

/// In the child: commits the misuse and prints (on stderr) the pointer it used first (the parent needs it
/// for the expected message). In the parent: runs the child and returns (pointer, stderr).
fn run_case(name: &str, case: fn() -> usize) -> Option<(String, String)> {
    if std::env::var("TRICOLOR_MISUSE").as_deref() == Ok(name) {
        case();
        // Reaching here means the misuse was not caught.
        std::process::exit(3);
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("TRICOLOR_MISUSE", name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.signal(),
        Some(libc_sigabrt()),
        "{name}: child did not abort; stderr:\n{stderr}"
    );
    let ptr = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PTR "))
        .expect("child printed no pointer");
    Some((ptr.to_string(), stderr))
}

/// Runs `case` as [`run_case`] does and checks that the allocator named its pointer invalid.
fn expect_invalid_pointer(name: &str, case: fn() -> usize) {
    if let Some((ptr, err)) = run_case(name, case) {
        assert!(err.contains(&format!("invalid pointer 0x{ptr}")), "{err}");
    }
}

fn libc_sigabrt() -> i32 {
    6
}

fn announce(p: *const u8) -> usize {
    eprintln!("PTR {:x}", p as usize);
    p as usize
}

fn l(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

#[test]
fn double_free_of_a_small_block_aborts() {
    if let Some((ptr, err)) = run_case("double_free_of_a_small_block_aborts", || {
        // SAFETY: deliberately freeing twice; the allocator must abort on the second call.
        unsafe {
            let p = GLOBAL.alloc(l(48));
            announce(p);
            GLOBAL.dealloc(p, l(48));
            GLOBAL.dealloc(p, l(48));
        }
        0
    }) {
        assert!(
            err.contains(&format!(
                "tricolor: dealloc(): double free detected 0x{ptr}"
            )),
            "{err}"
        );
    }
}

#[test]
fn double_free_after_the_block_left_the_thread_cache_aborts() {
    if let Some((ptr, err)) = run_case(
        "double_free_after_the_block_left_the_thread_cache_aborts",
        || {
            // SAFETY: deliberate double free, after enough frees to push the block to the central
            // list (the canary travels with it).
            unsafe {
                let first = GLOBAL.alloc(l(64));
                announce(first);
                let rest: Vec<_> = (0..500).map(|_| GLOBAL.alloc(l(64))).collect();
                GLOBAL.dealloc(first, l(64));
                for p in rest {
                    GLOBAL.dealloc(p, l(64));
                }
                GLOBAL.dealloc(first, l(64));
            }
            0
        },
    ) {
        assert!(
            err.contains(&format!("double free detected 0x{ptr}")),
            "{err}"
        );
    }
}

#[test]
fn double_free_of_a_large_block_aborts() {
    if let Some((ptr, err)) = run_case("double_free_of_a_large_block_aborts", || {
        // SAFETY: deliberate double free.
        unsafe {
            let p = GLOBAL.alloc(l(100_000));
            announce(p);
            GLOBAL.dealloc(p, l(100_000));
            GLOBAL.dealloc(p, l(100_000));
        }
        0
    }) {
        assert!(
            err.contains(&format!("tricolor: dealloc(): invalid pointer 0x{ptr}")),
            "{err}"
        );
    }
}

#[test]
fn interior_pointer_aborts() {
    if let Some((ptr, err)) = run_case("interior_pointer_aborts", || {
        // SAFETY: deliberately freeing a pointer into the middle of a block.
        unsafe {
            let p = GLOBAL.alloc(l(256)).add(8);
            announce(p);
            tricolor_alloc::free(p);
        }
        0
    }) {
        assert!(
            err.contains(&format!("tricolor: free(): invalid pointer 0x{ptr}")),
            "{err}"
        );
    }
}

#[test]
fn foreign_pointer_aborts() {
    if let Some((ptr, err)) = run_case("foreign_pointer_aborts", || {
        let on_stack = [0u64; 4];
        let p = on_stack.as_ptr().cast::<u8>().cast_mut();
        announce(p);
        // SAFETY: deliberately freeing memory Tricolor never handed out.
        unsafe { tricolor_alloc::free(p) };
        0
    }) {
        assert!(
            err.contains(&format!("tricolor: free(): invalid pointer 0x{ptr}")),
            "{err}"
        );
    }
}

/// An object-aligned address past everything handed out, announced. A fresh process has carved
/// one batch (32 blocks) of the 48-byte class, out of a span of 170 objects: the block 100
/// places further is on a boundary but was never handed out, so it is neither live nor free.
fn never_handed_out() -> *mut u8 {
    // SAFETY: a non-zero layout; the address computed stays inside the block's span (a few
    // KiB further), where the caller misuses it.
    let q = unsafe { GLOBAL.alloc(l(48)).add(48 * 100) };
    announce(q);
    q
}

#[test]
fn never_allocated_block_in_a_live_span_aborts() {
    expect_invalid_pointer("never_allocated_block_in_a_live_span_aborts", || {
        // SAFETY: deliberately freeing a block that was never handed out.
        unsafe { tricolor_alloc::free(never_handed_out()) };
        0
    });
}

#[test]
fn never_allocated_block_given_to_dealloc_aborts() {
    expect_invalid_pointer("never_allocated_block_given_to_dealloc_aborts", || {
        // SAFETY: as above, through the sized path (Rust's `dealloc`, whose layout names the
        // span's class, so only the bump mark tells the block was never handed out).
        unsafe { GLOBAL.dealloc(never_handed_out(), l(48)) };
        0
    });
}

#[test]
fn pointer_beyond_the_address_space_aborts() {
    expect_invalid_pointer("pointer_beyond_the_address_space_aborts", || {
        // SAFETY: deliberately freeing an address 2^47 above a live block: its low 47 bits
        // are the block's, so a lookup modulo 2^47 finds the block's span, which must not be
        // taken for its owner.
        unsafe {
            let p = GLOBAL.alloc(l(48));
            let q = (p as usize + (1usize << 47)) as *mut u8;
            announce(q);
            GLOBAL.dealloc(q, l(48));
        }
        0
    });
}

#[test]
fn mismatched_layout_aborts() {
    if let Some((ptr, err)) = run_case("mismatched_layout_aborts", || {
        // SAFETY: deliberately freeing with a layout of another size class.
        unsafe {
            let p = GLOBAL.alloc(l(24));
            announce(p);
            GLOBAL.dealloc(p, l(4000));
        }
        0
    }) {
        assert!(
            err.contains(&format!(
                "size or alignment does not match the allocation 0x{ptr}"
            )),
            "{err}"
        );
    }
}
