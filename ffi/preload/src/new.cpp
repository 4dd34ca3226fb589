// The part of C++ operator new that needs C++: retry through the installed new_handler and
// throw std::bad_alloc when there is none. The exported operator symbols are Rust functions
// (src/lib.rs) calling these, because rustc's export list would hide symbols defined here.
#include <cstddef>
#include <new>

extern "C" void *tc_malloc(std::size_t size);
extern "C" void *tc_aligned_alloc(std::size_t align, std::size_t size);

static void *new_impl(std::size_t size, std::size_t align) {
    for (;;) {
        void *p = align ? tc_aligned_alloc(align, size) : tc_malloc(size);
        if (p) return p;
        std::new_handler handler = std::get_new_handler();
        if (!handler) throw std::bad_alloc();
        handler();
    }
}

extern "C" void *tricolor_cxx_new(std::size_t size) { return new_impl(size, 0); }

extern "C" void *tricolor_cxx_new_aligned(std::size_t size, std::size_t align) {
    return new_impl(size, align);
}

extern "C" void *tricolor_cxx_new_nothrow(std::size_t size, std::size_t align) noexcept {
    try {
        return new_impl(size, align);
    } catch (...) {
        return nullptr;
    }
}
