/* libtricolor loaded with dlopen after the program started: first use from several threads
 * at once, then threads exit holding cached memory; finally the library is dlclose'd while a
 * thread that used it is alive, and that thread exits afterwards (its cache flush must still
 * find the library's code: the library is linked with -z nodelete). */
#include "check.h"
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static void *(*tc_malloc_p)(size_t);
static void (*tc_free_p)(void *);
static size_t (*tc_usable_p)(const void *);
static pthread_barrier_t start;
static int bad[4];

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_barrier_wait(&start);
    void *kept[512] = {0};
    for (int i = 0; i < 200000; i++) {
        int slot = (i * 7919 + id) % 512;
        if (kept[slot]) {
            unsigned char *p = kept[slot];
            if (p[0] != (unsigned char)slot) bad[id]++;
            tc_free_p(p);
        }
        size_t n = 1 + (size_t)((i * 2654435761u) % 3000);
        unsigned char *p = tc_malloc_p(n);
        if (!p || tc_usable_p(p) < n) { bad[id]++; continue; }
        memset(p, slot, n);
        kept[slot] = p;
    }
    /* Half the blocks stay allocated and cached as the thread exits; the main thread frees. */
    return kept[0];
}

static pthread_barrier_t closed;
static void *late(void *arg) {
    (void)arg;
    void *p = tc_malloc_p(64);
    tc_free_p(p); /* this thread now has a cache with a pthread-key destructor */
    pthread_barrier_wait(&closed); /* main dlcloses */
    pthread_barrier_wait(&closed); /* ... then we exit, running the destructor */
    return NULL;
}

int main(int argc, char **argv) {
    CHECK(argc == 2);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    CHECK(lib != NULL);
    if (!lib) { fprintf(stderr, "%s\n", dlerror()); return check_summary("dlopen"); }
    tc_malloc_p = (void *(*)(size_t))dlsym(lib, "tc_malloc");
    tc_free_p = (void (*)(void *))dlsym(lib, "tc_free");
    tc_usable_p = (size_t(*)(const void *))dlsym(lib, "tc_malloc_usable_size");
    CHECK(tc_malloc_p && tc_free_p && tc_usable_p);
    pthread_barrier_init(&start, NULL, 4);
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 4; i++) {
        void *left = NULL;
        pthread_join(t[i], &left);
        tc_free_p(left);
        CHECK(bad[i] == 0);
    }
    pthread_barrier_init(&closed, NULL, 2);
    pthread_t l;
    pthread_create(&l, NULL, late, NULL);
    pthread_barrier_wait(&closed);
    CHECK(dlclose(lib) == 0);
    pthread_barrier_wait(&closed);
    pthread_join(l, NULL);
    return check_summary("dlopen");
}
