//! libtricolor_malloc.so is linked with `-z nodelete`, like libtricolor.so (see ffi/build.rs):
//! a program may also dlopen and dlclose it.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
