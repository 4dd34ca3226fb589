//! libtricolor.so is linked with `-z nodelete`: an allocator must outlive every block and every
//! thread that used it. Without it, `dlclose` would unmap the code that a live thread's exit
//! (its cache flush, a pthread-key destructor) and `fork` (the atfork handlers) still call.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
