/* Bad input and hostile environments under LD_PRELOAD=libtricolor_malloc.so, one case per run
 * (tests/tests/bad_input.rs runs each in a child process and checks the documented outcome).
 *
 * Misuse modes must abort with Tricolor's message naming the pointer; they print the pointer
 * first ("PTR 0x...") so the test can look for it in the message. The other modes run checks
 * and exit with the number of failures (check.h). */
#include "check.h"
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Hides a pointer or size from the compiler, which would otherwise reject these misuses at
 * compile time (-Wfree-nonheap-object, -Wuse-after-free, -Walloc-size-larger-than): we want
 * them at run time. */
static void *launder(void *p) {
    void *volatile v = p;
    return v;
}
static size_t hide(size_t n) {
    volatile size_t v = n;
    return v;
}

/* Double free of a block of `size` bytes, after the block has gone through the front cache
 * and (with `many` further frees) on to the central list. */
static void double_free(size_t size, int many) {
    char *p = malloc(size);
    fprintf(stderr, "PTR %p\n", (void *)p);
    char *again = launder(p);
    void *rest[600];
    int n = many ? 600 : 0;
    for (int i = 0; i < n; i++) rest[i] = malloc(size);
    free(p);
    for (int i = 0; i < n; i++) free(rest[i]);
    free(again);
}

/* ---- the fork storm: 4 threads allocate and free constantly while the main thread forks
 * 200 times; each child mallocs, writes, frees and exits. */
static volatile int stop;

static void *churn(void *arg) {
    unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    unsigned char *keep[32] = {0};
    while (!stop) {
        x = x * 1103515245u + 12345u;
        unsigned i = x % 32;
        free(keep[i]);
        size_t n = 8 + (x >> 8) % 600;
        keep[i] = malloc(n);
        memset(keep[i], (int)i, n);
    }
    for (int i = 0; i < 32; i++) free(keep[i]);
    return NULL;
}

static void fork_storm(int forks) {
    pthread_t t[4];
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, churn, (void *)i);
    usleep(10000);
    int bad = 0;
    for (int k = 0; k < forks; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10);
            for (int j = 0; j < 2000; j++) {
                size_t n = 8 + (size_t)j % 700;
                unsigned char *p = malloc(n);
                if (!p) _exit(3);
                memset(p, 1, n);
                free(p);
            }
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            bad++;
            fprintf(stderr, "fork %d: child status %#x\n", k, st);
        }
    }
    stop = 1;
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK(bad == 0);
}

/* ---- the thread storm: waves of short-lived threads, each allocating, checking and freeing
 * blocks another thread allocated; their caches must not pile up. */
static void *short_lived(void *arg) {
    unsigned char *given = arg;
    int ok = 1;
    for (int i = 0; i < 100; i++) ok &= given[i] == (unsigned char)i;
    free(given);
    for (int i = 0; i < 50; i++) {
        unsigned char *p = malloc(16 + (size_t)i * 40);
        memset(p, i, 16 + (size_t)i * 40);
        ok &= p[15] == (unsigned char)i;
        free(p);
    }
    return ok ? NULL : (void *)1;
}

static void thread_storm(void) {
    for (int wave = 0; wave < 50; wave++) {
        pthread_t t[20];
        for (int i = 0; i < 20; i++) {
            unsigned char *g = malloc(100);
            for (int j = 0; j < 100; j++) g[j] = (unsigned char)j;
            CHECK(pthread_create(&t[i], NULL, short_lived, g) == 0);
        }
        for (int i = 0; i < 20; i++) {
            void *r = (void *)1;
            pthread_join(t[i], &r);
            CHECK(r == NULL);
        }
    }
}

/* ---- sizes and alignments that cannot be served, and huge alignments that can. */
static size_t vm_size_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kib) == 1) break;
    if (f) fclose(f);
    return kib;
}

static void overflow(void) {
    errno = 0;
    CHECK(malloc(hide(SIZE_MAX)) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(hide(SIZE_MAX / 2 + 1)) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(hide(SIZE_MAX / 4), 8) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(hide((size_t)1 << 40), (size_t)1 << 40) == NULL && errno == ENOMEM);
    /* A failed realloc leaves the block alone (the compiler, not knowing it failed, would call
     * every later use of `p` a use after free: `keep` is the same pointer, laundered). */
    char *p = malloc(10);
    char *keep = launder(p);
    strcpy(p, "keep me");
    errno = 0;
    CHECK(realloc(launder(p), hide(SIZE_MAX - 4096)) == NULL && errno == ENOMEM);
    CHECK(strcmp(keep, "keep me") == 0);
    errno = 0;
    CHECK(reallocarray(launder(keep), hide(SIZE_MAX / 2), 4) == NULL && errno == ENOMEM);
    CHECK(strcmp(keep, "keep me") == 0);
    free(keep);
    errno = 0;
    CHECK(aligned_alloc(64, hide(SIZE_MAX - 10)) == NULL && errno == ENOMEM);
    void *q = (void *)1;
    CHECK(posix_memalign(&q, 4096, hide(SIZE_MAX / 2)) == ENOMEM && q == (void *)1);
    /* Ten terabytes is refused (the commit charge), and leaves no reservation behind. */
    size_t before = vm_size_kib();
    errno = 0;
    CHECK(malloc(hide((size_t)10 << 40)) == NULL && errno == ENOMEM);
    CHECK(vm_size_kib() < before + 64 * 1024);
}

static void bad_alignment(void) {
    errno = 0;
    CHECK(aligned_alloc(3, 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(0, 16) == NULL && errno == EINVAL);
    void *q = (void *)1;
    CHECK(posix_memalign(&q, 4, 16) == EINVAL && q == (void *)1); /* not a multiple of 8 */
    CHECK(posix_memalign(&q, 24, 16) == EINVAL && q == (void *)1); /* not a power of two */
    CHECK(posix_memalign(&q, 0, 16) == EINVAL && q == (void *)1);
    /* memalign rounds a non-power-of-two alignment up, as glibc does. */
    char *m = memalign(48, 10);
    CHECK(m && (uintptr_t)m % 64 == 0);
    free(m);
}

static void huge_alignment(void) {
    size_t before = vm_size_kib();
    for (int shift = 20; shift <= 40; shift += 4) {
        size_t align = (size_t)1 << shift;
        char *p = aligned_alloc(align, 100);
        CHECK(p && (uintptr_t)p % align == 0);
        if (!p) continue;
        memset(p, 0x5a, 100);
        CHECK(malloc_usable_size(p) >= 100);
        char *q = realloc(p, 200000); /* may move; the bytes must follow */
        CHECK(q && q[99] == 0x5a);
        free(q);
    }
    void *r = NULL;
    CHECK(posix_memalign(&r, (size_t)1 << 36, 5000) == 0 && (uintptr_t)r % ((size_t)1 << 36) == 0);
    free(r);
    /* The slack was never kept: address space is back near where it started (a reservation
     * of the alignment would be 1 TiB). */
    CHECK(vm_size_kib() < before + 256 * 1024);
    /* Alignments no address space can satisfy fail cleanly, leaving nothing reserved. */
    errno = 0;
    CHECK(aligned_alloc((size_t)1 << 62, 100) == NULL && errno == ENOMEM);
    CHECK(vm_size_kib() < before + 256 * 1024);
}

/* ---- an address-space limit: allocate until refused, free, allocate again. */
static void address_space_limit(size_t limit_mib) {
    struct rlimit rl = {limit_mib << 20, limit_mib << 20};
    CHECK(setrlimit(RLIMIT_AS, &rl) == 0);
    /* Small and medium blocks, all written, until the limit refuses one. */
    enum { MAX = 1 << 20 };
    static unsigned char *blocks[MAX];
    size_t n = 0, bytes = 0;
    for (; n < MAX; n++) {
        size_t size = 16 + (n * 7919) % 3000;
        if (n % 64 == 0) size = 40000 + (n % 5) * 20000;
        errno = 0;
        blocks[n] = malloc(size);
        if (!blocks[n]) {
            CHECK(errno == ENOMEM);
            break;
        }
        memset(blocks[n], (int)(n & 0xff), size < 64 ? size : 64);
        bytes += size;
    }
    printf("allocated %zu blocks, %zu MiB, under a %zu MiB limit\n", n, bytes >> 20, limit_mib);
    CHECK(n < MAX);                               /* the limit was reached */
    CHECK(bytes > (limit_mib << 20) / 4);         /* and only after real use */
    int intact = 1;
    for (size_t i = 0; i < n; i++) intact &= blocks[i][0] == (unsigned char)(i & 0xff);
    CHECK(intact);
    for (size_t i = 0; i < n; i++) free(blocks[i]);
    /* Recovery: after freeing, the same amount can be allocated again. */
    size_t again = 0;
    for (; again < n; again++) {
        size_t size = 16 + (again * 7919) % 3000;
        if (again % 64 == 0) size = 40000 + (again % 5) * 20000;
        blocks[again] = malloc(size);
        if (!blocks[again]) break;
        memset(blocks[again], 1, size < 64 ? size : 64);
    }
    printf("after freeing: %zu of %zu blocks again\n", again, n);
    CHECK(again * 10 >= n * 9);
    for (size_t i = 0; i < again; i++) free(blocks[i]);
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *mode = argv[1];
    static long not_heap[4];
    if (strcmp(mode, "double") == 0) {
        double_free(64, 0);
    } else if (strcmp(mode, "double-size") == 0 && argc == 3) {
        double_free(strtoul(argv[2], NULL, 10), 0);
    } else if (strcmp(mode, "double-after-central") == 0 && argc == 3) {
        double_free(strtoul(argv[2], NULL, 10), 1);
    } else if (strcmp(mode, "invalid") == 0) {
        fprintf(stderr, "PTR %p\n", (void *)not_heap);
        free(launder(not_heap));
    } else if (strcmp(mode, "interior") == 0) {
        char *p = malloc(100);
        fprintf(stderr, "PTR %p\n", (void *)(p + 16));
        free(launder(p + 16));
    } else if (strcmp(mode, "large-double") == 0) {
        double_free(1 << 20, 0);
    } else if (strcmp(mode, "realloc-invalid") == 0) {
        fprintf(stderr, "PTR %p\n", (void *)not_heap);
        void *q = realloc(launder(not_heap), 10);
        (void)q;
    } else if (strcmp(mode, "realloc-freed") == 0) {
        char *p = malloc(200);
        fprintf(stderr, "PTR %p\n", (void *)p);
        char *again = launder(p);
        free(p);
        void *q = realloc(again, 400);
        (void)q;
    } else if (strcmp(mode, "usable-size-freed") == 0) {
        char *p = malloc(200);
        fprintf(stderr, "PTR %p\n", (void *)p);
        char *again = launder(p);
        free(p);
        printf("%zu\n", malloc_usable_size(again));
    } else if (strcmp(mode, "overflow") == 0) {
        overflow();
        return check_summary(mode);
    } else if (strcmp(mode, "bad-alignment") == 0) {
        bad_alignment();
        return check_summary(mode);
    } else if (strcmp(mode, "huge-alignment") == 0) {
        huge_alignment();
        return check_summary(mode);
    } else if (strcmp(mode, "address-space-limit") == 0 && argc == 3) {
        address_space_limit(strtoul(argv[2], NULL, 10));
        return check_summary(mode);
    } else if (strcmp(mode, "fork-storm") == 0) {
        fork_storm(200);
        return check_summary(mode);
    } else if (strcmp(mode, "thread-storm") == 0) {
        thread_storm();
        return check_summary(mode);
    } else {
        return 2;
    }
    return 0; /* not reached when the misuse is caught */
}
