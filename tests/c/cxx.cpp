// C++ under LD_PRELOAD: every form of operator new/delete goes to Tricolor, and running out of
// memory throws std::bad_alloc (after the new_handler) instead of returning NULL.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <malloc.h>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

static int run, failed;
#define CHECK(c)                                                                  \
    do {                                                                          \
        run++;                                                                    \
        if (!(c)) {                                                               \
            failed++;                                                             \
            std::fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #c); \
        }                                                                         \
    } while (0)

struct alignas(256) Wide {
    char bytes[300];
};

static int handler_calls;
static void handler() {
    handler_calls++;
    std::set_new_handler(nullptr);  // next failure throws
}

// An allocation no heap can satisfy must end in std::bad_alloc, not NULL. The pointer escapes
// through a volatile store: C++14 lets a compiler drop an unused new/delete pair entirely.
static char *volatile escaped;
static bool huge_new_throws_bad_alloc() {
    try {
        volatile std::size_t huge = SIZE_MAX / 2;  // volatile: GCC rejects the size statically
        escaped = new char[huge];
        delete[] escaped;
    } catch (const std::bad_alloc &) {
        return true;
    }
    return false;
}

// An alignment that is not a power of two is undefined behaviour in C++; the aligned operator
// new throws std::bad_alloc for it, and its nothrow form returns NULL, as libstdc++'s own do,
// for small and page-sized alignments alike (none may reach the page heap).
static bool crooked_alignment_is_refused(std::size_t size, std::size_t align) {
    volatile std::size_t a = align;
    bool threw = false;
    try {
        void *p = ::operator new(size, std::align_val_t(a));
        ::operator delete(p, std::align_val_t(a));
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    return threw && ::operator new(size, std::align_val_t(a), std::nothrow) == nullptr &&
           ::operator new[](size, std::align_val_t(a), std::nothrow) == nullptr;
}

int main() {
    char *c = new char[100];
    CHECK(malloc_usable_size(c) == 112);  // Tricolor's class; glibc would say 104
    delete[] c;

    int *i = new int(7);
    CHECK(*i == 7);
    delete i;  // sized delete with -fsized-deallocation (default from C++14)

    Wide *w = new Wide;
    CHECK(reinterpret_cast<std::uintptr_t>(w) % 256 == 0);
    delete w;
    Wide *ws = new Wide[5];
    CHECK(reinterpret_cast<std::uintptr_t>(ws) % 256 == 0);
    delete[] ws;

    int *n = new (std::nothrow) int[10];
    CHECK(n != nullptr);
    delete[] n;
    volatile std::size_t half = SIZE_MAX / 2;  // volatile: GCC rejects the size statically
    CHECK(new (std::nothrow) char[half] == nullptr);
    Wide *wn = new (std::nothrow) Wide;
    CHECK(wn && reinterpret_cast<std::uintptr_t>(wn) % 256 == 0);
    delete wn;

    std::map<std::string, std::vector<std::string>> m;
    for (int k = 0; k < 20000; k++) m[std::to_string(k % 977)].push_back(std::string(k % 200, 'x'));
    std::size_t total = 0;
    for (auto &kv : m) total += kv.second.size();
    CHECK(total == 20000);
    auto shared = std::make_shared<std::vector<int>>(100000, 3);
    CHECK((*shared)[99999] == 3);

    CHECK(crooked_alignment_is_refused(16, 3));
    CHECK(crooked_alignment_is_refused(16, 24));
    CHECK(crooked_alignment_is_refused(100000, 3 * 8192));
    CHECK(crooked_alignment_is_refused(16, 0));

    CHECK(huge_new_throws_bad_alloc());
    std::set_new_handler(handler);
    CHECK(huge_new_throws_bad_alloc() && handler_calls == 1);

    std::printf("cxx: %d passed, %d failed\n", run - failed, failed);
    return failed ? 1 : 0;
}
