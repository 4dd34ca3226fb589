//! Builds the C++ half of `operator new` (new-handler loop, `std::bad_alloc`).
fn main() {
    println!("cargo:rerun-if-changed=src/new.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/new.cpp")
        .flag_if_supported("-fno-rtti")
        .compile("tricolor_new");
}
