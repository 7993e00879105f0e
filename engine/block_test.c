/* engine/block_test.c: block builder and iterator: iteration, seeks at and between
 * keys for several restart intervals, large keys and values, malformed blocks. */
#include "engine/block.h"

#include <stdio.h>

#include "tests/test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int bytewise(const char *a, size_t alen, const char *b, size_t blen)
{
    return user_key_compare(a, alen, b, blen);
}

#define NKEYS 500

static char keys[NKEYS][24];
static size_t key_lens[NKEYS];

static int cmp_idx(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    return bytewise(keys[i], key_lens[i], keys[j], key_lens[j]);
}

/* NKEYS distinct sorted keys sharing prefixes, in keys[] order */
static void make_keys(void)
{
    static char tmp[NKEYS][24];
    static size_t tmp_lens[NKEYS];
    int idx[NKEYS];
    for (int i = 0; i < NKEYS; i++) {
        tmp_lens[i] = (size_t)snprintf(tmp[i], sizeof(tmp[i]), "key%06d-%c", i * 3,
                                       'a' + (int)(rnd() % 26));
        memcpy(keys[i], tmp[i], tmp_lens[i]);
        key_lens[i] = tmp_lens[i];
        idx[i] = i;
    }
    qsort(idx, NKEYS, sizeof(int), cmp_idx);
    for (int i = 0; i < NKEYS; i++) {
        memcpy(keys[i], tmp[idx[i]], tmp_lens[idx[i]]);
        key_lens[i] = tmp_lens[idx[i]];
    }
}

static void value_of(int i, char *buf, size_t *len)
{
    *len = (size_t)(i % 17) * 3;
    for (size_t k = 0; k < *len; k++) {
        buf[k] = (char)(i + k);
    }
}

static void check_block(int interval, int *failures)
{
    struct block_builder bb;
    block_builder_init(&bb, interval);
    for (int i = 0; i < NKEYS; i++) {
        char v[64];
        size_t vl;
        value_of(i, v, &vl);
        block_builder_add(&bb, keys[i], key_lens[i], v, vl);
    }
    size_t est = block_builder_estimate(&bb), len;
    const char *data = block_builder_finish(&bb, &len);
    struct block blk;
    if (est != len || block_parse(data, len, &blk) != LSM_OK) {
        (*failures)++;
        block_builder_free(&bb);
        return;
    }
    struct block_iter it;
    block_iter_init(&it, &blk, bytewise);
    int i = 0;
    for (block_iter_seek_to_first(&it); block_iter_valid(&it);
         block_iter_next(&it), i++) {
        char v[64];
        size_t vl;
        value_of(i, v, &vl);
        if (block_iter_key_len(&it) != key_lens[i] ||
            memcmp(block_iter_key(&it), keys[i], key_lens[i]) != 0 ||
            block_iter_value_len(&it) != vl ||
            memcmp(block_iter_value(&it), v, vl) != 0) {
            (*failures)++;
            break;
        }
    }
    if (i != NKEYS || block_iter_status(&it) != LSM_OK) {
        (*failures)++;
    }
    for (i = 0; i < NKEYS; i++) {
        /* exact key */
        block_iter_seek(&it, keys[i], key_lens[i]);
        if (!block_iter_valid(&it) ||
            bytewise(block_iter_key(&it), block_iter_key_len(&it), keys[i],
                     key_lens[i]) != 0) {
            (*failures)++;
            break;
        }
        /* just before it: a strict prefix of the key sorts before it */
        block_iter_seek(&it, keys[i], key_lens[i] - 1);
        if (!block_iter_valid(&it) ||
            bytewise(block_iter_key(&it), block_iter_key_len(&it), keys[i],
                     key_lens[i]) != 0) {
            (*failures)++;
            break;
        }
    }
    block_iter_seek(&it, "zzz", 3); /* past the end */
    if (block_iter_valid(&it)) {
        (*failures)++;
    }
    block_iter_seek(&it, "", 0);
    if (!block_iter_valid(&it) || block_iter_key_len(&it) != key_lens[0]) {
        (*failures)++;
    }
    block_iter_seek_to_last(&it);
    if (!block_iter_valid(&it) || bytewise(block_iter_key(&it), block_iter_key_len(&it),
                                           keys[NKEYS - 1], key_lens[NKEYS - 1]) != 0) {
        (*failures)++;
    }
    block_iter_free(&it);
    block_builder_free(&bb);
}

static void test_block_iterate_and_seek(void)
{
    int failures = 0;
    int intervals[] = {1, 2, 3, 16, 1000};
    for (size_t k = 0; k < sizeof(intervals) / sizeof(intervals[0]); k++) {
        check_block(intervals[k], &failures);
    }
    CHECK_EQ_INT(failures, 0);
}

static void test_block_empty(void)
{
    struct block_builder bb;
    block_builder_init(&bb, 16);
    CHECK(block_builder_empty(&bb));
    size_t len;
    const char *data = block_builder_finish(&bb, &len);
    CHECK_EQ_INT(len, 8);
    struct block blk;
    CHECK_EQ_INT(block_parse(data, len, &blk), LSM_OK);
    struct block_iter it;
    block_iter_init(&it, &blk, bytewise);
    block_iter_seek_to_first(&it);
    CHECK(!block_iter_valid(&it));
    block_iter_seek(&it, "a", 1);
    CHECK(!block_iter_valid(&it));
    block_iter_seek_to_last(&it);
    CHECK(!block_iter_valid(&it));
    CHECK_EQ_INT(block_iter_status(&it), LSM_OK);
    block_builder_free(&bb);
}

static void test_block_large_keys_and_values_reuse(void)
{
    struct block_builder bb;
    block_builder_init(&bb, 4);
    size_t vlen = 3 << 20;
    char *big = lsm_malloc(vlen);
    memset(big, 'v', vlen);
    char k1[300], k2[300];
    memset(k1, 'k', sizeof(k1));
    memcpy(k2, k1, sizeof(k2));
    k2[299] = 'l';
    block_builder_add(&bb, k1, sizeof(k1), big, vlen);
    block_builder_add(&bb, k2, sizeof(k2), "", 0);
    size_t len;
    const char *data = block_builder_finish(&bb, &len);
    struct block blk;
    CHECK_EQ_INT(block_parse(data, len, &blk), LSM_OK);
    struct block_iter it;
    block_iter_init(&it, &blk, bytewise);
    block_iter_seek(&it, k2, sizeof(k2));
    CHECK(block_iter_valid(&it));
    CHECK_EQ_MEM(block_iter_key(&it), block_iter_key_len(&it), k2, sizeof(k2));
    CHECK_EQ_INT(block_iter_value_len(&it), 0);
    block_iter_seek_to_first(&it);
    CHECK_EQ_MEM(block_iter_value(&it), block_iter_value_len(&it), big, vlen);
    block_iter_free(&it);
    /* a reset builder builds an independent block */
    block_builder_reset(&bb);
    block_builder_add(&bb, "a", 1, "1", 1);
    data = block_builder_finish(&bb, &len);
    CHECK_EQ_INT(block_parse(data, len, &blk), LSM_OK);
    block_iter_init(&it, &blk, bytewise);
    block_iter_seek_to_first(&it);
    CHECK_EQ_MEM(block_iter_key(&it), block_iter_key_len(&it), "a", 1);
    block_iter_next(&it);
    CHECK(!block_iter_valid(&it));
    block_iter_free(&it);
    block_builder_free(&bb);
    lsm_free(big);
}

static void test_block_malformed_never_reads_out_of_bounds(void)
{
    /* a good block damaged at random, and random bytes: walking and seeking must stay
     * in bounds (ASan checks) and end valid or LSM_CORRUPT */
    struct block_builder bb;
    block_builder_init(&bb, 4);
    for (int i = 0; i < 50; i++) {
        block_builder_add(&bb, keys[i], key_lens[i], "value", 5);
    }
    size_t len;
    const char *good = block_builder_finish(&bb, &len);
    int corrupt_seen = 0;
    for (int round = 0; round < 3000; round++) {
        size_t n = round < 2000 ? len : (size_t)(rnd() % 200);
        char *buf = lsm_malloc(n + 1);
        if (round < 2000) {
            memcpy(buf, good, n);
            for (int k = 0; k < 1 + round % 4; k++) {
                buf[rnd() % n] ^= (char)(1 + rnd() % 255);
            }
        } else {
            for (size_t k = 0; k < n; k++) {
                buf[k] = (char)rnd();
            }
        }
        struct block blk;
        if (block_parse(buf, n, &blk) == LSM_OK) {
            struct block_iter it;
            block_iter_init(&it, &blk, bytewise);
            int steps = 0;
            for (block_iter_seek_to_first(&it); block_iter_valid(&it) && steps < 10000;
                 block_iter_next(&it)) {
                steps++;
            }
            block_iter_seek(&it, keys[25], key_lens[25]);
            block_iter_seek_to_last(&it);
            corrupt_seen += block_iter_status(&it) == LSM_CORRUPT;
            block_iter_free(&it);
        }
        lsm_free(buf);
    }
    CHECK(corrupt_seen > 0);
    CHECK_EQ_INT(block_parse("abc", 3, &(struct block){0}), LSM_CORRUPT);
    block_builder_free(&bb);
}

int main(void)
{
    make_keys();
    TEST_RUN(test_block_iterate_and_seek);
    TEST_RUN(test_block_empty);
    TEST_RUN(test_block_large_keys_and_values_reuse);
    TEST_RUN(test_block_malformed_never_reads_out_of_bounds);
    TEST_MAIN_END();
}
