//! Type registration at its limits: a size no object can have is refused when the type is
//! registered; the largest accepted size costs a pointer map as long as its pointer slots
//! reach, not as long as the type, and allocating it returns null.

use tricolor_gc::{Config, Heap, Mutator, TypeError};

fn heap() -> &'static Heap {
    Heap::new(Config {
        verify: true,
        ..Config::default()
    })
}

/// 2^47 bytes: the user address space the heap maps objects into.
const ADDRESS_SPACE: usize = 1 << 47;

#[test]
fn sizes_no_object_can_have_are_refused() {
    let h = heap();
    assert_eq!(
        h.register_type("max", usize::MAX, &[]),
        Err(TypeError::TooLarge(usize::MAX))
    );
    assert_eq!(
        h.register_type("space", ADDRESS_SPACE, &[0]),
        Err(TypeError::TooLarge(ADDRESS_SPACE))
    );
    let msg = TypeError::TooLarge(ADDRESS_SPACE).to_string();
    assert!(
        msg.starts_with("size 140737488355328 is larger than any object can be"),
        "{msg}"
    );
}

#[test]
fn the_largest_type_registers_and_allocates_as_null() {
    let h = heap();
    // Its pointer map covers word 1 only: registering it allocates no map of 2^47 / 512 bytes.
    let largest = h
        .register_type("largest", ADDRESS_SPACE - 1, &[0, 8])
        .unwrap();
    assert_eq!(h.type_info(largest).unwrap().size, ADDRESS_SPACE - 1);
    let node = h.register_type("node", 24, &[0, 8]).unwrap();
    let m = Mutator::attach(h);
    assert!(m.alloc(largest).is_null());
    assert!(m.alloc_array(largest, 1).is_null());
    assert!(m.alloc_array(largest, 2).is_null());
    for len in [usize::MAX, usize::MAX / 8 + 1, 1 << 61, ADDRESS_SPACE] {
        assert!(m.alloc_array(largest, len).is_null(), "{len}");
        assert!(m.alloc_array(node, len).is_null(), "{len}");
        assert!(m.alloc_bytes(len).is_null(), "{len}");
    }
    // The heap still serves.
    assert!(!m.alloc(node).is_null());
}

#[test]
fn pointer_offsets_a_pointer_map_cannot_hold_are_refused() {
    let h = heap();
    let beyond = (u32::MAX as usize + 1) * 8;
    assert_eq!(
        h.register_type("far", beyond + 8, &[0, beyond]),
        Err(TypeError::OffsetTooLarge(beyond))
    );
    let msg = TypeError::OffsetTooLarge(beyond).to_string();
    assert!(
        msg.contains("is beyond the largest a pointer map holds (34359738360)"),
        "{msg}"
    );
    // A slot far into a large type: the map reaches it.
    let far = h.register_type("far", 1 << 40, &[1 << 20]).unwrap();
    assert_eq!(h.type_info(far).unwrap().size, 1 << 40);
}
