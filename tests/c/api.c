/* The whole allocator API of tricolor.h, linked against libtricolor (shared or static). */
#include "tricolor.h"
#include "check.h"
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
}
static int intact(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed)) return 0;
    return 1;
}

int main(void) {
    /* malloc(0) is a unique pointer; free(NULL) is nothing. */
    void *z1 = tc_malloc(0), *z2 = tc_malloc(0);
    CHECK(z1 && z2 && z1 != z2);
    tc_free(z1);
    tc_free(z2);
    tc_free(NULL);
    CHECK(tc_malloc_usable_size(NULL) == 0);

    /* Sizes from 1 byte to 2 MiB: alignment, usable size, contents; sized and unsized free. */
    unsigned seed = 1;
    for (size_t n = 1; n <= (2u << 20); n = n < 64 ? n + 1 : n * 5 / 4, seed++) {
        unsigned char *p = tc_malloc(n);
        CHECK(p != NULL);
        if (!p) continue;
        CHECK((uintptr_t)p % (n > 8 ? 16 : 8) == 0);
        CHECK(tc_malloc_usable_size(p) >= n);
        fill(p, n, seed);
        CHECK(intact(p, n, seed));
        if (seed % 2) tc_free_sized(p, n); else tc_free(p);
    }

    /* Alignment sweep: every power of two to 1 MiB, odd sizes, both entry points. */
    static const size_t sizes[] = {1, 3, 17, 1000, 4097, 70001};
    for (size_t a = 1; a <= (1u << 20); a <<= 1) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            unsigned char *p = tc_aligned_alloc(a, n);
            CHECK(p && (uintptr_t)p % a == 0 && tc_malloc_usable_size(p) >= n);
            if (p) { memset(p, 0x5a, n); tc_free(p); }
            void *q = (void *)0x1;
            int rc = tc_posix_memalign(&q, a, n);
            if (a >= sizeof(void *)) {
                CHECK(rc == 0 && (uintptr_t)q % a == 0 && tc_malloc_usable_size(q) >= n);
                if (rc == 0) { memset(q, 0xa5, n); tc_free(q); }
            } else {
                CHECK(rc == EINVAL && q == (void *)0x1);
            }
        }
    }
    errno = 0;
    CHECK(tc_aligned_alloc(24, 10) == NULL && errno == EINVAL);
    void *keep = (void *)0x1;
    CHECK(tc_posix_memalign(&keep, 24, 10) == EINVAL && keep == (void *)0x1);

    /* realloc: growth and shrink keep contents; NULL allocates; size 0 frees. */
    size_t n = 10;
    unsigned char *r = tc_realloc(NULL, n);
    CHECK(r != NULL);
    fill(r, n, 7);
    for (size_t m = 13; m <= (4u << 20); m = m * 3 / 2) {
        unsigned char *r2 = tc_realloc(r, m);
        CHECK(r2 && intact(r2, n, 7));
        if (!r2) break;
        r = r2;
        fill(r, m, 7);
        n = m;
    }
    for (size_t m = n / 2; m >= 5; m = m / 3) {
        unsigned char *r2 = tc_realloc(r, m);
        CHECK(r2 && intact(r2, m, 7));
        r = r2;
    }
    CHECK(tc_realloc(r, 0) == NULL);

    /* calloc zeroes, also over memory that was dirty before. */
    for (int round = 0; round < 2; round++) {
        for (size_t m = 8; m <= (1u << 20); m *= 4) {
            unsigned char *d = tc_malloc(m);
            memset(d, 0xff, m);
            tc_free(d);
            unsigned char *c = tc_calloc(m / 8, 8);
            int zero = c != NULL;
            for (size_t i = 0; c && i < m; i++) zero &= c[i] == 0;
            CHECK(zero);
            tc_free(c);
        }
    }

    /* Overflow and exhaustion: NULL with ENOMEM; a failed realloc keeps the block. */
    errno = 0;
    CHECK(tc_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(tc_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    unsigned char *k = tc_malloc(100);
    fill(k, 100, 9);
    errno = 0;
    CHECK(tc_realloc(k, SIZE_MAX - 4096) == NULL && errno == ENOMEM && intact(k, 100, 9));
    tc_free(k);
    void *big = NULL;
    CHECK(tc_posix_memalign(&big, 64, SIZE_MAX / 2) == ENOMEM && big == NULL);
    errno = 0;
    CHECK(tc_aligned_alloc(4096, SIZE_MAX - 100) == NULL && errno == ENOMEM);

    /* Statistics: the parts add up to mapped; live objects show; release returns pages. */
    tc_alloc_stats_t st;
    CHECK(tc_alloc_stats(&st) == 0 && st.mapped > 0);
    CHECK(st.in_use_small + st.in_use_large + st.cached_front + st.cached_transfer +
              st.cached_central + st.span_waste + st.free_dirty + st.released + st.metadata ==
          st.mapped);
    errno = 0;
    CHECK(tc_alloc_stats(NULL) == -1 && errno == EINVAL);
    void *held[1000];
    for (int i = 0; i < 1000; i++) held[i] = tc_malloc(200);
    unsigned char *large = tc_malloc(8u << 20);
    memset(large, 1, 8u << 20);
    tc_alloc_stats_t st2;
    uint64_t v = 0, small = 0;
    CHECK(tc_alloc_stats(&st2) == 0);
    CHECK(st2.in_use_small >= st.in_use_small + 1000 * 200);
    CHECK(st2.in_use_large >= st.in_use_large + (8u << 20));
    CHECK(st2.large_allocs == st.large_allocs + 1);
    CHECK(st2.small_allocs >= st.small_allocs + 1000);
    CHECK(tc_stat_get("small.allocs", &v) == 0 && v >= st2.small_allocs);
    int classes_in_use = 0;
    for (int c = 0; c < TC_NUM_CLASSES; c++) {
        tc_class_stats_t cs;
        CHECK(tc_class_stats(c, &cs) == 0 && cs.size > 0);
        classes_in_use += cs.in_use > 0;
    }
    CHECK(classes_in_use > 0);
    /* Named statistics: the same figures by name, every listed name readable. */
    small = 0;
    CHECK(tc_stat_get("in_use.large", &v) == 0 && v >= st.in_use_large + (8u << 20));
    CHECK(tc_stat_get("in_use.small", &small) == 0 && small >= st.in_use_small + 1000 * 200);
    CHECK(tc_stat_get("in_use", &v) == 0 && v >= small + (8u << 20));
    CHECK(tc_stat_get("large.allocs", &v) == 0 && v == st.large_allocs + 1);
    CHECK(tc_stat_get("class.0.size", &v) == 0 && v > 0);
    int names = 0;
    for (const char *n; (n = tc_stat_name(names)) != NULL; names++) CHECK(tc_stat_get(n, &v) == 0);
    CHECK(names >= 20 && tc_stat_name(-1) == NULL);
    errno = 0;
    CHECK(tc_stat_get("no.such.stat", &v) == -1 && errno == ENOENT);
    errno = 0;
    CHECK(tc_stat_get("class.999.size", &v) == -1 && errno == ENOENT);
    errno = 0;
    CHECK(tc_stat_get(NULL, &v) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(tc_stat_get("mapped", NULL) == -1 && errno == EINVAL);
    tc_class_stats_t cs;
    errno = 0;
    CHECK(tc_class_stats(TC_NUM_CLASSES, &cs) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(tc_class_stats(-1, &cs) == -1 && errno == EINVAL);
    for (int i = 0; i < 1000; i++) tc_free(held[i]);
    tc_free(large);
    CHECK(tc_release_memory() >= (8u << 20));
    tc_alloc_stats_t st3;
    CHECK(tc_alloc_stats(&st3) == 0 && st3.free_dirty == 0 && st3.released >= (8u << 20));
    CHECK(st3.small_frees >= st2.small_frees + 1000 && st3.small_allocs >= st2.small_allocs);
    /* High-water marks outlive what they measured. */
    CHECK(st3.in_use_large + (8u << 20) <= st2.in_use_large);
    CHECK(st3.large_peak_bytes >= st2.in_use_large && st3.large_peak_count >= 1);
    CHECK(tc_stat_get("large.peak_bytes", &v) == 0 && v == st3.large_peak_bytes);

    /* The memory limit: off by default, settable, readable with a negative value. */
    CHECK(tc_set_memory_limit(-1) == TC_NO_LIMIT);
    CHECK(tc_set_memory_limit(1ll << 40) == TC_NO_LIMIT);
    CHECK(tc_set_memory_limit(-1) == (1ll << 40));
    CHECK(tc_set_memory_limit(TC_NO_LIMIT) == (1ll << 40));

    /* Heap profiles: off until asked; sampled blocks are ordinary blocks to their users. */
    CHECK(tc_profile_set_rate(4096) == 0);
    void *sampled[256];
    for (int i = 0; i < 256; i++) {
        sampled[i] = tc_malloc(200);
        fill(sampled[i], 200, (unsigned)i);
    }
    for (int i = 0; i < 256; i++) CHECK(intact(sampled[i], 200, (unsigned)i));
    for (int i = 0; i < 256; i += 2) tc_free(sampled[i]);
    char path[] = "/tmp/tricolor-api-profile-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    CHECK(tc_profile_dump(path) == 0);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size > 100);
    unlink(path);
    errno = 0;
    CHECK(tc_profile_dump(NULL) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(tc_profile_dump("/nonexistent-dir/heap.pb") == -1 && errno == ENOENT);
    CHECK(tc_profile_set_rate(0) == 4096);
    for (int i = 1; i < 256; i += 2) tc_free(sampled[i]);

    return check_summary("api");
}
