/* The collector benchmarks, one source for Tricolor (-DTRICOLOR, against tricolor.h) and
 * Boehm GC (-DBOEHM, against gc.h): the same allocation pattern and the same checks.
 *
 *   binary-trees N   the Benchmarks Game program: stretch tree N+1, a long-lived tree N,
 *                    2^(N-d+4) trees at each even depth d from 4 to N, each checked
 *   gcbench          Boehm's GCBench: 4-word nodes, stretch tree 18, long-lived tree 16 and
 *                    a 500,000-double array, top-down and bottom-up trees at depths 4..16
 *   msgbuf           the GC latency experiment: a window of 200,000 messages of 1 KiB,
 *                    1,000,000 pushes, each replacing the oldest; every push is timed
 *   msgbuf-ptr       the same with each message a linked list of 8 nodes of 128 bytes
 *
 * The last line is "RESULT checksum=C gcs=N p50_ns=P max_ns=M [push_max_ns=W
 * push_p999_ns=Q]": the checksum must agree across runtimes; the pause figures are each
 * runtime's stop-the-world pauses; the push figures are the mutator's observed latency.
 *
 * Rooting (Tricolor): every node pointer held in a C local across an allocation is pushed on
 * the shadow stack, and every pointer store into a node goes through tc_write. Boehm scans
 * the C stack conservatively, so the same macros are no-ops there. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(TRICOLOR)
#include "tricolor.h"
static tc_mutator *M;
static tc_type NODE_T, NODE4_T, REF_T, MSG_T;
#define ALLOC_NODE() ((node *)tc_alloc(M, NODE_T))
#define ALLOC_NODE4() ((node4 *)tc_alloc(M, NODE4_T))
#define ALLOC_DOUBLES(n) ((double *)tc_alloc_bytes(M, (n) * sizeof(double)))
#define ROOT(v) tc_push_root(M, (void **)&(v))
#define UNROOT(n) tc_pop_roots(M, (n))
#define WRITE(obj, field, val) tc_write(M, (obj), (void **)&(obj)->field, (val))
#define ALLOC_REFS(n) ((void **)tc_alloc_array(M, REF_T, (n)))
#define ALLOC_MSG() ((msgnode *)tc_alloc(M, MSG_T))
#define ALLOC_BYTES(n) ((char *)tc_alloc_bytes(M, (n)))
#define WRITE_SLOT(arr, i, val) tc_write(M, (arr), &(arr)[i], (val))
#elif defined(BOEHM)
#include <gc.h>
#define ALLOC_NODE() ((node *)GC_MALLOC(sizeof(node)))
#define ALLOC_NODE4() ((node4 *)GC_MALLOC(sizeof(node4)))
#define ALLOC_DOUBLES(n) ((double *)GC_MALLOC_ATOMIC((n) * sizeof(double)))
#define ROOT(v) ((void)0)
#define UNROOT(n) ((void)0)
#define WRITE(obj, field, val) ((obj)->field = (val))
#define ALLOC_REFS(n) ((void **)GC_MALLOC((n) * sizeof(void *)))
#define ALLOC_MSG() ((msgnode *)GC_MALLOC(sizeof(msgnode)))
#define ALLOC_BYTES(n) ((char *)GC_MALLOC_ATOMIC(n))
#define WRITE_SLOT(arr, i, val) ((arr)[i] = (val))
#else
#error "build with -DTRICOLOR or -DBOEHM"
#endif

typedef struct node {
    struct node *left, *right;
} node;

typedef struct node4 {
    struct node4 *left, *right;
    int64_t i, j;
} node4;

typedef struct msgnode {
    struct msgnode *next;
    char data[120];
} msgnode;

/* ---- pauses ---- */

static uint64_t pauses[1 << 16];
static uint64_t npauses;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

#if defined(BOEHM)
static uint64_t stop_start;
static void on_event(GC_EventType e) {
    if (e == GC_EVENT_PRE_STOP_WORLD) stop_start = now_ns();
    if (e == GC_EVENT_POST_START_WORLD && npauses < sizeof pauses / sizeof pauses[0])
        pauses[npauses++] = now_ns() - stop_start;
}
#endif

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- push latency: a log-linear histogram (8 buckets per power of two) ---- */

static uint64_t push_hist[64 * 8], push_count, push_max;

static void push_time(uint64_t ns) {
    int e = ns ? 63 - __builtin_clzll(ns) : 0;
    int sub = e >= 3 ? (int)((ns >> (e - 3)) & 7) : 0;
    push_hist[e * 8 + sub]++;
    push_count++;
    if (ns > push_max) push_max = ns;
}

/* The upper edge of the bucket holding the 99.9th percentile push. */
static uint64_t push_p999(void) {
    uint64_t want = push_count - push_count / 1000, seen = 0;
    for (int b = 0; b < 64 * 8; b++) {
        seen += push_hist[b];
        if (seen >= want) {
            int e = b / 8, sub = b % 8;
            return e >= 3 ? ((uint64_t)(8 + sub + 1) << (e - 3)) : ((uint64_t)1 << (e + 1));
        }
    }
    return push_max;
}

/* The pool benchmark's figures for the RESULT line. */
static char pool_extra[160];

static void report(uint64_t checksum) {
    uint64_t gcs;
    char wait[96] = "";
#if defined(TRICOLOR)
    tc_gc_stats_t s;
    tc_gc_stats(tc_heap_default(), &s);
    gcs = s.cycles;
    snprintf(wait, sizeof wait, " wait_max_ns=%llu gc_cpu_pm=%llu", (unsigned long long)s.wait_max_ns,
             (unsigned long long)(s.gc_cpu_fraction * 1000.0 + 0.5));
    npauses = s.pauses < 256 ? s.pauses : 256;
    for (uint64_t i = 0; i < npauses; i++) pauses[i] = s.pause_ns[i];
#else
    gcs = (uint64_t)GC_get_gc_no();
#endif
    qsort(pauses, npauses, sizeof pauses[0], cmp_u64);
    uint64_t p50 = npauses ? pauses[npauses / 2] : 0;
    uint64_t max = npauses ? pauses[npauses - 1] : 0;
    char push[96] = "";
    if (push_count)
        snprintf(push, sizeof push, " push_max_ns=%llu push_p999_ns=%llu",
                 (unsigned long long)push_max, (unsigned long long)push_p999());
    printf("RESULT checksum=%llu gcs=%llu p50_ns=%llu max_ns=%llu%s%s%s\n", (unsigned long long)checksum,
           (unsigned long long)gcs, (unsigned long long)p50, (unsigned long long)max, wait, push,
           pool_extra);
}

/* ---- binary-trees ---- */

static node *make(int depth) {
    node *n = ALLOC_NODE();
    ROOT(n);
    if (depth > 0) {
        node *l = make(depth - 1);
        WRITE(n, left, l);
        node *r = make(depth - 1);
        WRITE(n, right, r);
    }
    UNROOT(1);
    return n;
}

static uint64_t check(node *n) {
    return n->left ? 1 + check(n->left) + check(n->right) : 1;
}

static uint64_t binary_trees(int n) {
    int max_depth = n < 6 ? 6 : n;
    uint64_t sum = 0;
    node *stretch = make(max_depth + 1);
    uint64_t c = check(stretch);
    printf("stretch tree of depth %d\t check: %llu\n", max_depth + 1, (unsigned long long)c);
    sum += c;
    stretch = NULL;
    node *long_lived = make(max_depth);
    ROOT(long_lived);
    for (int d = 4; d <= max_depth; d += 2) {
        uint64_t iterations = 1ull << (max_depth - d + 4);
        uint64_t total = 0;
        for (uint64_t i = 0; i < iterations; i++) total += check(make(d));
        printf("%llu\t trees of depth %d\t check: %llu\n", (unsigned long long)iterations, d,
               (unsigned long long)total);
        sum += total;
    }
    c = check(long_lived);
    printf("long lived tree of depth %d\t check: %llu\n", max_depth, (unsigned long long)c);
    UNROOT(1);
    return sum + c;
}

/* ---- GCBench ---- */

enum { STRETCH = 18, LONG_LIVED = 16, ARRAY = 500000, MIN_DEPTH = 4, MAX_DEPTH = 16 };

static int64_t tree_size(int d) { return (1ll << (d + 1)) - 1; }
static int64_t num_iters(int d) { return 2 * tree_size(STRETCH) / tree_size(d); }

/* Fills `n` (rooted by the caller) top-down to `depth`. */
static void populate(int depth, node4 *n) {
    if (depth <= 0) return;
    ROOT(n);
    depth--;
    node4 *l = ALLOC_NODE4();
    WRITE(n, left, l);
    node4 *r = ALLOC_NODE4();
    WRITE(n, right, r);
    populate(depth, n->left);
    populate(depth, n->right);
    UNROOT(1);
}

/* Builds a tree bottom-up. */
static node4 *make_tree(int depth) {
    if (depth <= 0) return ALLOC_NODE4();
    node4 *l = make_tree(depth - 1);
    ROOT(l);
    node4 *r = make_tree(depth - 1);
    ROOT(r);
    node4 *n = ALLOC_NODE4();
    WRITE(n, left, l);
    WRITE(n, right, r);
    UNROOT(2);
    return n;
}

static uint64_t count4(node4 *n) { return n ? 1 + count4(n->left) + count4(n->right) : 0; }

static uint64_t gcbench(void) {
    uint64_t sum = 0;
    node4 *temp = make_tree(STRETCH);
    sum += count4(temp);
    temp = NULL;
    node4 *long_lived = ALLOC_NODE4();
    ROOT(long_lived);
    populate(LONG_LIVED, long_lived);
    double *array = ALLOC_DOUBLES(ARRAY);
    ROOT(array);
    for (int i = 0; i < ARRAY / 2; i++) array[i] = 1.0 / i;
    for (int d = MIN_DEPTH; d <= MAX_DEPTH; d += 2) {
        int64_t iters = num_iters(d);
        for (int64_t i = 0; i < iters; i++) {
            node4 *t = ALLOC_NODE4();
            ROOT(t);
            populate(d, t);
            sum += t->left != NULL;
            UNROOT(1);
        }
        for (int64_t i = 0; i < iters; i++) {
            node4 *t = make_tree(d);
            sum += t->left != NULL;
        }
        printf("depth %d: %lld top-down and bottom-up trees\n", d, (long long)iters);
    }
    if (array[1000] != 1.0 / 1000) {
        fprintf(stderr, "gcbench: the array lost its contents\n");
        exit(1);
    }
    sum += count4(long_lived);
    UNROOT(2);
    return sum;
}

/* ---- the message buffer ---- */

enum { WINDOW = 200000, PUSHES = 1000000, MSG_NODES = 8 };

/* One message: 1 KiB of bytes, or a list of MSG_NODES nodes of 128 bytes. */
static void *make_msg(int64_t i, int ptr) {
    if (!ptr) {
        char *m = ALLOC_BYTES(1024);
        memset(m, (int)(i & 0xff), 1024);
        return m;
    }
    msgnode *head = NULL, *n = NULL;
    ROOT(head);
    for (int k = 0; k < MSG_NODES; k++) {
        n = ALLOC_MSG();
        memset(n->data, (int)((i + k) & 0xff), sizeof n->data);
        WRITE(n, next, head);
        head = n;
    }
    UNROOT(1);
    return head;
}

static uint64_t msgbuf(int ptr) {
    void **window = ALLOC_REFS(WINDOW);
    ROOT(window);
    for (int64_t i = 0; i < PUSHES; i++) {
        uint64_t t = now_ns();
        void *m = make_msg(i, ptr);
        WRITE_SLOT(window, i % WINDOW, m);
        push_time(now_ns() - t);
    }
    uint64_t sum = 0;
    for (int64_t k = 0; k < WINDOW; k++) {
        if (!ptr) {
            sum += (unsigned char)((char *)window[k])[0];
        } else {
            int len = 0;
            for (msgnode *n = window[k]; n; n = n->next) {
                sum += (unsigned char)n->data[0];
                len++;
            }
            if (len != MSG_NODES) {
                fprintf(stderr, "msgbuf: a message lost nodes\n");
                exit(1);
            }
        }
    }
    UNROOT(1);
    return sum;
}

/* ---- pool: a get+put pair against a plain allocation (Go's sync.Pool; Boehm has none) ---- */

#if defined(TRICOLOR)
static void *new_node4(tc_mutator *m, void *ctx) {
    (void)ctx;
    return tc_alloc(m, NODE4_T);
}
#endif

static uint64_t pool_bench(void) {
    const long n = 20000000;
    uint64_t sum = 0;
    uint64_t t0 = now_ns();
#if defined(TRICOLOR)
    tc_pool *p = tc_pool_new(tc_heap_default(), NODE4_T, new_node4, NULL);
    for (long i = 0; i < n; i++) {
        node4 *x = tc_pool_get(M, p);
        x->i = i;
        sum += (uint64_t)x->i;
        tc_pool_put(M, p, x);
    }
#else
    for (long i = 0; i < n; i++) sum += (uint64_t)i;
#endif
    uint64_t t1 = now_ns();
    for (long i = 0; i < n; i++) {
        node4 *x = ALLOC_NODE4();
        x->i = i;
        sum += (uint64_t)x->i;
    }
    uint64_t t2 = now_ns();
#if defined(TRICOLOR)
    snprintf(pool_extra, sizeof pool_extra, " pool_pair_ps=%llu alloc_ps=%llu",
             (unsigned long long)((t1 - t0) * 1000 / n), (unsigned long long)((t2 - t1) * 1000 / n));
#else
    snprintf(pool_extra, sizeof pool_extra, " alloc_ps=%llu", (unsigned long long)((t2 - t1) * 1000 / n));
#endif
    return sum;
}

/* ---- weak: reading a weak handle, and what 100,000 weak handles and 10,000 finalizers
 * (on live objects) add to a full collection (Boehm: disappearing links and finalizers) ---- */

#define WEAK_OBJS 100000
#define WEAK_FINALS 10000

static uint64_t finalizer_runs;

#if defined(TRICOLOR)
static void count_finalizer(tc_mutator *m, void *obj) {
    (void)m;
    (void)obj;
    finalizer_runs++;
}
#else
static void count_finalizer(void *obj, void *data) {
    (void)obj;
    (void)data;
    finalizer_runs++;
}
#endif

#if !defined(TRICOLOR)
static void *reveal(void *link) { return GC_REVEAL_POINTER(*(GC_hidden_pointer *)link); }
#endif

/* The median of 5 full collections, ns. */
static uint64_t full_gc_ns(void) {
    uint64_t t[5];
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = now_ns();
#if defined(TRICOLOR)
        tc_collect(M);
#else
        GC_gcollect();
#endif
        t[i] = now_ns() - t0;
    }
    qsort(t, 5, sizeof t[0], cmp_u64);
    return t[2];
}

static uint64_t weak_bench(void) {
    /* 100,000 live objects in a rooted array. */
    void **arr = ALLOC_REFS(WEAK_OBJS);
    ROOT(arr);
    for (long i = 0; i < WEAK_OBJS; i++) {
        node4 *n = ALLOC_NODE4();
        n->i = i;
        WRITE_SLOT(arr, i, n);
    }
    uint64_t base = full_gc_ns();
#if defined(TRICOLOR)
    tc_weak **weak = malloc(WEAK_OBJS * sizeof *weak);
    for (long i = 0; i < WEAK_OBJS; i++) weak[i] = tc_weak_new(M, arr[i]);
    for (long i = 0; i < WEAK_FINALS; i++) tc_set_finalizer(M, arr[i], count_finalizer);
#else
    /* Boehm's weak references: disappearing links in uncollectable memory. */
    GC_hidden_pointer *links = GC_MALLOC_ATOMIC_UNCOLLECTABLE(WEAK_OBJS * sizeof *links);
    for (long i = 0; i < WEAK_OBJS; i++) {
        links[i] = GC_HIDE_POINTER(arr[i]);
        GC_general_register_disappearing_link((void **)&links[i], arr[i]);
    }
    for (long i = 0; i < WEAK_FINALS; i++)
        GC_register_finalizer(arr[i], count_finalizer, NULL, NULL, NULL);
#endif
    uint64_t with = full_gc_ns();
    /* Reading a weak handle (Boehm: GC_call_with_alloc_lock around the read, as its docs ask). */
    const long n = 10000000;
    uint64_t sum = 0, t0 = now_ns();
    for (long i = 0; i < n; i++) {
#if defined(TRICOLOR)
        node4 *x = tc_weak_get(M, weak[i % WEAK_OBJS]);
#else
        node4 *x = GC_call_with_alloc_lock(reveal, &links[i % WEAK_OBJS]);
#endif
        sum += (uint64_t)x->i;
    }
    uint64_t read_ps = (now_ns() - t0) * 1000 / n;
    UNROOT(1);
    snprintf(pool_extra, sizeof pool_extra, " weak_read_ps=%llu cycle_base_us=%llu cycle_us=%llu",
             (unsigned long long)read_ps, (unsigned long long)(base / 1000),
             (unsigned long long)(with / 1000));
    return sum + finalizer_runs;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s binary-trees N | gcbench | msgbuf | msgbuf-ptr | pool | weak\n", argv[0]);
        return 2;
    }
#if defined(TRICOLOR)
    tc_heap *h = tc_heap_default();
    size_t two[] = {0, 8};
    NODE_T = tc_type_new(h, "node", sizeof(node), two, 2);
    NODE4_T = tc_type_new(h, "node4", sizeof(node4), two, 2);
    size_t zero[] = {0};
    REF_T = tc_type_new(h, "ref", sizeof(void *), zero, 1);
    MSG_T = tc_type_new(h, "msgnode", sizeof(msgnode), zero, 1);
    M = tc_mutator_attach(h);
#else
    GC_INIT();
    GC_set_on_collection_event(on_event);
#endif
    uint64_t sum;
    if (strcmp(argv[1], "binary-trees") == 0) {
        sum = binary_trees(argc > 2 ? atoi(argv[2]) : 18);
    } else if (strcmp(argv[1], "gcbench") == 0) {
        sum = gcbench();
    } else if (strcmp(argv[1], "msgbuf") == 0) {
        sum = msgbuf(0);
    } else if (strcmp(argv[1], "msgbuf-ptr") == 0) {
        sum = msgbuf(1);
    } else if (strcmp(argv[1], "pool") == 0) {
        sum = pool_bench();
    } else if (strcmp(argv[1], "weak") == 0) {
        sum = weak_bench();
    } else {
        fprintf(stderr, "unknown benchmark %s\n", argv[1]);
        return 2;
    }
    report(sum);
#if defined(TRICOLOR)
    tc_mutator_detach(M);
#endif
    return 0;
}
