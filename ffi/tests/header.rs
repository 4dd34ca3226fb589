//! The checked-in header `ffi/include/tricolor.h` is exactly what cbindgen generates from the
//! crate. Run with `TRICOLOR_BLESS=1` to rewrite it after changing the C API.

use std::path::PathBuf;

#[test]
fn checked_in_header_is_current() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen failed")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = crate_dir.join("include/tricolor.h");
    if std::env::var_os("TRICOLOR_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "ffi/include/tricolor.h is stale: run `TRICOLOR_BLESS=1 cargo test -p tricolor-ffi --test header` and commit it"
    );
}
