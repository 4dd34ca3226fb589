//! Finds the C and C++ compilers (the `cc` crate's choice, honouring CC/CXX) for the tests,
//! which compile C programs against `tricolor.h` at run time, after the libraries exist.
fn main() {
    let cc = cc::Build::new().get_compiler();
    let cxx = cc::Build::new().cpp(true).get_compiler();
    println!("cargo:rustc-env=TRICOLOR_TEST_CC={}", cc.path().display());
    println!("cargo:rustc-env=TRICOLOR_TEST_CXX={}", cxx.path().display());
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-env-changed=CXX");
}
