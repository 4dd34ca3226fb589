//! The garbage collector from C (`tests/c/gc.c` against `tricolor.h`), in verification mode,
//! through the shared and the static library; and misuse that must abort with a message.

use std::process::Command;
use tricolor_tests::{Link, assert_ok, compile, run};

fn gc_run(link: Link, mode: Option<&str>) -> std::process::Output {
    let exe = compile("gc.c", link);
    let mut cmd = Command::new(exe);
    cmd.env("TRICOLOR_GC_VERIFY", "1").env_remove("GOGC");
    if let Some(m) = mode {
        cmd.arg(m);
    }
    run(cmd, false)
}

#[test]
fn gc_api_through_the_shared_library() {
    let o = gc_run(Link::Shared, None);
    assert_ok("gc.c (libtricolor.so)", &o);
    assert!(String::from_utf8_lossy(&o.stdout).contains(" 0 failed"));
}

#[test]
fn gc_api_through_the_static_library() {
    assert_ok("gc.c (libtricolor.a)", &gc_run(Link::Static, None));
}

fn misuse(mode: &str, message: &str) {
    let o = gc_run(Link::Shared, Some(mode));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{mode}: should abort\n{err}");
    assert!(err.contains(message), "{mode}: no '{message}' in:\n{err}");
    // The message is the whole report: a Rust panic or allocation failure is no clear error.
    for rust in ["panicked", "stack backtrace", "memory allocation of"] {
        assert!(!err.contains(rust), "{mode}: '{rust}' in:\n{err}");
    }
    if let Some(ptr) = err.lines().find_map(|l| l.strip_prefix("PTR ")) {
        let msg = err.lines().find(|l| l.contains(message)).unwrap();
        assert!(
            msg.contains(ptr.trim()),
            "{mode}: message does not name {ptr}:\n{err}"
        );
    }
}

#[test]
fn storing_a_foreign_pointer_aborts() {
    misuse("write-value", "is not an object of this heap");
}

#[test]
fn writing_outside_the_object_aborts() {
    misuse("write-slot", "is not inside heap object");
}

/// A store past the type's size (inside its size class's slot) would never be scanned, and
/// its target would be collected while reachable.
#[test]
fn writing_past_the_type_inside_the_slot_aborts() {
    misuse("write-past-type", "is not a pointer slot of its type");
    misuse("write-array-tail", "is not a pointer slot of its type");
}

#[test]
fn writing_a_pointer_into_a_data_field_aborts() {
    misuse("write-data-field", "is not a pointer slot of its type");
    misuse("write-bytes", "is not a pointer slot of its type");
}

/// `tc_write_unchecked` skips the checks, except in verification mode, where a runtime's
/// stress tests rely on them.
#[test]
fn an_unchecked_store_into_a_data_field_aborts_under_verification() {
    misuse(
        "write-unchecked-data-field",
        "is not a pointer slot of its type",
    );
}

/// A NULL root slot would be read through by the next collection: refused where it is given.
#[test]
fn a_null_root_slot_aborts() {
    misuse("push-null", "tc_push_root(): NULL root slot");
    misuse("visit-null", "tc_visit_root(): NULL root slot");
}

#[test]
fn popping_more_roots_than_pushed_aborts() {
    misuse("pop", "popping 2 roots but only 1 are pushed");
}

#[test]
fn using_a_detached_mutator_aborts() {
    misuse("detached", "is detached");
}

#[test]
fn ephemeron_misuse_aborts() {
    misuse("ephemeron-key", "is not an object of this heap");
}

#[test]
fn finalizer_misuse_aborts() {
    misuse("finalizer-twice", "already has a finalizer");
    misuse("cleanup-interior", "points inside an object");
}

#[test]
fn weak_handle_misuse_aborts() {
    misuse("weak-null", "tc_weak_get(): NULL weak handle");
    misuse("weak-foreign", "weak_new(): ");
}

#[test]
fn pool_misuse_aborts() {
    misuse("pool-null", "tc_pool_get(): NULL pool");
    misuse("pool-foreign", "is not an object of the pool's heap");
    misuse(
        "pool-type",
        "is an object of type \"node\"; the pool holds \"ref\"",
    );
}

#[test]
fn an_invalid_type_layout_aborts() {
    misuse("type", "tc_type_new(): type \"crooked\": pointer offset 4");
}

/// A size no object can have (2^47 bytes or more: the page heap maps the 47-bit user address
/// space) is refused when the type is registered, with a message naming the type, instead of
/// failing later in an allocation or in building the type's pointer map.
#[test]
fn a_type_larger_than_any_object_aborts() {
    misuse(
        "type-too-large",
        "tc_type_new(): type \"big\": size 18446744073709551615 is larger than any object can be",
    );
    misuse(
        "type-size-limit",
        "tc_type_new(): type \"limit\": size 140737488355328 is larger than any object can be",
    );
}

/// Pointer offsets that cannot be read (a NULL array, or more of them than any type has
/// words) abort with a message naming the type, before anything reads them.
#[test]
fn unreadable_pointer_offsets_abort() {
    misuse(
        "type-null-offsets",
        "tc_type_new(): type \"holey\": ptr_offsets is NULL but n_ptrs is 2",
    );
    misuse(
        "type-too-many-offsets",
        "tc_type_new(): type \"many\": 2305843009213693951 pointer offsets, more than",
    );
}
