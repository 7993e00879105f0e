/* engine/cache_test.c: the sharded LRU block cache: hits, eviction order, pins that
 * outlive eviction and replacement, capacity 0, and concurrent use. */
#include "engine/cache.h"

#include <pthread.h>

#include "tests/test.h"

static int deleted[4096];

static void deleter(void *v)
{
    deleted[(intptr_t)v]++;
}

static void *val(int i)
{
    return (void *)(intptr_t)i;
}

static void test_cache_hit_and_miss(void)
{
    memset(deleted, 0, sizeof(deleted));
    struct block_cache *c = block_cache_create(1 << 20);
    CHECK(block_cache_lookup(c, 1, 0) == NULL);
    struct cache_handle *h = block_cache_insert(c, 1, 0, val(7), 100, deleter);
    CHECK(cache_handle_value(h) == val(7));
    block_cache_release(c, h);
    h = block_cache_lookup(c, 1, 0);
    CHECK(h != NULL);
    CHECK(cache_handle_value(h) == val(7));
    block_cache_release(c, h);
    CHECK(block_cache_lookup(c, 2, 0) == NULL); /* other file, same offset */
    CHECK(block_cache_lookup(c, 1, 4096) == NULL);
    struct block_cache_stats st;
    block_cache_stats(c, &st);
    CHECK_EQ_INT(st.hits, 1);
    CHECK_EQ_INT(st.misses, 3);
    CHECK_EQ_INT(st.usage, 100);
    CHECK_EQ_INT(st.entries, 1);
    CHECK_EQ_INT(deleted[7], 0);
    block_cache_destroy(&c);
    CHECK(c == NULL);
    CHECK_EQ_INT(deleted[7], 1);
}

static void test_cache_evicts_least_recently_used(void)
{
    memset(deleted, 0, sizeof(deleted));
    /* 16 shards: 16 KiB total is 1 KiB per shard; use many keys, check totals */
    struct block_cache *c = block_cache_create(16 * 1024);
    for (int i = 0; i < 1000; i++) {
        block_cache_release(
            c, block_cache_insert(c, 9, (uint64_t)i * 4096, val(i), 100, deleter));
        /* keep entry 0 hot */
        struct cache_handle *h = block_cache_lookup(c, 9, 0);
        CHECK(h != NULL);
        block_cache_release(c, h);
    }
    struct block_cache_stats st;
    block_cache_stats(c, &st);
    CHECK(st.usage <= 16 * 1024);
    CHECK(st.evictions > 800);
    CHECK_EQ_INT(deleted[0], 0);
    int live = 0;
    for (int i = 0; i < 1000; i++) {
        live += deleted[i] == 0;
        CHECK(deleted[i] <= 1);
    }
    CHECK_EQ_INT(live, (int)st.entries);
    block_cache_destroy(&c);
    for (int i = 0; i < 1000; i++) {
        CHECK_EQ_INT(deleted[i], 1);
    }
}

static void test_cache_pinned_entry_outlives_eviction_and_replace(void)
{
    memset(deleted, 0, sizeof(deleted));
    struct block_cache *c = block_cache_create(16 * 100);
    struct cache_handle *pinned = block_cache_insert(c, 1, 0, val(1), 100, deleter);
    /* replace it while pinned: lookups see the new value, the old one lives on */
    struct cache_handle *h2 = block_cache_insert(c, 1, 0, val(2), 100, deleter);
    block_cache_release(c, h2);
    struct cache_handle *h = block_cache_lookup(c, 1, 0);
    CHECK(cache_handle_value(h) == val(2));
    block_cache_release(c, h);
    CHECK_EQ_INT(deleted[1], 0);
    CHECK(cache_handle_value(pinned) == val(1));
    block_cache_release(c, pinned);
    CHECK_EQ_INT(deleted[1], 1);

    /* a pinned entry is not evicted however much is inserted */
    pinned = block_cache_lookup(c, 1, 0);
    for (int i = 10; i < 500; i++) {
        block_cache_release(c,
                            block_cache_insert(c, 2, (uint64_t)i, val(i), 100, deleter));
    }
    CHECK_EQ_INT(deleted[2], 0);
    CHECK(cache_handle_value(pinned) == val(2));
    block_cache_release(c, pinned);
    block_cache_set_capacity(c, 0);
    CHECK_EQ_INT(deleted[2], 1);
    struct block_cache_stats st;
    block_cache_stats(c, &st);
    CHECK_EQ_INT(st.usage, 0);
    block_cache_destroy(&c);
}

static void test_cache_capacity_zero_keeps_nothing(void)
{
    memset(deleted, 0, sizeof(deleted));
    struct block_cache *c = block_cache_create(0);
    struct cache_handle *h = block_cache_insert(c, 1, 0, val(3), 10, deleter);
    CHECK(cache_handle_value(h) == val(3));
    CHECK(block_cache_lookup(c, 1, 0) == NULL);
    block_cache_release(c, h);
    CHECK_EQ_INT(deleted[3], 1);
    block_cache_destroy(&c);
}

static struct block_cache *shared;

static void *worker(void *arg)
{
    uint64_t x = (uint64_t)(intptr_t)arg * 7919 + 1;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t off = (x >> 33) % 2000;
        struct cache_handle *h = block_cache_lookup(shared, 5, off);
        if (h == NULL) {
            h = block_cache_insert(shared, 5, off, val((int)off), 64, deleter);
        }
        if (cache_handle_value(h) != val((int)off)) {
            return (void *)1;
        }
        block_cache_release(shared, h);
    }
    return NULL;
}

static void test_cache_concurrent_lookups_and_inserts(void)
{
    shared = block_cache_create(64 * 1000);
    pthread_t t[3];
    for (intptr_t i = 0; i < 3; i++) {
        pthread_create(&t[i], NULL, worker, (void *)i);
    }
    int bad = 0;
    for (int i = 0; i < 3; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += r != NULL;
    }
    CHECK_EQ_INT(bad, 0);
    struct block_cache_stats st;
    block_cache_stats(shared, &st);
    CHECK_EQ_INT(st.hits + st.misses, 300000);
    CHECK(st.usage <= 64 * 1000 + 64 * 16);
    block_cache_destroy(&shared);
}

int main(void)
{
    TEST_RUN(test_cache_hit_and_miss);
    TEST_RUN(test_cache_evicts_least_recently_used);
    TEST_RUN(test_cache_pinned_entry_outlives_eviction_and_replace);
    TEST_RUN(test_cache_capacity_zero_keeps_nothing);
    TEST_RUN(test_cache_concurrent_lookups_and_inserts);
    TEST_MAIN_END();
}
