/* unit.h: a tiny test harness; each test is a void function of no args.
 *
 *     static void test_empty_body_is_rejected(void) { CHECK(...); }
 *     UNIT_MAIN(UNIT_TEST(test_empty_body_is_rejected), ...)
 *
 * A failing CHECK prints file:line and ends the current test, which counts
 * as one failure; the binary prints "<file>: N passed, N failed" as its last
 * line and exits non-zero when anything failed. Everything here is static:
 * the tests link with the worker's objects and must not clash with them. */
#ifndef OMNI_UNIT_H
#define OMNI_UNIT_H

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} unit_test_t;

static int unit_failed_now;

static void unit_report(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
    unit_failed_now = 1;
}

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            unit_report(__FILE__, __LINE__, #cond);                            \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                     \
    do {                                                                       \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);          \
        if (unit_a_ != unit_b_) {                                              \
            fprintf(stderr, "    %s = %lld, %s = %lld\n", #a, unit_a_, #b,     \
                unit_b_);                                                      \
            unit_report(__FILE__, __LINE__, #a " == " #b);                     \
            return;                                                            \
        }                                                                      \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                     \
    do {                                                                       \
        const char *unit_a_ = (a), *unit_b_ = (b);                             \
        if (unit_a_ == NULL || unit_b_ == NULL                                 \
            || strcmp(unit_a_, unit_b_) != 0) {                                \
            fprintf(stderr, "    %s = \"%s\"\n    %s = \"%s\"\n", #a,          \
                unit_a_ ? unit_a_ : "(null)", #b,                              \
                unit_b_ ? unit_b_ : "(null)");                                 \
            unit_report(__FILE__, __LINE__, #a " equals " #b);                 \
            return;                                                            \
        }                                                                      \
    } while (0)

#define UNIT_TEST(fn)                                                          \
    {                                                                          \
#fn, fn                                                                \
    }

static int unit_run(const char *file, const unit_test_t *tests, size_t n)
{
    const char *base = strrchr(file, '/');
    int passed = 0, failed = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        unit_failed_now = 0;
        tests[i].fn();
        if (unit_failed_now) {
            fprintf(stderr, "FAIL %s\n", tests[i].name);
            failed++;
        } else {
            passed++;
        }
    }
    fflush(stderr);
    printf(
        "%s: %d passed, %d failed\n", base ? base + 1 : file, passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}

#define UNIT_MAIN(...)                                                         \
    int main(void)                                                             \
    {                                                                          \
        static const unit_test_t unit_tests_[] = {__VA_ARGS__};                \
        return unit_run(__FILE__, unit_tests_,                                 \
            sizeof(unit_tests_) / sizeof(unit_tests_[0]));                     \
    }

#endif
