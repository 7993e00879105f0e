/* engine/memtable_test.c: unit tests for the skiplist memtable. */
#include "engine/memtable.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "tests/test.h"

static void test_memtable_empty_get_misses(void)
{
    struct memtable *mt = memtable_create(NULL);
    int kind;
    const char *v;
    size_t vl;
    CHECK_EQ_INT(memtable_get(mt, "a", 1, 100, &kind, &v, &vl, NULL), 0);
    struct memtable_iter it;
    memtable_iter_init(&it, mt);
    memtable_iter_seek_first(&it);
    CHECK(!memtable_iter_valid(&it));
    memtable_unref(mt);
}

static void test_memtable_newest_version_visible_to_snapshot(void)
{
    struct memtable *mt = memtable_create(NULL);
    memtable_add(mt, 5, 1, "k", 1, "v5", 2);
    memtable_add(mt, 9, 1, "k", 1, "v9", 2);
    memtable_add(mt, 12, 0, "k", 1, "", 0);
    int kind;
    const char *v;
    size_t vl;
    uint64_t seq;
    CHECK(memtable_get(mt, "k", 1, 100, &kind, &v, &vl, &seq));
    CHECK_EQ_INT(kind, 0);
    CHECK_EQ_INT(seq, 12);
    CHECK(memtable_get(mt, "k", 1, 11, &kind, &v, &vl, &seq));
    CHECK_EQ_INT(kind, 1);
    CHECK_EQ_MEM(v, vl, "v9", 2);
    CHECK(memtable_get(mt, "k", 1, 8, &kind, &v, &vl, &seq));
    CHECK_EQ_MEM(v, vl, "v5", 2);
    CHECK_EQ_INT(memtable_get(mt, "k", 1, 4, &kind, &v, &vl, &seq), 0);
    /* prefixes are different keys */
    CHECK_EQ_INT(memtable_get(mt, "", 0, 100, &kind, &v, &vl, &seq), 0);
    CHECK_EQ_INT(memtable_get(mt, "kk", 2, 100, &kind, &v, &vl, &seq), 0);
    memtable_unref(mt);
}

static void test_memtable_iterates_in_internal_key_order(void)
{
    struct memtable *mt = memtable_create(NULL);
    const char *keys[] = {"b", "a", "ab", "", "b", "c"};
    for (int i = 0; i < 6; i++) {
        memtable_add(mt, (uint64_t)i + 1, 1, keys[i], strlen(keys[i]), "x", 1);
    }
    /* expected: "" (4), a (2), ab (3), b (5), b (1), c (6) */
    const char *ek[] = {"", "a", "ab", "b", "b", "c"};
    uint64_t es[] = {4, 2, 3, 5, 1, 6};
    struct memtable_iter it;
    memtable_iter_init(&it, mt);
    int i = 0;
    for (memtable_iter_seek_first(&it); memtable_iter_valid(&it);
         memtable_iter_next(&it)) {
        size_t kl;
        const char *k = memtable_iter_ikey(&it, &kl);
        CHECK(i < 6);
        CHECK_EQ_MEM(k, kl - 8, ek[i], strlen(ek[i]));
        uint64_t tr = 0;
        for (int b = 0; b < 8; b++) {
            tr |= (uint64_t)(unsigned char)k[kl - 8 + b] << (8 * b);
        }
        CHECK_EQ_INT(tr, memtable_iter_trailer(&it));
        CHECK_EQ_INT(tr >> 8, es[i]);
        i++;
    }
    CHECK_EQ_INT(i, 6);
    memtable_iter_seek(&it, "b", 1, 3);
    CHECK(memtable_iter_valid(&it));
    CHECK_EQ_INT(memtable_iter_trailer(&it) >> 8, 1);
    memtable_iter_seek(&it, "bb", 2, 100);
    CHECK(memtable_iter_valid(&it));
    size_t kl;
    const char *k = memtable_iter_ikey(&it, &kl);
    CHECK_EQ_MEM(k, kl - 8, "c", 1);
    memtable_unref(mt);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void test_memtable_many_random_keys_sorted_and_found(void)
{
    struct arena_pool *pool = arena_pool_create(64 * 1024, 4);
    struct memtable *mt = memtable_create(pool);
    enum { N = 20000 };
    static uint32_t keys[N];
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys[i] = (uint32_t)x;
        char k[4] = {(char)(keys[i] >> 24), (char)(keys[i] >> 16), (char)(keys[i] >> 8),
                     (char)keys[i]};
        memtable_add(mt, (uint64_t)i + 1, 1, k, 4, &keys[i], 4);
    }
    CHECK_EQ_INT(memtable_count(mt), N);
    CHECK(memtable_bytes(mt) > (size_t)N * 24);
    for (int i = 0; i < N; i += 7) {
        char k[4] = {(char)(keys[i] >> 24), (char)(keys[i] >> 16), (char)(keys[i] >> 8),
                     (char)keys[i]};
        int kind;
        const char *v;
        size_t vl;
        CHECK(memtable_get(mt, k, 4, UINT64_MAX >> 8, &kind, &v, &vl, NULL));
        CHECK_EQ_INT(vl, 4);
        uint32_t got;
        memcpy(&got, v, 4);
        CHECK_EQ_INT(got, keys[i]);
    }
    qsort(keys, N, sizeof(keys[0]), cmp_u32);
    struct memtable_iter it;
    memtable_iter_init(&it, mt);
    int i = 0;
    for (memtable_iter_seek_first(&it); memtable_iter_valid(&it);
         memtable_iter_next(&it)) {
        size_t kl;
        const unsigned char *k = (const unsigned char *)memtable_iter_ikey(&it, &kl);
        uint32_t v =
            (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 | k[3];
        CHECK_EQ_INT(v, keys[i]);
        i++;
    }
    CHECK_EQ_INT(i, N);
    memtable_unref(mt);
    /* a second memtable reuses the pooled chunks */
    mt = memtable_create(pool);
    memtable_add(mt, 1, 1, "k", 1, "v", 1);
    memtable_unref(mt);
    arena_pool_destroy(&pool);
    CHECK(pool == NULL);
}

static void test_memtable_large_value_gets_own_chunk(void)
{
    struct arena_pool *pool = arena_pool_create(4096, 2);
    struct memtable *mt = memtable_create(pool);
    size_t n = 100000;
    char *big = malloc(n);
    memset(big, 'z', n);
    memtable_add(mt, 1, 1, "big", 3, big, n);
    memtable_add(mt, 2, 1, "small", 5, "s", 1);
    int kind;
    const char *v;
    size_t vl;
    CHECK(memtable_get(mt, "big", 3, 10, &kind, &v, &vl, NULL));
    CHECK_EQ_MEM(v, vl, big, n);
    free(big);
    memtable_unref(mt);
    arena_pool_destroy(&pool);
}

/* One writer, two readers: every reader sees each key once inserted, in order. */
struct conc_state {
    struct memtable *mt;
    atomic_int written; /* keys 0..written-1 are in */
    atomic_int stop;
    atomic_int errors;
};

static void conc_key(int i, char k[16])
{
    snprintf(k, 16, "%07d", i % 10000000);
}

static void *conc_reader(void *arg)
{
    struct conc_state *s = arg;
    while (!atomic_load(&s->stop)) {
        int w = atomic_load(&s->written);
        for (int i = 0; i < w; i += 97) {
            char k[16];
            conc_key(i, k);
            int kind;
            const char *v;
            size_t vl;
            if (!memtable_get(s->mt, k, 7, UINT64_MAX >> 8, &kind, &v, &vl, NULL)) {
                atomic_fetch_add(&s->errors, 1);
            }
        }
        struct memtable_iter it;
        memtable_iter_init(&it, s->mt);
        size_t pl = 0;
        char prev[16] = {0};
        for (memtable_iter_seek_first(&it); memtable_iter_valid(&it);
             memtable_iter_next(&it)) {
            size_t kl;
            const char *k = memtable_iter_ikey(&it, &kl);
            if (pl && memcmp(prev, k, 7) >= 0) {
                atomic_fetch_add(&s->errors, 1);
            }
            memcpy(prev, k, 7);
            pl = 7;
        }
    }
    return NULL;
}

static void test_memtable_concurrent_readers_see_consistent_list(void)
{
    struct conc_state s = {0};
    s.mt = memtable_create(NULL);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&th[i], NULL, conc_reader, &s);
    }
    for (int i = 0; i < 20000; i++) {
        int k = (i * 7919) % 20000; /* scrambled order */
        char key[16];
        conc_key(k, key);
        memtable_add(s.mt, (uint64_t)i + 1, 1, key, 7, "v", 1);
    }
    atomic_store(&s.written, 20000);
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_store(&s.stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_EQ_INT(atomic_load(&s.errors), 0);
    memtable_unref(s.mt);
}

/* Sorted runs (a server's batches: ascending within a run, random between runs)
 * go through the writer's finger; the list must stay exactly ordered, with
 * repeated keys (newer first) and keys before the last insert mixed in. */
static void test_memtable_sorted_runs_use_the_finger_and_stay_ordered(void)
{
    struct arena_pool *pool = arena_pool_create(64 * 1024, 4);
    struct memtable *mt = memtable_create(pool);
    enum { RUNS = 300, RUN = 64, N = RUNS * RUN };
    static uint32_t keys[N];
    uint64_t x = 0x2545F4914F6CDD1Dull;
    int n = 0;
    for (int r = 0; r < RUNS; r++) {
        uint32_t run[RUN];
        for (int j = 0; j < RUN; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            run[j] = (uint32_t)x % 5000; /* small space: many repeats */
        }
        if (r % 5 != 4) {
            qsort(run, RUN, sizeof(run[0]), cmp_u32); /* every 5th run unsorted */
        }
        for (int j = 0; j < RUN; j++) {
            char k[4] = {(char)(run[j] >> 24), (char)(run[j] >> 16), (char)(run[j] >> 8),
                         (char)run[j]};
            uint32_t seq = (uint32_t)n + 1;
            memtable_add(mt, seq, 1, k, 4, &seq, 4);
            keys[n++] = run[j];
        }
    }
    /* the newest version of every key is found */
    for (int i = N - 1; i >= 0; i -= 13) {
        char k[4] = {(char)(keys[i] >> 24), (char)(keys[i] >> 16), (char)(keys[i] >> 8),
                     (char)keys[i]};
        int kind;
        const char *v;
        size_t vl;
        uint64_t seq;
        CHECK(memtable_get(mt, k, 4, UINT64_MAX >> 8, &kind, &v, &vl, &seq));
        int newest = i;
        for (int j = i + 1; j < N; j++) {
            if (keys[j] == keys[i]) {
                newest = j;
            }
        }
        CHECK_EQ_INT(seq, (uint64_t)newest + 1);
    }
    /* iteration: keys ascending, versions of one key newest first, all N there */
    struct memtable_iter it;
    memtable_iter_init(&it, mt);
    int seen = 0;
    uint32_t pk = 0;
    uint64_t pseq = 0;
    for (memtable_iter_seek_first(&it); memtable_iter_valid(&it);
         memtable_iter_next(&it)) {
        size_t kl;
        const unsigned char *k = (const unsigned char *)memtable_iter_ikey(&it, &kl);
        uint32_t v =
            (uint32_t)k[0] << 24 | (uint32_t)k[1] << 16 | (uint32_t)k[2] << 8 | k[3];
        uint64_t seq = memtable_iter_trailer(&it) >> 8;
        if (seen > 0) {
            CHECK(v > pk || (v == pk && seq < pseq));
        }
        pk = v;
        pseq = seq;
        seen++;
    }
    CHECK_EQ_INT(seen, N);
    memtable_unref(mt);
    arena_pool_destroy(&pool);
}

/* Values past the inline limit live in their own region: every length round the
 * limit, and one larger than a chunk, read back whole through get and iteration. */
static void test_memtable_long_values_out_of_line_read_back(void)
{
    struct arena_pool *pool = arena_pool_create(64 * 1024, 4);
    struct memtable *mt = memtable_create(pool);
    enum { N = 400 };
    static char val[200 * 1024];
    for (size_t i = 0; i < sizeof(val); i++) {
        val[i] = (char)('a' + i % 23);
    }
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        lens[i] = i == N - 1 ? sizeof(val) - 64 : (size_t)(i * 7 % 300);
        if (i < 6) {
            lens[i] = (size_t)(126 + i); /* 126..131 round the limit */
        }
        char k[8];
        snprintf(k, sizeof(k), "k%05d", i);
        memtable_add(mt, (uint64_t)i + 1, 1, k, 6, val + i % 50, lens[i]);
    }
    for (int i = 0; i < N; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%05d", i);
        int kind;
        const char *v;
        size_t vl;
        CHECK(memtable_get(mt, k, 6, UINT64_MAX >> 8, &kind, &v, &vl, NULL));
        CHECK_EQ_INT(vl, lens[i]);
        CHECK(memcmp(v, val + i % 50, vl) == 0);
    }
    struct memtable_iter it;
    memtable_iter_init(&it, mt);
    int i = 0;
    for (memtable_iter_seek_first(&it); memtable_iter_valid(&it);
         memtable_iter_next(&it)) {
        size_t vl;
        const char *v = memtable_iter_value(&it, &vl);
        CHECK_EQ_INT(vl, lens[i]);
        CHECK(memcmp(v, val + i % 50, vl) == 0);
        i++;
    }
    CHECK_EQ_INT(i, N);
    memtable_unref(mt);
    arena_pool_destroy(&pool);
}

int main(void)
{
    TEST_RUN(test_memtable_empty_get_misses);
    TEST_RUN(test_memtable_newest_version_visible_to_snapshot);
    TEST_RUN(test_memtable_iterates_in_internal_key_order);
    TEST_RUN(test_memtable_many_random_keys_sorted_and_found);
    TEST_RUN(test_memtable_sorted_runs_use_the_finger_and_stay_ordered);
    TEST_RUN(test_memtable_large_value_gets_own_chunk);
    TEST_RUN(test_memtable_long_values_out_of_line_read_back);
    TEST_RUN(test_memtable_concurrent_readers_see_consistent_list);
    TEST_MAIN_END();
}
