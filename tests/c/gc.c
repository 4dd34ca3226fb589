/* The garbage collector through tricolor.h: trees, lists, cycles, arrays of pointers, large
 * objects, sizes no object can have, global handles, callback roots, several threads,
 * statistics; and, with a mode argument, misuse that must abort with a message. */
#include "check.h"
#include "tricolor.h"
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct node {
    struct node *left, *right;
    uint64_t value;
} node;

static tc_heap *heap;
static tc_type node_t, ref_t;

static node *tree(tc_mutator *m, int depth, uint64_t *next) {
    node *n = tc_alloc(m, node_t);
    tc_push_root(m, (void **)&n);
    if (depth > 0) {
        node *l = tree(m, depth - 1, next);
        tc_write(m, n, (void **)&n->left, l);
        node *r = tree(m, depth - 1, next);
        /* The unchecked store (checked all the same: these tests run in verification mode). */
        tc_write_unchecked(m, n, (void **)&n->right, r);
    }
    n->value = ++*next * 2654435761u;
    tc_pop_roots(m, 1);
    return n;
}

static int tree_ok(node *n, int depth, uint64_t *next) {
    int ok = 1;
    if (depth > 0) {
        ok &= tree_ok(n->left, depth - 1, next);
        ok &= tree_ok(n->right, depth - 1, next);
    } else {
        ok &= n->left == NULL && n->right == NULL;
    }
    return ok & (n->value == ++*next * 2654435761u);
}

static uint64_t live(void) {
    tc_gc_stats_t s;
    tc_gc_stats(heap, &s);
    return s.live_bytes;
}

static void trees_and_cycles(tc_mutator *m) {
    uint64_t k = 0;
    node *root = tree(m, 12, &k);
    tc_push_root(m, (void **)&root);
    for (int i = 0; i < 30; i++) {
        uint64_t g = 0;
        tree(m, 10, &g);
    }
    tc_collect(m);
    k = 0;
    CHECK(tree_ok(root, 12, &k));
    CHECK(live() == ((1u << 13) - 1) * 32); /* 24-byte nodes in the 32-byte class */

    /* An unreachable cycle is freed; a rooted one is kept intact. */
    node *ring = tc_alloc(m, node_t);
    tc_push_root(m, (void **)&ring);
    node *prev = ring;
    for (int i = 1; i < 100; i++) {
        node *n = tc_alloc(m, node_t);
        n->value = i;
        tc_write(m, prev, (void **)&prev->left, n);
        prev = n;
    }
    tc_write(m, prev, (void **)&prev->left, ring);
    root = NULL;
    tc_collect(m);
    CHECK(live() == 100 * 32);
    node *p = ring;
    for (int i = 0; i < 100; i++) p = p->left;
    CHECK(p == ring);
    ring = NULL;
    tc_collect(m);
    CHECK(live() == 0);
    tc_pop_roots(m, 2);
}

static void arrays_and_large(tc_mutator *m) {
    enum { N = 10000 }; /* 80 KB of pointers: a large object */
    node **arr = tc_alloc_array(m, ref_t, N);
    tc_push_root(m, (void **)&arr);
    CHECK(arr != NULL);
    for (int i = 0; i < N; i++) {
        node *n = tc_alloc(m, node_t);
        n->value = i;
        tc_write(m, arr, (void **)&arr[i], n);
    }
    char *bytes = tc_alloc_bytes(m, 1 << 20);
    tc_push_root(m, (void **)&bytes);
    int zero = 1;
    for (int i = 0; i < 1 << 20; i++) zero &= bytes[i] == 0;
    CHECK(zero);
    memset(bytes, 0x77, 1 << 20);
    tc_collect(m);
    CHECK(live() == N * 8 + N * 32 + (1 << 20));
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= arr[i]->value == (uint64_t)i;
    CHECK(ok);
    CHECK(bytes[12345] == 0x77);
    for (int i = 0; i < N; i += 2) tc_write(m, arr, (void **)&arr[i], NULL);
    tc_pop_roots(m, 1);
    tc_collect(m);
    CHECK(live() == N * 8 + (N / 2) * 32);
    /* An interior pointer keeps the whole array alive. */
    void *inside = &arr[N - 1];
    tc_pop_roots(m, 1);
    tc_push_root(m, &inside);
    tc_collect(m);
    CHECK(live() == N * 8 + (N / 2) * 32);
    tc_pop_roots(m, 1);
    tc_collect(m);
    CHECK(live() == 0);
}

/* Sizes no allocation can satisfy return NULL with errno = ENOMEM, and leave the heap usable:
 * the largest type tc_type_new accepts (one byte below 2^47, the user address space the heap
 * maps), arrays whose size overflows, byte objects of huge lengths. */
static void impossible_sizes(tc_mutator *m) {
    size_t first = 0;
    tc_type huge = tc_type_new(heap, "huge", ((size_t)1 << 47) - 1, &first, 1);
    errno = 0;
    CHECK(tc_alloc(m, huge) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(tc_alloc_array(m, huge, 1) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(tc_alloc_array(m, huge, 2) == NULL && errno == ENOMEM);
    size_t lens[] = {SIZE_MAX, SIZE_MAX / 8, SIZE_MAX / 8 + 1, (size_t)1 << 61, (size_t)1 << 47};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        errno = 0;
        CHECK(tc_alloc_array(m, huge, lens[i]) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(tc_alloc_array(m, ref_t, lens[i]) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(tc_alloc_array(m, node_t, lens[i]) == NULL && errno == ENOMEM);
        errno = 0;
        CHECK(tc_alloc_bytes(m, lens[i]) == NULL && errno == ENOMEM);
    }
    node *n = tc_alloc(m, node_t);
    CHECK(n != NULL && n->left == NULL);
    tc_collect(m);
    CHECK(live() == 0);
}

static node *table[8];
static void report_table(tc_root_visitor *v, void *data) {
    CHECK(data == (void *)table);
    for (int i = 0; i < 8; i++) tc_visit_root(v, (void **)&table[i]);
}

static void handles_and_callbacks(tc_mutator *m) {
    node *a = tc_alloc(m, node_t);
    a->value = 41;
    tc_handle *h = tc_handle_new(m, a);
    uint64_t id = tc_add_root_callback(heap, report_table, table);
    table[3] = tc_alloc(m, node_t);
    table[3]->value = 42;
    tc_collect(m);
    CHECK(live() == 64);
    CHECK(((node *)tc_handle_get(h))->value == 41);
    CHECK(table[3]->value == 42);
    CHECK(tc_remove_root_callback(heap, id) == 1);
    CHECK(tc_remove_root_callback(heap, id) == 0);
    tc_collect(m);
    CHECK(live() == 32);
    tc_handle_set(m, h, NULL);
    tc_collect(m);
    CHECK(live() == 0);
    tc_handle_free(h);
}

/* Threads building and checking their own trees while the others collect. */
static void *worker(void *arg) {
    (void)arg;
    tc_mutator *m = tc_mutator_attach(heap);
    int ok = 1;
    for (int round = 0; round < 20; round++) {
        uint64_t k = 0;
        node *t = tree(m, 10, &k);
        tc_push_root(m, (void **)&t);
        uint64_t g = 0;
        tree(m, 10, &g);
        if (round % 5 == 0) tc_collect(m);
        k = 0;
        ok &= tree_ok(t, 10, &k);
        tc_pop_roots(m, 1);
    }
    tc_mutator_detach(m);
    return (void *)(intptr_t)ok;
}

static void threads(tc_mutator *m) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
    tc_enter_native(m); /* joining blocks: do not hold up the workers' collections */
    for (int i = 0; i < 4; i++) {
        void *ok;
        pthread_join(t[i], &ok);
        CHECK(ok == (void *)1);
    }
    tc_leave_native(m);
    tc_collect(m);
    CHECK(live() == 0);
}

static void statistics(tc_mutator *m) {
    tc_gc_stats_t s;
    tc_gc_stats(heap, &s);
    CHECK(s.cycles > 10);
    CHECK(s.pause_max_ns > 0 && s.pause_max_ns <= s.pause_total_ns);
    CHECK(s.pauses == 2 * s.cycles); /* each cycle stops the world twice */
    CHECK(s.pause_ns[(s.pauses + 255) % 256] > 0 && s.pause_ns[(s.pauses + 254) % 256] > 0);
    CHECK(s.heap_goal >= 4u << 20);
    CHECK(s.mutators == 1);
    CHECK(tc_set_gc_percent(heap, -1) == 100);
    uint64_t before = s.cycles;
    for (int i = 0; i < 500000; i++) tc_alloc(m, node_t);
    tc_gc_stats(heap, &s);
    CHECK(s.cycles == before); /* GOGC off: no collection */
    CHECK(tc_set_gc_percent(heap, 100) == -1);
    tc_safepoint(m);
}

/* Go's metric names: the same figures as tc_gc_stats, the pause histogram in the caller's
 * buffers (asked for its length first), unknown names marked bad. */
static void metrics(void) {
    tc_gc_stats_t s;
    tc_gc_stats(heap, &s);
    tc_metric_sample_t q[5] = {
        {.name = "/gc/cycles/total:gc-cycles"},
        {.name = "/gc/heap/goal:bytes"},
        {.name = "/gc/pauses:seconds"},
        {.name = "/gc/no/such:bytes"},
        {.name = "/cpu/classes/gc/total:cpu-seconds"},
    };
    CHECK(tc_metrics_read(heap, q, 5) == 0);
    CHECK(q[0].kind == TC_METRIC_UINT64 && q[0].uint64 == s.cycles);
    CHECK(q[1].kind == TC_METRIC_UINT64 && q[1].uint64 == s.heap_goal);
    CHECK(q[2].kind == TC_METRIC_HISTOGRAM && q[2].histogram_len > 10);
    CHECK(q[3].kind == TC_METRIC_BAD);
    CHECK(q[4].kind == TC_METRIC_FLOAT64 && q[4].float64 > 0);
    size_t len = q[2].histogram_len;
    uint64_t *counts = malloc(len * sizeof *counts);
    double *buckets = malloc((len + 1) * sizeof *buckets);
    q[2].counts = counts;
    q[2].buckets = buckets;
    CHECK(tc_metrics_read(heap, &q[2], 1) == 0 && q[2].histogram_len == len);
    uint64_t pauses = 0;
    for (size_t i = 0; i < len; i++) {
        pauses += counts[i];
        CHECK(buckets[i] < buckets[i + 1]);
    }
    CHECK(pauses == s.pauses);
    free(counts);
    free(buckets);
    int n = 0;
    while (tc_metric_name(n)) CHECK(tc_metric_description(n++) != NULL);
    CHECK(n > 20 && strcmp(tc_metric_name(0), "/memory/classes/heap/objects:bytes") == 0);
    CHECK(tc_metrics_read(heap, NULL, 1) == -1);
    /* More samples than any array holds, or than there is memory to read: -1, nothing read. */
    errno = 0;
    CHECK(tc_metrics_read(heap, q, SIZE_MAX) == -1 && errno == EINVAL);
    errno = 0;
    CHECK(tc_metrics_read(heap, q, PTRDIFF_MAX / sizeof q[0]) == -1 && errno == ENOMEM);
}

/* The pool's constructor: counts its calls through ctx. */
static void *new_node(tc_mutator *m, void *ctx) {
    ++*(int *)ctx;
    node *n = tc_alloc(m, node_t);
    n->value = 7;
    return n;
}

static void pools(tc_mutator *m) {
    int made = 0;
    tc_pool *p = tc_pool_new(heap, node_t, new_node, &made);
    node *a = tc_pool_get(m, p);
    CHECK(a != NULL && a->value == 7 && made == 1);
    tc_pool_put(m, p, a);
    CHECK(tc_pool_get(m, p) == a && made == 1); /* the pooled object comes back */
    tc_pool_put(m, p, a);
    tc_pool_put(m, p, NULL); /* ignored, as Go ignores nil */
    /* A pool in use keeps hitting across collections (the victim cache). */
    for (int i = 0; i < 300; i++) {
        node *n = tc_pool_get(m, p);
        CHECK(n->value == 7);
        tc_pool_put(m, p, n);
        if (i % 100 == 99) tc_collect(m);
    }
    CHECK(made == 1);
    /* Idle for two collections: the pool is empty and the next get constructs. */
    tc_collect(m);
    tc_collect(m);
    node *b = tc_pool_get(m, p);
    CHECK(made == 2 && b->value == 7);
    /* Without a constructor an empty pool gives NULL. */
    tc_pool *q = tc_pool_new(heap, node_t, NULL, NULL);
    CHECK(tc_pool_get(m, q) == NULL);
    tc_pool_put(m, q, b);
    CHECK(tc_pool_get(m, q) == b);
    tc_pool_free(q);
    tc_pool_free(p);
}

static void weaks(tc_mutator *m) {
    node *a = tc_alloc(m, node_t);
    a->value = 42;
    tc_push_root(m, (void **)&a);
    tc_weak *w = tc_weak_new(m, a);
    tc_weak *w2 = tc_weak_new(m, a);
    tc_collect(m);
    CHECK(tc_weak_get(m, w) == a && a->value == 42); /* rooted: still there */
    tc_pop_roots(m, 1);
    a = NULL;
    tc_collect(m);
    CHECK(tc_weak_get(m, w) == NULL); /* unreachable: cleared, for every handle */
    CHECK(tc_weak_get(m, w2) == NULL);
    tc_weak_free(w);
    tc_weak_free(w2);
    tc_weak *z = tc_weak_new(m, NULL);
    CHECK(tc_weak_get(m, z) == NULL);
    tc_weak_free(z);
}

static int finalized, cleaned;
static uint64_t finalized_value;

static void on_finalize(tc_mutator *m, void *obj) {
    (void)m;
    node *n = obj;
    finalized++;
    finalized_value = n->value + (n->left ? n->left->value : 0);
}

static void on_cleanup(void *arg) { cleaned += (int)(intptr_t)arg; }

static void finalizers(tc_mutator *m) {
    node *a = tc_alloc(m, node_t);
    tc_push_root(m, (void **)&a);
    a->value = 40;
    node *b = tc_alloc(m, node_t);
    b->value = 2;
    tc_write(m, a, (void **)&a->left, b);
    tc_set_finalizer(m, a, on_finalize);
    uint64_t c1 = tc_add_cleanup(m, b, on_cleanup, (void *)1);
    uint64_t c2 = tc_add_cleanup(m, b, on_cleanup, (void *)10);
    CHECK(tc_cleanup_cancel(m, c2) == 1);
    CHECK(tc_cleanup_cancel(m, c2) == 0); /* once */
    tc_collect(m);
    tc_wait_finalizers(m);
    CHECK(finalized == 0 && cleaned == 0); /* reachable */
    tc_pop_roots(m, 1);
    a = b = NULL;
    tc_collect(m);
    tc_wait_finalizers(m);
    CHECK(finalized == 1 && finalized_value == 42); /* with what it reaches */
    CHECK(cleaned == 0); /* b was kept for a's finalizer */
    tc_collect(m);
    tc_wait_finalizers(m);
    tc_collect(m);
    tc_wait_finalizers(m);
    CHECK(finalized == 1 && cleaned == 1); /* once each; the cancelled one never */
    CHECK(tc_cleanup_cancel(m, c1) == 0);
}

static void ephemerons(tc_mutator *m) {
    tc_ephemeron_table *t = tc_ephemeron_new(heap);
    node *k = tc_alloc(m, node_t);
    tc_push_root(m, (void **)&k);
    node *v = tc_alloc(m, node_t);
    v->value = 5;
    tc_write(m, v, (void **)&v->left, k); /* the value points back to its key */
    tc_ephemeron_set(m, t, k, v);
    tc_weak *wv = tc_weak_new(m, v);
    v = NULL;
    tc_collect(m);
    node *got = tc_ephemeron_get(m, t, k);
    CHECK(got != NULL && got->value == 5 && got->left == k); /* the key is rooted */
    CHECK(tc_ephemeron_len(t) == 1);
    tc_pop_roots(m, 1);
    k = got = NULL;
    tc_collect(m);
    tc_wait_finalizers(m); /* finishes the sweep */
    CHECK(tc_weak_get(m, wv) == NULL); /* key and value both collected */
    CHECK(tc_ephemeron_len(t) == 0);
    tc_weak_free(wv);
    tc_ephemeron_free(t);
}

/* A runtime's own stack of values, reported by a stack scanner. */
static void *vstack[64];
static int vtop;

static void scan_vstack(tc_report_fn report, void *ctx, void *data) {
    (void)data;
    for (int i = 0; i < vtop; i++) report(ctx, vstack[i]);
    report(ctx, (void *)(uintptr_t)12345); /* not an object: ignored */
}

static void scanners(tc_mutator *m) {
    uint64_t id = tc_add_stack_scanner(m, scan_vstack, NULL);
    for (vtop = 0; vtop < 64; vtop++) {
        uint64_t k = 0;
        vstack[vtop] = tree(m, 6, &k); /* each is on the vstack before the next allocation */
    }
    tc_collect(m);
    tc_collect(m);
    uint64_t with = live();
    CHECK(with >= 64 * 127 * 24);
    for (int i = 0; i < vtop; i++) {
        uint64_t k = 0;
        CHECK(tree_ok(vstack[i], 6, &k));
    }
    CHECK(tc_remove_stack_scanner(m, id) == 1);
    CHECK(tc_remove_stack_scanner(m, id) == 0);
    vtop = 0;
    tc_collect(m);
    CHECK(live() + 64 * 127 * 24 <= with); /* nothing keeps them now */
}

/* A root callback reporting a NULL slot instead of a variable's address. */
static void report_null(tc_root_visitor *v, void *data) {
    (void)data;
    tc_visit_root(v, NULL);
}

static int misuse(const char *mode) {
    tc_mutator *m = tc_mutator_attach(heap);
    static long not_heap[4];
    node *n = tc_alloc(m, node_t);
    if (strcmp(mode, "write-value") == 0) {
        fprintf(stderr, "PTR %p\n", (void *)not_heap);
        tc_write(m, n, (void **)&n->left, not_heap);
    } else if (strcmp(mode, "write-slot") == 0) {
        node *o = tc_alloc(m, node_t);
        fprintf(stderr, "PTR %p\n", (void *)&o->left);
        tc_write(m, n, (void **)&o->left, NULL);
    } else if (strcmp(mode, "write-past-type") == 0) {
        /* A 24-byte type lives in a 32-byte size class: offset 24 is inside the slot but past
         * the type, so the marker never scans it. */
        size_t three[] = {0, 8, 16};
        tc_type t24 = tc_type_new(heap, "triple", 24, three, 3);
        void **o = tc_alloc(m, t24);
        fprintf(stderr, "PTR %p\n", (void *)(o + 3));
        tc_write(m, o, o + 3, n);
    } else if (strcmp(mode, "write-data-field") == 0) {
        /* `value` is a data field of node: a pointer stored there would not be scanned. */
        fprintf(stderr, "PTR %p\n", (void *)&n->value);
        tc_write(m, n, (void **)&n->value, n);
    } else if (strcmp(mode, "write-unchecked-data-field") == 0) {
        /* Verification is on (the harness sets TRICOLOR_GC_VERIFY=1): the unchecked store is
           checked as tc_write's is. */
        fprintf(stderr, "PTR %p\n", (void *)&n->value);
        tc_write_unchecked(m, n, (void **)&n->value, n);
    } else if (strcmp(mode, "write-array-tail") == 0) {
        /* Three 24-byte elements take 72 bytes of an 80-byte slot: the last 8 are no element. */
        size_t first[] = {0};
        tc_type t24 = tc_type_new(heap, "pair", 24, first, 1);
        char *a = tc_alloc_array(m, t24, 3);
        fprintf(stderr, "PTR %p\n", (void *)(a + 72));
        tc_write(m, a, (void **)(a + 48), n); /* element 2's pointer: fine */
        tc_write(m, a, (void **)(a + 72), n);
    } else if (strcmp(mode, "write-bytes") == 0) {
        char *b = tc_alloc_bytes(m, 64);
        fprintf(stderr, "PTR %p\n", (void *)b);
        tc_write(m, b, (void **)b, n);
    } else if (strcmp(mode, "push-null") == 0) {
        tc_push_root(m, NULL);
        tc_collect(m);
    } else if (strcmp(mode, "visit-null") == 0) {
        tc_add_root_callback(heap, report_null, NULL);
        tc_collect(m);
    } else if (strcmp(mode, "pop") == 0) {
        tc_push_root(m, (void **)&n);
        tc_pop_roots(m, 2);
    } else if (strcmp(mode, "detached") == 0) {
        tc_mutator_detach(m);
        fprintf(stderr, "PTR %p\n", (void *)m);
        tc_alloc(m, node_t);
    } else if (strcmp(mode, "type") == 0) {
        size_t bad[] = {4};
        tc_type_new(heap, "crooked", 16, bad, 1);
    } else if (strcmp(mode, "type-too-large") == 0) {
        tc_type_new(heap, "big", SIZE_MAX, NULL, 0);
    } else if (strcmp(mode, "type-size-limit") == 0) {
        /* 2^47 bytes: the whole user address space the heap maps, more than any object. */
        size_t first = 0;
        tc_type_new(heap, "limit", (size_t)1 << 47, &first, 1);
    } else if (strcmp(mode, "type-null-offsets") == 0) {
        tc_type_new(heap, "holey", 16, NULL, 2);
    } else if (strcmp(mode, "type-too-many-offsets") == 0) {
        /* More offsets than a type of the largest size has words: never read. */
        size_t two[] = {0, 8};
        tc_type_new(heap, "many", 16, two, SIZE_MAX / 8);
    } else if (strcmp(mode, "finalizer-twice") == 0) {
        fprintf(stderr, "PTR %p\n", (void *)n);
        tc_set_finalizer(m, n, on_finalize);
        tc_set_finalizer(m, n, on_finalize);
    } else if (strcmp(mode, "cleanup-interior") == 0) {
        fprintf(stderr, "PTR %p\n", (void *)&n->right);
        tc_add_cleanup(m, &n->right, on_cleanup, NULL);
    } else if (strcmp(mode, "ephemeron-key") == 0) {
        tc_ephemeron_table *t = tc_ephemeron_new(heap);
        fprintf(stderr, "PTR %p\n", (void *)not_heap);
        tc_ephemeron_set(m, t, not_heap, n);
    } else if (strcmp(mode, "weak-null") == 0) {
        tc_weak_get(m, NULL);
    } else if (strcmp(mode, "weak-foreign") == 0) {
        fprintf(stderr, "PTR %p\n", (void *)not_heap);
        tc_weak_new(m, not_heap);
    } else if (strcmp(mode, "pool-null") == 0) {
        tc_pool_get(m, NULL);
    } else if (strcmp(mode, "pool-foreign") == 0) {
        tc_pool *p = tc_pool_new(heap, node_t, NULL, NULL);
        fprintf(stderr, "PTR %p\n", (void *)not_heap);
        tc_pool_put(m, p, not_heap);
    } else if (strcmp(mode, "pool-type") == 0) {
        tc_pool *p = tc_pool_new(heap, ref_t, NULL, NULL);
        fprintf(stderr, "PTR %p\n", (void *)n);
        tc_pool_put(m, p, n);
    }
    return 0;
}

int main(int argc, char **argv) {
    heap = tc_heap_default();
    size_t offs[] = {offsetof(node, left), offsetof(node, right)};
    node_t = tc_type_new(heap, "node", sizeof(node), offs, 2);
    size_t zero = 0;
    ref_t = tc_type_new(heap, "ref", sizeof(void *), &zero, 1);
    if (argc == 2) return misuse(argv[1]);
    tc_mutator *m = tc_mutator_attach(heap);
    trees_and_cycles(m);
    arrays_and_large(m);
    impossible_sizes(m);
    handles_and_callbacks(m);
    pools(m);
    weaks(m);
    finalizers(m);
    ephemerons(m);
    scanners(m);
    threads(m);
    statistics(m);
    metrics();
    tc_mutator_detach(m);
    return check_summary("gc.c");
}
