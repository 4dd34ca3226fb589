/* Runs under LD_PRELOAD=libtricolor_malloc.so: the standard malloc family must be Tricolor's,
 * from before main to a forked child of a multi-threaded process. */
#include "check.h"
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Allocated by a constructor, before main (and before most of libc's own setup). */
static char *early;
__attribute__((constructor)) static void before_main(void) {
    early = malloc(123);
    if (early) strcpy(early, "allocated before main");
}

static void *pool[64];
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int stop;
static int corrupt;
static int errno_clobbered;

static void *churn(void *arg) {
    unsigned x = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    while (!stop) {
        x = x * 1103515245u + 12345u;
        size_t n = 16 + x % 4000;
        unsigned char *p = malloc(n);
        memset(p, (int)(n & 0xff), n);
        pthread_mutex_lock(&pool_lock);
        unsigned char *q = pool[x % 64];
        pool[x % 64] = p;
        pthread_mutex_unlock(&pool_lock);
        if (q) {
            /* Freed by another thread than the one that allocated it, most of the time. */
            size_t m = malloc_usable_size(q);
            if (m < 16) corrupt++;
            errno = EDOM; /* free must preserve errno (POSIX), even when a lock is contended */
            free(q);
            if (errno != EDOM) errno_clobbered++;
        }
    }
    return NULL;
}

static void *first_allocation(void *arg) {
    (void)arg;
    errno = ERANGE; /* a new thread's first malloc creates its cache: errno must survive */
    void *p = malloc(48);
    int kept = errno == ERANGE;
    free(p);
    kept &= errno == ERANGE;
    return kept ? p : NULL;
}

int main(void) {
    /* We are on Tricolor: its tc_ functions are in the process, and a 100-byte block has
     * Tricolor's 112-byte class (glibc would say 104). */
    size_t (*tc_usable)(const void *) = (size_t(*)(const void *))dlsym(RTLD_DEFAULT, "tc_malloc_usable_size");
    CHECK(tc_usable != NULL);
    void *p = malloc(100);
    CHECK(malloc_usable_size(p) == 112 && tc_usable && tc_usable(p) == 112);

    /* malloc_trim gives freed memory back to the OS (tc_release_memory underneath). */
    {
        size_t n = 32u << 20;
        unsigned char *volatile big = malloc(n); /* volatile: the compiler may not elide the pair */
        memset((void *)big, 7, n);
        free(big);
        CHECK(malloc_trim(0) == 1);
        CHECK(malloc_trim(0) == 0);
    }
    free(p);

    CHECK(early && strcmp(early, "allocated before main") == 0);
    free(early);

    /* Memory that glibc allocates internally comes back to us. */
    char *s = strdup("duplicated by glibc");
    CHECK(s && tc_usable && tc_usable(s) >= 20);
    free(s);
    FILE *f = fopen("/proc/self/status", "r");
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (f && getline(&line, &cap, f) > 0) lines++;
    CHECK(lines > 10);
    free(line);
    if (f) fclose(f);

    /* C semantics of the whole family. */
    void *z1 = malloc(0), *z2 = malloc(0);
    CHECK(z1 && z2 && z1 != z2);
    free(z1);
    free(z2);
    free(NULL);
    p = malloc(10);
    CHECK(realloc(p, 0) == NULL);
    volatile size_t quarter = SIZE_MAX / 4; /* volatile: GCC rejects the overflow statically */
    errno = 0;
    CHECK(calloc(quarter, 8) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(NULL, quarter, 8) == NULL && errno == ENOMEM);
    p = reallocarray(NULL, 10, 10);
    CHECK(p && malloc_usable_size(p) >= 100);
    free(p);
    errno = 0;
    CHECK(aligned_alloc(24, 48) == NULL && errno == EINVAL);
    void *a = NULL;
    CHECK(posix_memalign(&a, 3, 10) == EINVAL && a == NULL);
    CHECK(posix_memalign(&a, 1 << 16, 10) == 0 && (uintptr_t)a % (1 << 16) == 0);
    free(a);
    a = aligned_alloc(4096, 4096);
    CHECK(a && (uintptr_t)a % 4096 == 0);
    free(a);
    a = memalign(24, 10); /* rounded up to 32, as glibc does */
    CHECK(a && (uintptr_t)a % 32 == 0);
    free(a);
    long page = sysconf(_SC_PAGESIZE);
    a = valloc(10);
    CHECK(a && (uintptr_t)a % (uintptr_t)page == 0);
    free(a);
    a = pvalloc(1);
    CHECK(a && (uintptr_t)a % (uintptr_t)page == 0 && malloc_usable_size(a) >= (size_t)page);
    free(a);

    /* Threads allocating and freeing each other's blocks; fork in the middle of it. */
    pthread_t t[3];
    for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    for (int round = 0; round < 10; round++) {
        usleep(2000);
        pid_t pid = fork();
        if (pid == 0) {
            alarm(10); /* a deadlocked child dies and fails the check below */
            for (int i = 0; i < 20000; i++) {
                char *c = malloc(1 + i % 5000);
                if (!c) _exit(3);
                c[0] = 1;
                free(c);
            }
            char *big = malloc(8 << 20);
            memset(big, 1, 8 << 20);
            free(big);
            _exit(0);
        }
        int status = 0;
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    stop = 1;
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 64; i++) free(pool[i]);
    CHECK(corrupt == 0);
    CHECK(errno_clobbered == 0);
    pthread_t first;
    void *kept = NULL;
    pthread_create(&first, NULL, first_allocation, NULL);
    pthread_join(first, &kept);
    CHECK(kept != NULL);

    /* glibc's introspection answers with Tricolor's figures (glibc's own would see almost
       nothing: every block here is Tricolor's). */
    void *keep[100];
    for (int i = 0; i < 100; i++) keep[i] = malloc(1000);
    char *huge = malloc(4 << 20);
    memset(huge, 1, 4 << 20);
    struct mallinfo2 mi = mallinfo2();
    CHECK(mi.uordblks >= 100 * 1000);
    CHECK(mi.hblkhd >= (4u << 20) && mi.hblks >= 1);
    CHECK(mi.arena >= mi.uordblks && mi.fordblks >= mi.keepcost);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo m1 = mallinfo(); /* deprecated by glibc, still called by programs */
#pragma GCC diagnostic pop
    CHECK(m1.uordblks >= 100 * 1000 && (size_t)m1.hblkhd == mi.hblkhd);
    static char text[1 << 16];
    FILE *xml = tmpfile();
    CHECK(xml != NULL && malloc_info(0, xml) == 0);
    rewind(xml);
    size_t n = fread(text, 1, sizeof text - 1, xml);
    text[n] = 0;
    CHECK(strstr(text, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n") == text);
    CHECK(strstr(text, "<total type=\"mmap\" count=\"") != NULL);
    CHECK(n > 10 && strcmp(text + n - 10, "</malloc>\n") == 0);
    errno = 0;
    CHECK(malloc_info(1, xml) == -1 && errno == EINVAL);
    fclose(xml);
    size_t live_large = mi.hblkhd;
    free(huge);
    huge = NULL;
    fflush(stderr);
    int saved = dup(2);
    FILE *g = tmpfile();
    dup2(fileno(g), 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    rewind(g);
    n = fread(text, 1, sizeof text - 1, g);
    text[n] = 0;
    fclose(g);
    CHECK(strstr(text, "Arena 0:\nsystem bytes     = ") == text);
    CHECK(strstr(text, "Total (incl. mmap):\n") != NULL && strstr(text, "max mmap bytes   = ") != NULL);
    /* The "max mmap" lines are high-water marks: the freed 4 MiB block still counts. */
    unsigned long max_regions = 0, max_bytes = 0;
    const char *at = strstr(text, "max mmap regions = ");
    CHECK(at != NULL && sscanf(at, "max mmap regions = %lu\nmax mmap bytes   = %lu", &max_regions,
                               &max_bytes) == 2);
    CHECK(max_regions >= 1 && max_bytes >= live_large && live_large >= (4u << 20));
    CHECK(mallinfo2().hblkhd + (4u << 20) <= live_large);
    for (int i = 0; i < 100; i++) free(keep[i]);
    return check_summary("preload");
}
