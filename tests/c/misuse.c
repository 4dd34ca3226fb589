/* Misuse under LD_PRELOAD: each mode must abort with Tricolor's message naming the pointer.
 * The pointer is printed first ("PTR 0x...") so the test can look for it in the message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hides a pointer from the compiler, which would otherwise reject these misuses at compile
 * time (-Wfree-nonheap-object, -Wuse-after-free): we want them at run time. */
static void *launder(void *p) {
    void *volatile v = p;
    return v;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    const char *mode = argv[1];
    static long not_heap[4];
    if (strcmp(mode, "double") == 0) {
        char *p = malloc(64);
        fprintf(stderr, "PTR %p\n", (void *)p);
        char *again = launder(p);
        free(p);
        free(again);
    } else if (strcmp(mode, "invalid") == 0) {
        fprintf(stderr, "PTR %p\n", (void *)not_heap);
        free(launder(not_heap));
    } else if (strcmp(mode, "interior") == 0) {
        char *p = malloc(100);
        fprintf(stderr, "PTR %p\n", (void *)(p + 16));
        free(launder(p + 16));
    } else if (strcmp(mode, "large-double") == 0) {
        char *p = malloc(1 << 20);
        fprintf(stderr, "PTR %p\n", (void *)p);
        char *again = launder(p);
        free(p);
        free(again);
    } else if (strcmp(mode, "realloc-invalid") == 0) {
        fprintf(stderr, "PTR %p\n", (void *)not_heap);
        void *q = realloc(launder(not_heap), 10);
        (void)q;
    } else {
        return 2;
    }
    return 0; /* not reached when the misuse is caught */
}
