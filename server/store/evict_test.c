/* server/store/evict_test.c: unit tests of cache-mode eviction
 * (server/store/ks_evict.c) and the LRU/LFU bookkeeping it relies on
 * (server/store/ks.c), in-process with an injected clock (server.mstime) and limits
 * set relative to kv_used_memory().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/test_client.h"
#include "tests/test.h"

static struct client tc;
static const long long T0 = 1700000000000LL; /* the injected clock's start, Unix ms */

static void setup(void) {
    if (server.db == NULL) {
        tclient_boot(MODE_CACHE);
        server.active_expire_enabled = 0; /* nothing expires behind the tests' back */
        kv_used_memory_refresh();
    }
    for (int i = 0; i < server.databases; i++) {
        ks_flush_db(server.db[i], 0);
    }
    server.mstime = T0;
    server.maxmemory = 0;
    server.maxmemory_policy = MM_NOEVICTION;
    server.lfu_log_factor = 10;
    server.lfu_decay_time = 1;
    server.stat_evictedkeys = 0;
    ks_rand_seed(0x6b7664); /* sampling repeats from run to run */
    ks_evict_time_limit_us = 1000000000LL; /* one call finishes unless a test says */
    tclient_reset(&tc);
}

/* Inserts key "<prefix><i>" with a 100-byte value into db; expire_at 0 = no TTL. */
static void put(struct kv_db *db, const char *prefix, int i, long long expire_at) {
    char key[64], val[101];
    int n = snprintf(key, sizeof(key), "%s%d", prefix, i);
    memset(val, 'v', 100);
    val[100] = '\0';
    ks_insert(db, obj_str_new(key, (size_t)n, val, 100, expire_at), ks_token(key, (size_t)n));
}

static struct kv_entry *get(struct kv_db *db, const char *prefix, int i) {
    char key[64];
    int n = snprintf(key, sizeof(key), "%s%d", prefix, i);
    return ks_find(db, key, (size_t)n, ks_token(key, (size_t)n));
}

static int count_present(struct kv_db *db, const char *prefix, int from, int to) {
    int n = 0;
    for (int i = from; i < to; i++) {
        n += get(db, prefix, i) != NULL;
    }
    return n;
}

/* Sets maxmemory so that about `keys` of put()'s keys must go (their size
 * measured once: a 100-byte value and a short key). */
static void limit_below_by_keys(int keys) {
    static long long per_key;
    if (per_key == 0) {
        struct kv_db *db = server.db[15];
        size_t before = kv_used_memory();
        for (int i = 0; i < 1000; i++) {
            put(db, "size:", i, 0);
        }
        per_key = (long long)(kv_used_memory() - before) / 1000;
        ks_flush_db(db, 0);
        printf("bytes per test key: %lld\n", per_key);
    }
    server.maxmemory = (long long)kv_used_memory() - (long long)keys * per_key;
}

/* ---- LFU ---- */

static void test_lfu_counter_grows_logarithmically(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LFU;
    struct kv_entry *e = obj_str_new("k", 1, "v", 1, 0);
    CHECK_EQ_INT(ks_entry_lfu(e), KS_LFU_INIT_VAL);
    /* factor 0: every access counts, up to 255 */
    server.lfu_log_factor = 0;
    for (int i = 0; i < 100; i++) {
        ks_entry_touch(e);
    }
    CHECK_EQ_INT(ks_entry_lfu(e), 105);
    for (int i = 0; i < 1000; i++) {
        ks_entry_touch(e);
    }
    CHECK_EQ_INT(ks_entry_lfu(e), 255);
    /* factor 10 (Redis's table: about 10 after 100 hits, 18 after 1000): average
     * over 200 keys to keep the test stable */
    server.lfu_log_factor = 10;
    long sum100 = 0, sum1000 = 0;
    for (int k = 0; k < 200; k++) {
        ks_entry_init_lru(e);
        for (int i = 0; i < 1000; i++) {
            ks_entry_touch(e);
            if (i == 99) {
                sum100 += ks_entry_lfu(e);
            }
        }
        sum1000 += ks_entry_lfu(e);
    }
    double avg100 = sum100 / 200.0, avg1000 = sum1000 / 200.0;
    printf("lfu-log-factor 10: average counter %.1f after 100 hits, %.1f after 1000\n",
           avg100, avg1000);
    CHECK(avg100 >= 8 && avg100 <= 13);
    CHECK(avg1000 >= 15 && avg1000 <= 22);
    /* the first access above LFU_INIT_VAL is certain, later ones are not */
    ks_entry_init_lru(e);
    ks_entry_touch(e);
    CHECK_EQ_INT(ks_entry_lfu(e), KS_LFU_INIT_VAL + 1);
    ks_entry_free(e);
}

static void test_lfu_counter_decays_per_idle_period(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LFU;
    server.lfu_log_factor = 0;
    struct kv_entry *e = obj_str_new("k", 1, "v", 1, 0);
    for (int i = 0; i < 15; i++) {
        ks_entry_touch(e);
    }
    CHECK_EQ_INT(ks_entry_lfu(e), 20);
    server.mstime += 3 * 60000 + 5000; /* three whole minutes */
    CHECK_EQ_INT(ks_entry_lfu(e), 17);
    server.lfu_decay_time = 2;
    CHECK_EQ_INT(ks_entry_lfu(e), 19);
    server.lfu_decay_time = 0; /* no decay */
    CHECK_EQ_INT(ks_entry_lfu(e), 20);
    server.lfu_decay_time = 1;
    server.mstime += 60LL * 60000; /* an hour: floors at 0 */
    CHECK_EQ_INT(ks_entry_lfu(e), 0);
    /* an access first decays, then increments, and restarts the period */
    ks_entry_touch(e);
    CHECK_EQ_INT(ks_entry_lfu(e), 1);
    /* the 16-bit minutes clock wraps: last access at minute 65534, now minute 1 */
    e->lru = (65534u << 8) | 30;
    server.mstime = (65536LL * 60000) * 100 + 60000 + 10; /* minute 1 mod 65536 */
    CHECK_EQ_INT(ks_entry_lfu(e), 30 - 2);
    ks_entry_free(e);
}

/* ---- LRU ---- */

static void test_lru_idle_time_and_clock_wraparound(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LRU;
    struct kv_entry *e = obj_str_new("k", 1, "v", 1, 0);
    CHECK_EQ_INT(ks_entry_idle_ms(e), 0);
    server.mstime += 42999;
    CHECK_EQ_INT(ks_entry_idle_ms(e), 42000); /* 1 s resolution */
    ks_entry_touch(e);
    CHECK_EQ_INT(ks_entry_idle_ms(e), 0);
    /* the 24-bit seconds clock wraps (every 194 days): stamped 5 s before the end,
     * now 10 s after the start: 15 s idle, not negative */
    const long long max = (1LL << 24) - 1;
    e->lru = (unsigned)(max - 5);
    server.mstime = ((1LL << 24) * 7 + 10) * 1000;
    CHECK_EQ_INT(ks_lru_clock(), 10);
    CHECK_EQ_INT(ks_entry_idle_ms(e), 15000);
    ks_entry_free(e);
}

static void test_policy_switch_reinterprets_the_field(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LRU;
    struct kv_entry *e = obj_str_new("k", 1, "v", 1, 0);
    CHECK_EQ_INT(e->lru, ks_lru_clock());
    server.maxmemory_policy = MM_VOLATILE_LFU;
    CHECK(ks_policy_is_lfu());
    ks_entry_init_lru(e);
    CHECK_EQ_INT(e->lru & 255, KS_LFU_INIT_VAL);
    CHECK_EQ_INT(e->lru >> 8, (T0 / 60000) & 65535);
    ks_entry_free(e);
}

/* ---- the pool ---- */

static void test_pool_keeps_best_candidates_in_order(void) {
    setup();
    struct ks_evpool p;
    ks_evpool_init(&p);
    CHECK_EQ_INT(ks_evpool_best(&p), -1);
    /* 1000 distinct scores in a shuffled order: the pool ends with the top 16 */
    enum { N = 1000 };
    static unsigned long long scores[N];
    for (int i = 0; i < N; i++) {
        scores[i] = (unsigned long long)i * 7 + 3;
    }
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(ks_rand64() % (unsigned)(i + 1));
        unsigned long long t = scores[i];
        scores[i] = scores[j];
        scores[j] = t;
    }
    char key[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "key-%llu", scores[i]);
        ks_evpool_offer(&p, 0, key, (size_t)n, 0, scores[i]);
    }
    for (int k = 0; k < KS_EVPOOL_SIZE; k++) {
        unsigned long long want = (unsigned long long)(N - KS_EVPOOL_SIZE + k) * 7 + 3;
        CHECK_EQ_INT(p.slot[k].score, want);
        int n = snprintf(key, sizeof(key), "key-%llu", want);
        CHECK_EQ_MEM(p.slot[k].key, p.slot[k].klen, key, (size_t)n);
    }
    /* worse than everything held: refused; best comes out first */
    CHECK_EQ_INT(ks_evpool_offer(&p, 0, "low", 3, 0, 1), 0);
    int b = ks_evpool_best(&p);
    CHECK_EQ_INT(b, KS_EVPOOL_SIZE - 1);
    CHECK_EQ_INT(p.slot[b].score, (unsigned long long)(N - 1) * 7 + 3);
    ks_evpool_remove(&p, b);
    CHECK_EQ_INT(ks_evpool_best(&p), KS_EVPOOL_SIZE - 2);
    /* with room on the right, a middle score shifts the better ones right; a
     * long key gets its own buffer */
    char big[600];
    memset(big, 'x', sizeof(big));
    unsigned long long mid = p.slot[7].score + 1;
    CHECK_EQ_INT(ks_evpool_offer(&p, 3, big, sizeof(big), 99, mid), 1);
    CHECK_EQ_INT(p.slot[8].score, mid);
    CHECK_EQ_MEM(p.slot[8].key, p.slot[8].klen, big, sizeof(big));
    CHECK_EQ_INT(p.slot[8].db, 3);
    for (int k = 1; k < KS_EVPOOL_SIZE; k++) {
        CHECK(p.slot[k - 1].score <= p.slot[k].score);
    }
    /* the worked example of ks_evict.c's HOW IT WORKS, on an empty pool */
    ks_evpool_clear(&p);
    ks_evpool_offer(&p, 0, "a", 1, 0, 10);
    ks_evpool_offer(&p, 0, "b", 1, 0, 30);
    ks_evpool_offer(&p, 0, "c", 1, 0, 20);
    CHECK_EQ_INT(p.slot[0].score, 10);
    CHECK_EQ_INT(p.slot[1].score, 20);
    CHECK_EQ_INT(p.slot[2].score, 30);
    CHECK_EQ_INT(p.slot[3].db, -1);
    ks_evpool_deinit(&p);
}

/* ---- policies ---- */

static void test_volatile_policies_never_evict_keys_without_ttl(void) {
    static const int policies[] = {MM_VOLATILE_LRU, MM_VOLATILE_LFU, MM_VOLATILE_RANDOM,
                                   MM_VOLATILE_TTL};
    for (size_t pi = 0; pi < sizeof(policies) / sizeof(policies[0]); pi++) {
        setup();
        server.maxmemory_policy = policies[pi];
        struct kv_db *db = server.db[0];
        for (int i = 0; i < 2000; i++) {
            put(db, "plain:", i, 0);
            put(db, "ttl:", i, T0 + 3600000 + i);
        }
        limit_below_by_keys(500);
        CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_OK);
        CHECK(!ks_evict_over_limit(NULL));
        CHECK_EQ_INT(count_present(db, "plain:", 0, 2000), 2000);
        int ttl_left = count_present(db, "ttl:", 0, 2000);
        CHECK(ttl_left < 2000 && ttl_left > 1000);
        CHECK_EQ_INT(server.stat_evictedkeys, 2000 - ttl_left);
        CHECK_EQ_INT(ks_db_expires(db), (size_t)ttl_left);
        /* over the limit with no TTL key left: OOM, and the plain keys stay */
        limit_below_by_keys(3000);
        CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_FAIL);
        CHECK_EQ_INT(ks_evict_if_needed(), -1);
        CHECK_EQ_INT(ks_db_expires(db), 0);
        CHECK_EQ_INT(count_present(db, "plain:", 0, 2000), 2000);
    }
}

static void test_volatile_ttl_evicts_nearest_expiry_first(void) {
    setup();
    server.maxmemory_policy = MM_VOLATILE_TTL;
    struct kv_db *db = server.db[0];
    /* even keys expire within the hour, odd ones in a day */
    for (int i = 0; i < 4000; i++) {
        put(db, "t:", i, T0 + (i % 2 ? 86400000 : 3600000) + i);
    }
    limit_below_by_keys(1000);
    CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_OK);
    int near_lost = 0, far_lost = 0;
    for (int i = 0; i < 4000; i++) {
        if (get(db, "t:", i) == NULL) {
            *(i % 2 ? &far_lost : &near_lost) += 1;
        }
    }
    /* Sampled, as Redis's volatile-ttl: a far key goes only when a whole
     * sample and the pool held no near one, which is rare but possible (about
     * 1 run in 15 lost one far key before the sampling was seeded). A policy
     * blind to TTLs would lose as many far keys as near ones. */
    CHECK(near_lost > 500);
    CHECK(far_lost * 100 <= near_lost);
}

static void test_allkeys_lru_evicts_idle_keys_first(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LRU;
    struct kv_db *db = server.db[0];
    for (int i = 0; i < 4000; i++) {
        put(db, "k:", i, 0);
    }
    server.mstime += 100000; /* 100 s later the first half is read */
    for (int i = 0; i < 2000; i++) {
        ks_entry_touch(get(db, "k:", i));
    }
    server.mstime += 1000;
    limit_below_by_keys(1000);
    CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_OK);
    int hot_lost = 2000 - count_present(db, "k:", 0, 2000);
    int cold_lost = 2000 - count_present(db, "k:", 2000, 4000);
    printf("allkeys-lru: evicted %d idle, %d recently read\n", cold_lost, hot_lost);
    /* sampling is approximate: a hot key goes when a whole sample and the pool
     * held only hot keys; Redis's own bar is >= 90% idle */
    CHECK(cold_lost > 500);
    CHECK(hot_lost * 100 <= cold_lost);
}

static void test_allkeys_lfu_keeps_frequently_read_keys(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LFU;
    struct kv_db *db = server.db[0];
    for (int i = 0; i < 4000; i++) {
        put(db, "k:", i, 0);
    }
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 500; i++) {
            ks_entry_touch(get(db, "k:", i));
        }
    }
    limit_below_by_keys(1500);
    CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_OK);
    CHECK_EQ_INT(count_present(db, "k:", 0, 500), 500);
    CHECK(count_present(db, "k:", 500, 4000) < 3500 - 1000);
}

static void test_allkeys_policies_evict_from_every_database(void) {
    static const int policies[] = {MM_ALLKEYS_LRU, MM_ALLKEYS_LFU, MM_ALLKEYS_RANDOM};
    for (size_t pi = 0; pi < 3; pi++) {
        setup();
        server.maxmemory_policy = policies[pi];
        for (int i = 0; i < 1000; i++) {
            put(server.db[0], "a:", i, 0);
            put(server.db[5], "b:", i, T0 + 3600000);
        }
        limit_below_by_keys(1000);
        CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_OK);
        size_t left0 = ks_db_size(server.db[0]), left5 = ks_db_size(server.db[5]);
        CHECK(left0 < 1000 && left5 < 1000);
        CHECK_EQ_INT(server.stat_evictedkeys, 2000 - left0 - left5);
        CHECK_EQ_INT(ks_db_expires(server.db[5]), left5);
    }
}

/* ---- the loop ---- */

static void test_eviction_stops_just_under_the_limit(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_RANDOM;
    struct kv_db *db = server.db[0];
    for (int i = 0; i < 5000; i++) {
        put(db, "k:", i, 0);
    }
    while (kv_dict_rehash(&db->keys, 1000)) { /* a table freed mid-way would count */
    }
    CHECK_EQ_INT(ks_evict_if_needed(), 0); /* no limit: nothing happens */
    server.maxmemory = (long long)kv_used_memory() + 4096;
    CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_OK);
    CHECK_EQ_INT(server.stat_evictedkeys, 0); /* under the limit */
    limit_below_by_keys(1000);
    CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_OK);
    size_t used = kv_used_memory();
    CHECK(used <= (size_t)server.maxmemory);
    printf("evicted %lld for a limit 1000 keys below\n", server.stat_evictedkeys);
    /* ~1000 keys: no more than a few extra */
    CHECK(server.stat_evictedkeys >= 900 && server.stat_evictedkeys <= 1100);
    CHECK_EQ_INT(ks_db_size(db), 5000 - (size_t)server.stat_evictedkeys);
}

static void test_eviction_is_bounded_per_call(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LRU;
    struct kv_db *db = server.db[0];
    for (int i = 0; i < 3000; i++) {
        put(db, "k:", i, 0);
    }
    limit_below_by_keys(2000);
    ks_evict_time_limit_us = 0; /* stop at the first clock check (16 keys) */
    CHECK_EQ_INT(ks_perform_evictions(), KS_EVICT_RUNNING);
    CHECK_EQ_INT(server.stat_evictedkeys, 16);
    CHECK_EQ_INT(ks_evict_if_needed(), 0); /* running is not OOM */
    int calls = 2;
    while (ks_perform_evictions() == KS_EVICT_RUNNING && calls < 1000) {
        calls++;
    }
    CHECK(!ks_evict_over_limit(NULL));
    CHECK(calls > 100);
}

/* Runs a command line through the whole command path (arity, OOM check). */
static const char *process(const char *line) {
    return tclient_run(&tc, line, TCLIENT_PROCESS);
}

static void test_noeviction_refuses_writes_but_serves_reads_and_del(void) {
    setup();
    struct kv_db *db = server.db[0];
    for (int i = 0; i < 100; i++) {
        put(db, "k:", i, 0);
    }
    CHECK_EQ_STR(process("SET before x"), "+OK");
    limit_below_by_keys(10);
    CHECK_EQ_INT(ks_evict_if_needed(), -1);
    CHECK_EQ_STR(process("SET foo bar"),
                 "-OOM command not allowed when used memory > 'maxmemory'.");
    CHECK_EQ_STR(process("GET before"), "$1 x");
    CHECK_EQ_STR(process("DEL k:1 k:2"), ":2");
    CHECK_EQ_INT(server.stat_evictedkeys, 0);
    CHECK_EQ_INT(ks_db_size(db), 99);
    /* the same limit under allkeys-lru: the write goes through */
    server.maxmemory_policy = MM_ALLKEYS_LRU;
    CHECK_EQ_STR(process("SET foo bar"), "+OK");
    CHECK(server.stat_evictedkeys > 0);
    server.maxmemory = 0;
}

static void test_object_freq_idletime_and_lfu_overwrite(void) {
    setup();
    server.maxmemory_policy = MM_ALLKEYS_LFU;
    server.lfu_log_factor = 0;
    CHECK_EQ_STR(process("SET f v"), "+OK");
    CHECK_EQ_STR(process("OBJECT FREQ f"), ":5");
    CHECK_EQ_STR(process("GET f"), "$1 v");
    CHECK_EQ_STR(process("OBJECT FREQ f"), ":6");
    /* an overwrite is an access and keeps the counter (Redis's dbOverwrite) */
    CHECK_EQ_STR(process("SET f w"), "+OK");
    CHECK_EQ_STR(process("OBJECT FREQ f"), ":7");
    CHECK_EQ_STR(process("OBJECT IDLETIME f"),
                 "-ERR An LFU maxmemory policy is selected, idle time not tracked. Please "
                 "note that when switching between policies at runtime LRU and LFU data "
                 "will take some time to adjust.");
    /* CLIENT NO-TOUCH: reads leave the counter, TOUCH still counts */
    tc.flags |= CLIENT_NO_TOUCH;
    CHECK_EQ_STR(process("GET f"), "$1 w");
    CHECK_EQ_STR(process("OBJECT FREQ f"), ":7");
    CHECK_EQ_STR(process("TOUCH f"), ":1");
    CHECK_EQ_STR(process("OBJECT FREQ f"), ":8");
    tc.flags &= ~(uint32_t)CLIENT_NO_TOUCH;
    server.maxmemory_policy = MM_VOLATILE_LRU;
    CHECK_EQ_STR(process("OBJECT FREQ f"),
                 "-ERR An LFU maxmemory policy is not selected, access frequency not "
                 "tracked. Please note that when switching between policies at runtime "
                 "LRU and LFU data will take some time to adjust.");
    CHECK_EQ_STR(process("SET g v"), "+OK");
    /* commands read the real clock: age the key instead (5 s, or 6 when a second
     * boundary passes meanwhile) */
    struct kv_entry *g = ks_find(tc.db, "g", 1, ks_token("g", 1));
    g->lru = (g->lru - 5) & ((1u << 24) - 1);
    const char *idle = process("OBJECT IDLETIME g");
    CHECK(strcmp(idle, ":5") == 0 || strcmp(idle, ":6") == 0);
    idle = process("OBJECT IDLETIME g"); /* OBJECT does not touch */
    CHECK(strcmp(idle, ":5") == 0 || strcmp(idle, ":6") == 0);
    CHECK_EQ_STR(process("GET g"), "$1 v");
    CHECK_EQ_STR(process("OBJECT IDLETIME g"), ":0");
    CHECK_EQ_STR(process("OBJECT IDLETIME nokey"), "$-1");
}

int main(void) {
    TEST_RUN(test_lfu_counter_grows_logarithmically);
    TEST_RUN(test_lfu_counter_decays_per_idle_period);
    TEST_RUN(test_lru_idle_time_and_clock_wraparound);
    TEST_RUN(test_policy_switch_reinterprets_the_field);
    TEST_RUN(test_pool_keeps_best_candidates_in_order);
    TEST_RUN(test_volatile_policies_never_evict_keys_without_ttl);
    TEST_RUN(test_volatile_ttl_evicts_nearest_expiry_first);
    TEST_RUN(test_allkeys_lru_evicts_idle_keys_first);
    TEST_RUN(test_allkeys_lfu_keeps_frequently_read_keys);
    TEST_RUN(test_allkeys_policies_evict_from_every_database);
    TEST_RUN(test_eviction_stops_just_under_the_limit);
    TEST_RUN(test_eviction_is_bounded_per_call);
    TEST_RUN(test_noeviction_refuses_writes_but_serves_reads_and_del);
    TEST_RUN(test_object_freq_idletime_and_lfu_overwrite);
    server.maxmemory = 0;
    ks_deinit();
    resp_out_deinit(&tc.out);
    TEST_MAIN_END();
}
