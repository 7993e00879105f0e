/* engine/bloom_test.c: no false negatives, the false-positive rate at 10 bits per
 * key, tiny and malformed filters. */
#include "engine/bloom.h"

#include <stdio.h>

#include "tests/test.h"

static uint64_t key_hash(const char *prefix, int i)
{
    char k[32];
    int n = snprintf(k, sizeof(k), "%s%08d", prefix, i);
    return bloom_hash(k, (size_t)n);
}

static double fp_rate(int bits_per_key, int nkeys, int *false_negatives)
{
    struct bloom_builder b;
    bloom_builder_init(&b, bits_per_key);
    for (int i = 0; i < nkeys; i++) {
        bloom_builder_add_hash(&b, key_hash("present-", i));
    }
    struct lsm_buf out = {0};
    bloom_builder_finish(&b, &out);
    struct bloom_filter f;
    if (!bloom_filter_parse(out.p, out.len, &f)) {
        *false_negatives = -1;
        return 1.0;
    }
    *false_negatives = 0;
    for (int i = 0; i < nkeys; i++) {
        *false_negatives += !bloom_may_contain(&f, key_hash("present-", i));
    }
    int fp = 0, probes = 100000;
    for (int i = 0; i < probes; i++) {
        fp += bloom_may_contain(&f, key_hash("absent-", i));
    }
    bloom_builder_free(&b);
    lsm_buf_free(&out);
    return (double)fp / probes;
}

static void test_bloom_false_positive_rate_at_10_bits(void)
{
    int fn;
    double r = fp_rate(10, 100000, &fn);
    fprintf(stderr, "bloom: 10 bits/key, 100k keys: %.3f%% false positives\n", r * 100);
    CHECK_EQ_INT(fn, 0);
    CHECK(r < 0.02);
    CHECK(r > 0.002); /* a filter that says "no" to everything would pass the above */
}

static void test_bloom_other_sizes_have_no_false_negatives(void)
{
    int sizes[] = {0, 1, 7, 100, 5000};
    int bits[] = {1, 5, 10, 20};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (size_t k = 0; k < sizeof(bits) / sizeof(bits[0]); k++) {
            int fn;
            double r = fp_rate(bits[k], sizes[s], &fn);
            CHECK_EQ_INT(fn, 0);
            if (bits[k] == 20 && sizes[s] >= 5000) {
                CHECK(r < 0.002);
            }
        }
    }
}

static void test_bloom_malformed_matches_everything(void)
{
    struct bloom_filter f;
    CHECK(!bloom_filter_parse("", 0, &f));
    CHECK(bloom_may_contain(&f, 42));
    char bad[70] = {0};
    bad[64] = 6;
    bad[65] = 9; /* unknown kind */
    bad[66] = 1;
    CHECK(!bloom_filter_parse(bad, sizeof(bad), &f));
    CHECK(bloom_may_contain(&f, 42));
    bad[65] = 1;
    CHECK(bloom_filter_parse(bad, sizeof(bad), &f));
    CHECK(!bloom_may_contain(&f, 42)); /* all-zero bits: certainly absent */
    bad[66] = 2;                       /* num_lines does not match the size */
    CHECK(!bloom_filter_parse(bad, sizeof(bad), &f));
}

int main(void)
{
    TEST_RUN(test_bloom_false_positive_rate_at_10_bits);
    TEST_RUN(test_bloom_other_sizes_have_no_false_negatives);
    TEST_RUN(test_bloom_malformed_matches_everything);
    TEST_MAIN_END();
}
