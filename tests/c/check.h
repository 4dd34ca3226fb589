/* A tiny check harness shared by the C test programs: CHECK never stops the program, the
 * exit status is the number of failures (capped), and a summary line says how many ran. */
#ifndef TRICOLOR_TEST_CHECK_H
#define TRICOLOR_TEST_CHECK_H
#include <stdio.h>

static int checks_run, checks_failed;
#define CHECK(cond)                                                                 \
    do {                                                                            \
        checks_run++;                                                               \
        if (!(cond)) {                                                              \
            checks_failed++;                                                        \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                           \
    } while (0)

static int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, checks_run - checks_failed, checks_failed);
    return checks_failed > 100 ? 100 : checks_failed;
}
#endif
