/* tests/test.h: the tiny harness every C unit test links against.
 *
 * A test file defines functions `static void test_xxx(void)` and lists them in
 * main() with TEST_RUN(test_xxx). Checks use CHECK(cond) / CHECK_EQ_INT / CHECK_EQ_STR
 * / CHECK_EQ_MEM; a failed check prints file:line and the values, marks the current
 * test failed and returns from it. TEST_MAIN_END prints "N passed, M failed" (one
 * test = one function) and exits non-zero when anything failed.
 */
#ifndef KVD_TEST_H
#define KVD_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_passed_count;
static int test_failed_count;
static int test_current_failed;
static const char *test_current_name;

#define TEST_FAIL_AT(...)                                                     \
    do {                                                                      \
        fprintf(stderr, "  FAIL %s (%s:%d): ", test_current_name, __FILE__,   \
                __LINE__);                                                    \
        fprintf(stderr, __VA_ARGS__);                                         \
        fputc('\n', stderr);                                                  \
        test_current_failed = 1;                                              \
    } while (0)

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            TEST_FAIL_AT("%s", #cond);                                        \
            return;                                                           \
        }                                                                     \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                    \
    do {                                                                      \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);       \
        if (check_a_ != check_b_) {                                           \
            TEST_FAIL_AT("%s == %s: %lld != %lld", #a, #b, check_a_, check_b_); \
            return;                                                           \
        }                                                                     \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                    \
    do {                                                                      \
        const char *check_a_ = (a), *check_b_ = (b);                          \
        if (check_a_ == NULL || check_b_ == NULL ||                           \
            strcmp(check_a_, check_b_) != 0) {                                \
            TEST_FAIL_AT("%s == %s: \"%s\" != \"%s\"", #a, #b,                \
                         check_a_ ? check_a_ : "(null)",                      \
                         check_b_ ? check_b_ : "(null)");                     \
            return;                                                           \
        }                                                                     \
    } while (0)

#define CHECK_EQ_MEM(a, alen, b, blen)                                        \
    do {                                                                      \
        size_t check_al_ = (size_t)(alen), check_bl_ = (size_t)(blen);        \
        if (check_al_ != check_bl_ || memcmp((a), (b), check_al_) != 0) {     \
            TEST_FAIL_AT("%s == %s (lengths %zu, %zu)", #a, #b, check_al_,    \
                         check_bl_);                                          \
            return;                                                           \
        }                                                                     \
    } while (0)

#define TEST_RUN(fn)                                                          \
    do {                                                                      \
        test_current_name = #fn;                                              \
        test_current_failed = 0;                                              \
        fn();                                                                 \
        if (test_current_failed) {                                            \
            test_failed_count++;                                              \
            fprintf(stderr, "not ok %s\n", #fn);                              \
        } else {                                                              \
            test_passed_count++;                                              \
            if (getenv("TEST_VERBOSE")) fprintf(stderr, "ok %s\n", #fn);      \
        }                                                                     \
    } while (0)

#define TEST_MAIN_END()                                                       \
    do {                                                                      \
        printf("%d passed, %d failed\n", test_passed_count,                   \
               test_failed_count);                                            \
        return test_failed_count == 0 ? 0 : 1;                                \
    } while (0)

#endif
