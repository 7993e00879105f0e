/* server/store/persist_test.c: persistent mode (server/store/persist.c) in-process: the
 * envelope, write-through and reopen, flush markers, expiry across a reopen, exact
 * DBSIZE (also after an unclean stop), SCAN cursors, appendfsync always holding a
 * reply. A fake client runs commands through the handlers as ks_test.c does; a
 * "loop turn" is persist_before_sleep().
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/env.h"
#include "server/store/hlc.h"
#include "server/test_client.h"
#include "tests/test.h"

static struct client tc;
static char dir[256];

static void client_reset(void) {
    tclient_reset(&tc);
}

static void globals(void) {
    if (server.db == NULL) {
        server.appendfsync = PERSIST_FSYNC_NO;
    }
    tclient_boot(MODE_PERSISTENT);
    server.mstime = kv_mstime();
}

/* Drops the in-memory cache: what is left must come from the engine. */
static void drop_cache(void) {
    for (int i = 0; i < server.databases; i++) {
        ks_flush_db(server.db[i], 0);
    }
}

static int open_db(void) {
    char err[256];
    int rc = persist_open_sync(dir, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "open: %s\n", err);
    }
    client_reset();
    return rc;
}

static void fresh(void) {
    globals();
    persist_close();
    drop_cache();
    snprintf(dir, sizeof(dir), "/tmp/kvd-persist-test-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        abort();
    }
    open_db();
}

static void reopen(void) {
    persist_before_sleep();
    persist_close();
    drop_cache();
    open_db();
}

static void cleanup(void) {
    persist_close();
    drop_cache();
    lsm_destroy(dir);
    rmdir(dir);
}

/* Runs one command line on the test client (server/test_client.h). */
static const char *run(const char *line) {
    server.mstime = kv_mstime();
    return tclient_run(&tc, line, TCLIENT_HANDLER);
}

#define RUN_EQ(line, want) CHECK_EQ_STR(run(line), want)

/* ---- the envelope ---- */

static int same_entry(const struct kv_entry *a, const struct kv_entry *b) {
    if (a->type != b->type || a->enc != b->enc || (a->flags & KE_RAW) != (b->flags & KE_RAW) ||
        ks_entry_expire(a) != ks_entry_expire(b)) {
        return 0;
    }
    size_t al, bl;
    const char *ak = ks_entry_key(a, &al), *bk = ks_entry_key(b, &bl);
    if (al != bl || memcmp(ak, bk, al) != 0) {
        return 0;
    }
    if (a->type == KS_TYPE_STRING) {
        char ba[OBJ_LL_BUF], bb[OBJ_LL_BUF];
        const char *av = obj_str(a, ba, &al), *bv = obj_str(b, bb, &bl);
        return al == bl && memcmp(av, bv, al) == 0;
    }
    if (hash_len(a) != hash_len(b)) {
        return 0;
    }
    char f[32];
    for (int i = 0; i < (int)hash_len(a); i++) {
        snprintf(f, sizeof(f), "f%d", i);
        const char *av, *bv;
        if (hash_get(a, f, strlen(f), &av, &al) != hash_get(b, f, strlen(f), &bv, &bl)) {
            return 0;
        }
    }
    return 1;
}

static int round_trips(const struct kv_entry *e) {
    char *buf;
    size_t len;
    persist_encode(e, &buf, &len);
    size_t klen;
    const char *k = ks_entry_key(e, &klen);
    struct kv_entry *d = persist_decode(k, klen, buf, len, ks_entry_expire(e));
    int ok = d != NULL && same_entry(e, d);
    /* every truncation is refused or decodes to something, never a crash */
    for (size_t cut = 0; cut < len; cut++) {
        struct kv_entry *t = persist_decode(k, klen, buf, cut, 0);
        if (t) {
            ks_entry_free(t);
        }
    }
    if (d) {
        ks_entry_free(d);
    }
    kv_free(buf);
    return ok;
}

static void test_persist_envelope_round_trips_every_encoding(void) {
    globals();
    char big[300];
    memset(big, 'x', sizeof(big));
    long long ttls[] = {0, 1893456000123ll};
    for (int t = 0; t < 2; t++) {
        long long exp = ttls[t];
        struct kv_entry *e = obj_str_new("k", 1, "hello", 5, exp); /* embstr */
        CHECK_EQ_STR(obj_encoding_name(e), "embstr");
        CHECK(round_trips(e));
        ks_entry_free(e);
        e = obj_str_new("k", 1, "12345", 5, exp); /* int */
        CHECK_EQ_STR(obj_encoding_name(e), "int");
        CHECK(round_trips(e));
        ks_entry_free(e);
        e = obj_str_new("k", 1, big, sizeof(big), exp); /* raw */
        CHECK_EQ_STR(obj_encoding_name(e), "raw");
        CHECK(round_trips(e));
        e = obj_str_append(NULL, e, "y", 1); /* raw with slack */
        CHECK(round_trips(e));
        ks_entry_free(e);
        e = obj_str_new("k", 1, "ab", 2, exp); /* embstr changed in place: raw */
        e = obj_str_append(NULL, e, "c", 1);
        CHECK_EQ_STR(obj_encoding_name(e), "raw");
        CHECK(round_trips(e));
        ks_entry_free(e);
        e = obj_str_new("k", 1, "", 0, exp); /* empty */
        CHECK(round_trips(e));
        ks_entry_free(e);
        e = hash_new("h", 1, exp); /* listpack */
        for (int i = 0; i < 10; i++) {
            char f[32], v[32];
            snprintf(f, sizeof(f), "f%d", i);
            snprintf(v, sizeof(v), "v%d", i * i);
            hash_set(NULL, &e, f, strlen(f), v, strlen(v));
        }
        CHECK_EQ_STR(obj_encoding_name(e), "listpack");
        CHECK(round_trips(e));
        hash_set(NULL, &e, "f3", 2, big, sizeof(big)); /* hashtable */
        CHECK_EQ_STR(obj_encoding_name(e), "hashtable");
        CHECK(round_trips(e));
        hash_del(NULL, &e, "f3", 2); /* stays a hashtable, as Redis */
        CHECK(round_trips(e));
        ks_entry_free(e);
    }
    CHECK(persist_decode("k", 1, "\x02\x00\x00\x00", 4, 0) == NULL); /* unknown version */
    CHECK(persist_decode("k", 1, "\x01\x00\x01\x00\x01", 5, 0) == NULL); /* short int */
}

/* ---- write-through and reopen ---- */

static void test_persist_write_through_and_reopen(void) {
    fresh();
    RUN_EQ("SET s hello", "+OK");
    RUN_EQ("SET n 41", "+OK");
    RUN_EQ("INCR n", ":42");
    RUN_EQ("APPEND s _world", ":11");
    RUN_EQ("SET t v EX 1000", "+OK");
    RUN_EQ("HSET h a 1 b 2", ":2");
    RUN_EQ("HSET h c 3", ":1");
    RUN_EQ("HDEL h a", ":1");
    RUN_EQ("SET gone x", "+OK");
    RUN_EQ("DEL gone", ":1");
    RUN_EQ("SET r1 moved", "+OK");
    RUN_EQ("RENAME r1 r2", "+OK");
    RUN_EQ("COPY r2 c1 DB 3", ":1");
    RUN_EQ("SELECT 5", "+OK");
    RUN_EQ("SET five 5", "+OK");
    RUN_EQ("SELECT 0", "+OK");
    RUN_EQ("DBSIZE", ":5");
    reopen();
    RUN_EQ("GET s", "$11 hello_world");
    RUN_EQ("OBJECT ENCODING s", "$3 raw");
    RUN_EQ("GET n", "$2 42");
    RUN_EQ("OBJECT ENCODING n", "$3 int");
    RUN_EQ("HGETALL h", "*4 $1 b $1 2 $1 c $1 3");
    RUN_EQ("OBJECT ENCODING h", "$8 listpack");
    const char *ttl = run("TTL t");
    CHECK(strcmp(ttl, ":1000") == 0 || strcmp(ttl, ":999") == 0);
    RUN_EQ("EXISTS gone", ":0");
    RUN_EQ("GET r1", "$-1");
    RUN_EQ("GET r2", "$5 moved");
    RUN_EQ("DBSIZE", ":5");
    RUN_EQ("SELECT 3", "+OK");
    RUN_EQ("GET c1", "$5 moved");
    RUN_EQ("DBSIZE", ":1");
    RUN_EQ("SELECT 5", "+OK");
    RUN_EQ("GET five", "$1 5");
    RUN_EQ("SELECT 0", "+OK");
    /* a second round of changes on the reopened data */
    RUN_EQ("PERSIST t", ":1");
    RUN_EQ("SET n 7 KEEPTTL", "+OK");
    RUN_EQ("DEL s", ":1");
    reopen();
    RUN_EQ("TTL t", ":-1");
    RUN_EQ("GET n", "$1 7");
    RUN_EQ("EXISTS s", ":0");
    RUN_EQ("DBSIZE", ":4");
    cleanup();
}

/* Keys beyond what memory caches: every read comes from the engine. */
static void test_persist_reads_through_after_the_cache_is_dropped(void) {
    fresh();
    char cmd[128];
    for (int i = 0; i < 2000; i++) {
        snprintf(cmd, sizeof(cmd), "SET key:%d value:%d", i, i * 3);
        CHECK_EQ_STR(run(cmd), "+OK");
    }
    persist_before_sleep();
    drop_cache();
    for (int i = 0; i < 2000; i += 7) {
        char want[64];
        snprintf(cmd, sizeof(cmd), "GET key:%d", i);
        snprintf(want, sizeof(want), "value:%d", i * 3);
        char exp[80];
        snprintf(exp, sizeof(exp), "$%zu %s", strlen(want), want);
        CHECK_EQ_STR(run(cmd), exp);
    }
    /* deleted in the pending batch, then evicted from the cache: still absent */
    RUN_EQ("DEL key:1", ":1");
    drop_cache();
    RUN_EQ("GET key:1", "$-1");
    RUN_EQ("DBSIZE", ":1999");
    cleanup();
}

/* ---- FLUSHDB / FLUSHALL ---- */

static size_t engine_entries(void) {
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.now_ms = 1;
    struct lsm_iter *it = lsm_iter_create(persist_engine(), &ro);
    size_t n = 0;
    for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
        size_t kl;
        const unsigned char *k = (const unsigned char *)lsm_iter_key(it, &kl);
        n += kl >= 10 && !(k[8] == 0xff && k[9] == 0xff);
    }
    lsm_iter_destroy(&it);
    return n;
}

static void test_persist_flush_marker_hides_and_compaction_drops(void) {
    fresh();
    char cmd[128];
    for (int i = 0; i < 100; i++) {
        snprintf(cmd, sizeof(cmd), "SET a%d %d", i, i);
        run(cmd);
    }
    RUN_EQ("SELECT 1", "+OK");
    RUN_EQ("SET keep me", "+OK");
    RUN_EQ("SELECT 0", "+OK");
    persist_before_sleep(); /* on disk before the flush */
    RUN_EQ("FLUSHDB", "+OK");
    RUN_EQ("DBSIZE", ":0");
    RUN_EQ("GET a5", "$-1");
    RUN_EQ("SET a7 new", "+OK"); /* written after the marker: visible */
    RUN_EQ("SCAN 0 COUNT 1000", "*2 $1 0 *1 $2 a7");
    reopen();
    RUN_EQ("DBSIZE", ":1");
    RUN_EQ("GET a5", "$-1");
    RUN_EQ("GET a7", "$3 new");
    RUN_EQ("KEYS *", "*1 $2 a7");
    RUN_EQ("SELECT 1", "+OK");
    RUN_EQ("GET keep", "$2 me");
    RUN_EQ("SELECT 0", "+OK");
    CHECK_EQ_INT(engine_entries(), 101); /* 99 flushed a*, the new a7, keep */
    CHECK_EQ_INT(lsm_compact_range(persist_engine(), NULL, 0, NULL, 0), LSM_OK);
    CHECK_EQ_INT(engine_entries(), 2); /* a7 and keep: the flushed ones are gone */
    RUN_EQ("FLUSHALL", "+OK");
    reopen();
    RUN_EQ("DBSIZE", ":0");
    RUN_EQ("SELECT 1", "+OK");
    RUN_EQ("DBSIZE", ":0");
    RUN_EQ("GET keep", "$-1");
    cleanup();
}

/* ---- expiry ---- */

static void test_persist_expired_keys_are_gone_after_reopen(void) {
    fresh();
    RUN_EQ("SET short v PX 30", "+OK");
    RUN_EQ("HSET hs f v", ":1");
    RUN_EQ("PEXPIRE hs 30", ":1");
    RUN_EQ("SET long v EX 1000", "+OK");
    RUN_EQ("SET plain v", "+OK");
    persist_before_sleep();
    persist_close();
    drop_cache();
    usleep(60 * 1000);
    open_db();
    RUN_EQ("GET short", "$-1");
    RUN_EQ("EXISTS short hs", ":0");
    RUN_EQ("DBSIZE", ":2");
    RUN_EQ("SCAN 0 COUNT 100 MATCH s*", "*2 $1 0 *0");
    RUN_EQ("KEYS h*", "*0");
    CHECK(strstr(run("INFO keyspace"), "db0:keys=2,expires=1,avg_ttl=0") != NULL);
    /* the expiry index let compaction reclaim them (tombstones without grace) */
    CHECK_EQ_INT(lsm_compact_range(persist_engine(), NULL, 0, NULL, 0), LSM_OK);
    CHECK_EQ_INT(engine_entries(), 2);
    reopen();
    RUN_EQ("DBSIZE", ":2");
    cleanup();
}

static void test_persist_active_expiry_of_keys_not_in_memory(void) {
    fresh();
    char cmd[128];
    for (int i = 0; i < 300; i++) {
        snprintf(cmd, sizeof(cmd), "SET e%d v PX %d", i, 20 + i % 10);
        run(cmd);
    }
    RUN_EQ("SET stays v", "+OK");
    persist_before_sleep();
    drop_cache();
    long long before = server.stat_expiredkeys;
    usleep(50 * 1000);
    server.mstime = kv_mstime();
    persist_cron();
    CHECK_EQ_INT(server.stat_expiredkeys - before, 300);
    RUN_EQ("DBSIZE", ":1");
    reopen();
    RUN_EQ("DBSIZE", ":1");
    cleanup();
}

/* ---- versions and tombstones ---- */

/* The engine's newest record of key in db 0, tombstones included: 1 value, 2
 * tombstone, 0 nothing; *m gets its meta. */
static int engine_record(const char *key, struct lsm_meta *m) {
    size_t klen = strlen(key);
    unsigned char k[10 + 64];
    uint64_t t = ks_token(key, klen);
    for (int i = 7; i >= 0; i--) {
        k[i] = (unsigned char)t;
        t >>= 8;
    }
    k[8] = k[9] = 0;
    memcpy(k + 10, key, klen);
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    ro.now_ms = 1;
    ro.include_tombstones = 1;
    struct lsm_value v = LSM_VALUE_INIT;
    int rc = lsm_get(persist_engine(), &ro, k, 10 + klen, &v);
    m->expire_at = v.expire_at;
    m->timestamp = v.timestamp;
    m->node = v.node;
    int deleted = v.deleted;
    lsm_value_free(&v);
    return rc != LSM_OK ? 0 : deleted ? 2 : 1;
}

static struct kv_version mem_version(const char *key) {
    struct kv_slice k = {key, strlen(key)};
    struct kv_entry *e = coord_lookup(&tc, &k, COORD_NOTOUCH | COORD_NOSTATS);
    struct kv_version none = {0, 0};
    return e ? ks_entry_version(e) : none;
}

static int same_version(struct lsm_meta m, struct kv_version v) {
    return m.timestamp == v.hlc && m.node == v.node;
}

static void test_persist_versions_and_tombstones_survive_restart(void) {
    fresh();
    server.gc_grace_seconds = 864000;
    reopen(); /* the engine now keeps tombstones for 10 days */
    server.node_tag = 0xa11ce;
    RUN_EQ("SET s v", "+OK");
    RUN_EQ("SET n 41", "+OK");
    RUN_EQ("INCR n", ":42");
    RUN_EQ("HSET h f v", ":1");
    RUN_EQ("CONFIG SET hash-max-listpack-entries 2", "+OK");
    RUN_EQ("HSET big a 1 b 2 c 3", ":3");
    RUN_EQ("SET gone v", "+OK");
    RUN_EQ("SET exp v PX 100", "+OK");
    struct kv_version vs = mem_version("s"), vn = mem_version("n"), vh = mem_version("h"),
                      vb = mem_version("big"), vg = mem_version("gone"), ve = mem_version("exp");
    CHECK(vs.hlc != 0 && vs.node == 0xa11ce && vb.node == 0xa11ce);
    persist_before_sleep();
    struct lsm_meta m;
    CHECK_EQ_INT(engine_record("s", &m), 1);
    CHECK(same_version(m, vs)); /* stored as stamped, not re-stamped at commit */
    RUN_EQ("DEL gone", ":1");
    persist_before_sleep();
    CHECK_EQ_INT(engine_record("gone", &m), 2);
    CHECK(m.timestamp > vg.hlc && m.node == 0xa11ce && m.expire_at == 0);
    struct lsm_meta del = m;
    /* lazy expiry: a tombstone with the value's own version and expire-at */
    server.debug_clock_offset_ms = 1000;
    RUN_EQ("GET exp", "$-1");
    server.debug_clock_offset_ms = 0;
    persist_before_sleep();
    CHECK_EQ_INT(engine_record("exp", &m), 2);
    CHECK(same_version(m, ve));
    CHECK(m.expire_at > 0 && m.expire_at <= (uint64_t)kv_mstime() + 1000);
    struct lsm_meta expm = m;

    reopen(); /* versions come back with the values */
    server.node_tag = 0xb0b;
    CHECK(kv_version_cmp(mem_version("s"), vs) == 0);
    CHECK(kv_version_cmp(mem_version("n"), vn) == 0);
    CHECK(kv_version_cmp(mem_version("h"), vh) == 0);
    CHECK(kv_version_cmp(mem_version("big"), vb) == 0);
    RUN_EQ("HGET big b", "$1 2");
    CHECK_EQ_INT(engine_record("gone", &m), 2);
    CHECK(m.timestamp == del.timestamp && m.node == del.node);
    CHECK_EQ_INT(engine_record("exp", &m), 2);
    CHECK(m.timestamp == expm.timestamp && m.node == expm.node && m.expire_at == expm.expire_at);
    /* a write after the restart is newer than everything before it */
    RUN_EQ("SET s w", "+OK");
    CHECK(kv_version_cmp(mem_version("s"), vs) > 0 && mem_version("s").node == 0xb0b);
    RUN_EQ("HSET big d 4", ":1");
    CHECK(kv_version_cmp(mem_version("big"), vb) > 0);
    /* compaction keeps dated tombstones for the grace period */
    persist_before_sleep();
    CHECK_EQ_INT(lsm_compact_range(persist_engine(), NULL, 0, NULL, 0), LSM_OK);
    CHECK_EQ_INT(engine_record("gone", &m), 2);
    CHECK_EQ_INT(engine_record("exp", &m), 2);
    RUN_EQ("EXISTS gone exp", ":0");
    RUN_EQ("DBSIZE", ":4");
    /* FLUSHALL's marker still hides everything before it, versions or not */
    RUN_EQ("FLUSHALL", "+OK");
    RUN_EQ("SET after v", "+OK");
    reopen();
    RUN_EQ("DBSIZE", ":1");
    RUN_EQ("GET s", "$-1");
    RUN_EQ("GET after", "$1 v");
    RUN_EQ("CONFIG SET hash-max-listpack-entries 512", "+OK");
    server.node_tag = 0;
    server.gc_grace_seconds = 0;
    cleanup();
}

static void test_persist_active_expiry_tombstone_carries_the_value_version(void) {
    fresh();
    server.node_tag = 0x77;
    RUN_EQ("SET cold v PX 20", "+OK");
    struct kv_version v = mem_version("cold");
    persist_before_sleep();
    drop_cache(); /* the cycle finds it through the index and the engine */
    usleep(40 * 1000);
    server.mstime = kv_mstime();
    persist_cron();
    persist_before_sleep();
    struct lsm_meta m;
    CHECK_EQ_INT(engine_record("cold", &m), 2);
    CHECK(same_version(m, v) && m.expire_at != 0);
    server.node_tag = 0;
    cleanup();
}

/* ---- DBSIZE ---- */

/* Closes the store and deletes its clean key counts (the meta key), as a crash
 * would leave them, then opens it again: the open recounts by a scan. */
static void reopen_without_counts(void) {
    persist_before_sleep();
    persist_close();
    drop_cache();
    struct lsm_db *db;
    struct lsm_options o;
    lsm_options_init(&o);
    CHECK_EQ_INT(lsm_open(dir, &o, &db, NULL), LSM_OK);
    unsigned char mk[11];
    memset(mk, 0xff, 10);
    mk[10] = 'c';
    CHECK_EQ_INT(lsm_delete(db, mk, 11, NULL, 0, NULL), LSM_OK);
    lsm_close(&db);
    open_db();
}

static void test_persist_dbsize_exact_after_clean_and_unclean_stops(void) {
    fresh();
    char cmd[128];
    long long model = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(cmd, sizeof(cmd), "SET k%d v", i % 300); /* overwrites too */
        run(cmd);
    }
    model = 300;
    for (int i = 0; i < 300; i += 3) {
        snprintf(cmd, sizeof(cmd), "DEL k%d", i);
        run(cmd);
        model--;
    }
    RUN_EQ("RENAME k1 k1000", "+OK");
    RUN_EQ("RENAME k2 k4", "+OK"); /* replaces k4 */
    model--;
    RUN_EQ("HSET hh f v", ":1");
    model++;
    snprintf(cmd, sizeof(cmd), ":%lld", model);
    CHECK_EQ_STR(run("DBSIZE"), cmd);
    reopen(); /* clean: the counts come from the meta key */
    CHECK_EQ_STR(run("DBSIZE"), cmd);
    /* unclean: drop the clean counts as a crash would leave them */
    reopen_without_counts(); /* recounts by a scan */
    CHECK_EQ_STR(run("DBSIZE"), cmd);
    cleanup();
}

/* ---- SCAN ---- */

static void test_persist_scan_returns_every_key_once_with_token_cursors(void) {
    fresh();
    char cmd[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(cmd, sizeof(cmd), "SET s%d v", i);
        run(cmd);
    }
    RUN_EQ("SELECT 2", "+OK");
    RUN_EQ("SET other v", "+OK");
    RUN_EQ("SELECT 0", "+OK");
    persist_before_sleep();
    drop_cache();
    static unsigned char seen[1000];
    memset(seen, 0, sizeof(seen));
    unsigned long long cursor = 0;
    int pages = 0, total = 0;
    do {
        snprintf(cmd, sizeof(cmd), "SCAN %llu COUNT 37", cursor);
        const char *r = run(cmd);
        unsigned long long next;
        CHECK(sscanf(r, "*2 $%*d %llu", &next) == 1);
        const char *p = r;
        while ((p = strstr(p, " s")) != NULL) {
            int k = atoi(p + 2);
            CHECK(k >= 0 && k < 1000);
            CHECK_EQ_INT(seen[k], 0);
            seen[k] = 1;
            total++;
            p += 2;
        }
        CHECK(next == 0 || next > cursor);
        CHECK(next < (1ULL << 53)); /* a block number: exact as a double */
        cursor = next;
        pages++;
    } while (cursor != 0 && pages < 1000);
    CHECK_EQ_INT(total, 1000);
    RUN_EQ("SELECT 2", "+OK");
    RUN_EQ("RANDOMKEY", "$5 other");
    RUN_EQ("SELECT 3", "+OK");
    RUN_EQ("RANDOMKEY", "$-1");
    cleanup();
}

/* ---- appendfsync always ---- */

static void test_persist_always_holds_replies_until_the_sync(void) {
    fresh();
    server.appendfsync = PERSIST_FSYNC_ALWAYS;
    RUN_EQ("SET a 1", "+OK");
    CHECK(client_output_held(&tc)); /* in the pending batch */
    persist_before_sleep();
    CHECK(client_output_held(&tc)); /* written, not yet durable */
    CHECK_EQ_INT(lsm_sync_wal(persist_engine(), UINT64_MAX), LSM_OK);
    persist_before_sleep();
    CHECK(!client_output_held(&tc));
    RUN_EQ("GET a", "$1 1"); /* reads hold nothing */
    CHECK(!client_output_held(&tc));
    server.appendfsync = PERSIST_FSYNC_NO;
    RUN_EQ("SET b 2", "+OK");
    persist_before_sleep();
    CHECK(!client_output_held(&tc));
    cleanup();
}

static int durable_calls, durable_ok;

static void on_durable(void *arg, int ok) {
    (void)arg;
    durable_calls++;
    durable_ok = ok;
}

static void test_persist_when_durable_waits_for_the_batch_and_its_sync(void) {
    fresh();
    server.appendfsync = PERSIST_FSYNC_ALWAYS;
    durable_calls = 0;
    CHECK_EQ_INT(persist_when_durable(on_durable, NULL), 0); /* nothing to wait for */
    RUN_EQ("SET a 1", "+OK");
    uint64_t h = persist_when_durable(on_durable, NULL);
    CHECK(h != 0);
    CHECK_EQ_INT(durable_calls, 0); /* never inside the call */
    env_debug_sync_delay(300);      /* the sync thread's fsync is slow */
    persist_before_sleep();         /* written, the sync asked */
    CHECK_EQ_INT(durable_calls, 0);
    env_debug_sync_delay(0);
    CHECK_EQ_INT(lsm_sync_wal(persist_engine(), UINT64_MAX), LSM_OK);
    persist_before_sleep();
    CHECK_EQ_INT(durable_calls, 1);
    CHECK_EQ_INT(durable_ok, 1);
    /* a cancelled wait never runs */
    RUN_EQ("SET b 2", "+OK");
    h = persist_when_durable(on_durable, NULL);
    CHECK(h != 0);
    persist_durable_cancel(h);
    persist_before_sleep();
    CHECK_EQ_INT(lsm_sync_wal(persist_engine(), UINT64_MAX), LSM_OK);
    persist_before_sleep();
    CHECK_EQ_INT(durable_calls, 1);
    /* everysec: at the batch's write, no sync awaited */
    server.appendfsync = PERSIST_FSYNC_EVERYSEC;
    RUN_EQ("SET c 3", "+OK");
    CHECK(persist_when_durable(on_durable, NULL) != 0);
    persist_before_sleep();
    CHECK_EQ_INT(durable_calls, 2);
    CHECK_EQ_INT(persist_when_durable(on_durable, NULL), 0);
    server.appendfsync = PERSIST_FSYNC_NO;
    persist_before_sleep();
    cleanup();
}

static void test_persist_client_that_wrote_nothing_new_is_released(void) {
    /* a peer's WRITE answered :0 (a newer version held): held like a write, but
     * the batch is empty; it must go once what is stored is synced */
    fresh();
    server.appendfsync = PERSIST_FSYNC_ALWAYS;
    RUN_EQ("SET a 1", "+OK");
    persist_before_sleep();
    CHECK_EQ_INT(lsm_sync_wal(persist_engine(), UINT64_MAX), LSM_OK);
    persist_before_sleep();
    CHECK(!client_output_held(&tc));
    client_call_begin(&tc);
    persist_client_wrote(&tc);
    reply_raw(&tc, ":0\r\n", 4);
    client_call_end(&tc, 0);
    CHECK(client_output_held(&tc));
    persist_before_sleep();
    CHECK(!client_output_held(&tc));
    server.appendfsync = PERSIST_FSYNC_NO;
    cleanup();
}

/* ---- big hashes: one record per field ---- */

/* Live field records (meta 'h' ...) in the engine. */
/* Big-hash field records in the engine: token (0x8000|db) klen key field, and
 * the old form meta 'h' db gen field. */
static long field_records(void) {
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    struct lsm_iter *it = lsm_iter_create(persist_engine(), &ro);
    long n = 0;
    for (lsm_iter_seek_first(it); lsm_iter_valid(it); lsm_iter_next(it)) {
        size_t klen;
        const unsigned char *k = (const unsigned char *)lsm_iter_key(it, &klen);
        int meta = klen > 10 && memcmp(k, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 10) == 0;
        n += meta ? k[10] == 'h' : (klen >= 14 && (k[8] & 0x80));
    }
    lsm_iter_destroy(&it);
    return n;
}

static uint64_t wal_bytes(void) {
    struct lsm_stats st;
    lsm_stats(persist_engine(), &st);
    return st.wal_bytes;
}

static void test_persist_big_hash_writes_only_changed_fields(void) {
    fresh();
    char line[128];
    for (int i = 0; i < 1000; i++) {
        snprintf(line, sizeof(line), "HSET big f%d value-%d", i, i);
        RUN_EQ(line, ":1");
    }
    RUN_EQ("OBJECT ENCODING big", "$9 hashtable");
    persist_before_sleep();
    CHECK_EQ_INT(field_records(), 1000);
    /* one turn changing two fields writes those records and the header, not the
     * whole ~20 KB hash */
    uint64_t before = wal_bytes();
    RUN_EQ("HSET big f5 changed f5 changed-again", ":0");
    RUN_EQ("HDEL big f7", ":1");
    RUN_EQ("HINCRBY big counter 3", ":3");
    persist_before_sleep();
    uint64_t delta = wal_bytes() - before;
    CHECK(delta > 0 && delta < 1024);
    CHECK_EQ_INT(field_records(), 1000);
    reopen();
    RUN_EQ("HLEN big", ":1000");
    RUN_EQ("HGET big f5", "$13 changed-again");
    RUN_EQ("HEXISTS big f7", ":0");
    RUN_EQ("HGET big counter", "$1 3");
    RUN_EQ("HGET big f999", "$9 value-999");
    /* RENAME writes it under a new generation; the old records are tombstoned */
    RUN_EQ("RENAME big big2", "+OK");
    persist_before_sleep();
    CHECK_EQ_INT(field_records(), 1000);
    reopen();
    RUN_EQ("EXISTS big", ":0");
    RUN_EQ("HLEN big2", ":1000");
    /* a key replaced or deleted leaves no field record behind */
    RUN_EQ("SET big2 now-a-string", "+OK");
    persist_before_sleep();
    CHECK_EQ_INT(field_records(), 0);
    for (int i = 0; i < 600; i++) {
        snprintf(line, sizeof(line), "HSET big3 f%d v", i);
        RUN_EQ(line, ":1");
    }
    RUN_EQ("EXPIRE big3 1000", ":1");
    reopen();
    RUN_EQ("HLEN big3", ":600");
    CHECK(strcmp(run("TTL big3"), ":1000") == 0 || strcmp(run("TTL big3"), ":999") == 0);
    RUN_EQ("DEL big3", ":1");
    persist_before_sleep();
    CHECK_EQ_INT(field_records(), 0);
    /* the same key again: a new generation, none of the old fields */
    for (int i = 0; i < 600; i++) {
        snprintf(line, sizeof(line), "HSET big3 g%d v", i);
        RUN_EQ(line, ":1");
    }
    reopen();
    RUN_EQ("HLEN big3", ":600");
    RUN_EQ("HEXISTS big3 f1", ":0");
    /* FLUSHALL hides them (the marker), reopen included */
    RUN_EQ("FLUSHALL", "+OK");
    reopen();
    RUN_EQ("HLEN big3", ":0");
    RUN_EQ("DBSIZE", ":0");
    cleanup();
}

/* Field records of key (db 0) under its token, in the engine. */
static long token_field_records(const char *key) {
    struct lsm_read_options ro = LSM_READ_OPTIONS_INIT;
    struct lsm_iter *it = lsm_iter_create(persist_engine(), &ro);
    size_t klen = strlen(key);
    unsigned char pre[14 + 64];
    uint64_t t = ks_token(key, klen);
    for (int i = 7; i >= 0; i--) {
        pre[i] = (unsigned char)t;
        t >>= 8;
    }
    pre[8] = 0x80;
    pre[9] = 0;
    pre[10] = pre[11] = pre[12] = 0;
    pre[13] = (unsigned char)klen;
    memcpy(pre + 14, key, klen);
    long n = 0;
    for (lsm_iter_seek(it, pre, 14 + klen); lsm_iter_valid(it); lsm_iter_next(it)) {
        size_t ilen;
        const char *ik = lsm_iter_key(it, &ilen);
        if (ilen < 14 + klen || memcmp(ik, pre, 14 + klen) != 0) {
            break;
        }
        n++;
    }
    lsm_iter_destroy(&it);
    return n;
}

static void test_persist_big_hash_fields_live_under_the_key_token(void) {
    fresh();
    char line[128];
    for (int i = 0; i < 600; i++) {
        snprintf(line, sizeof(line), "HSET big f%d v%d", i, i);
        RUN_EQ(line, ":1");
    }
    RUN_EQ("SET other x", "+OK");
    persist_before_sleep();
    /* every field record sits right after big's own record, keyed without any
     * node-local number: the same data makes the same records on every node */
    CHECK_EQ_INT(token_field_records("big"), 600);
    CHECK_EQ_INT(field_records(), 600);
    /* data views skip them */
    RUN_EQ("DBSIZE", ":2");
    RUN_EQ("SCAN 0 COUNT 1000", "*2 $1 0 *2 $5 other $3 big");
    /* a flushed hash's records never reach a new hash of the same key */
    RUN_EQ("FLUSHDB", "+OK");
    RUN_EQ("HSET big g1 a g2 b", ":2");
    for (int i = 0; i < 600; i++) {
        snprintf(line, sizeof(line), "HSET big h%d v", i);
        RUN_EQ(line, ":1");
    }
    reopen();
    RUN_EQ("HLEN big", ":602");
    RUN_EQ("HEXISTS big f1", ":0");
    RUN_EQ("HGET big g2", "$1 b");
    CHECK_EQ_INT(lsm_compact_range(persist_engine(), NULL, 0, NULL, 0), LSM_OK);
    CHECK_EQ_INT(token_field_records("big"), 602); /* the flushed 600 dropped */
    cleanup();
}

/* A big hash as the version before this one stored it: a header with gen G and
 * records under meta 'h' db G field. */
static void write_old_form_hash(const char *key, int nfields) {
    struct lsm_db *db = persist_engine();
    size_t klen = strlen(key);
    unsigned char dk[10 + 64];
    uint64_t t = ks_token(key, klen);
    for (int i = 7; i >= 0; i--) {
        dk[i] = (unsigned char)t;
        t >>= 8;
    }
    dk[8] = dk[9] = 0;
    memcpy(dk + 10, key, klen);
    uint64_t gen = HLC_MAKE(1700000000000ull, 3);
    unsigned char env[16] = {1, KS_TYPE_HASH, KS_ENC_HASHTABLE, PERSIST_ENV_FIELDS};
    uint32_t cnt = (uint32_t)nfields;
    memcpy(env + 4, &cnt, 4);
    memcpy(env + 8, &gen, 8);
    struct lsm_meta m = {0, gen, 0};
    CHECK_EQ_INT(lsm_put(db, dk, 10 + klen, env, 16, &m, 0, NULL), LSM_OK);
    for (int i = 0; i < nfields; i++) {
        unsigned char fk[21 + 16];
        memset(fk, 0xff, 10);
        fk[10] = 'h';
        fk[11] = fk[12] = 0;
        for (int b = 0; b < 8; b++) {
            fk[13 + b] = (unsigned char)(gen >> (56 - 8 * b));
        }
        int fl = snprintf((char *)fk + 21, 16, "f%d", i);
        char v[16];
        int vl = snprintf(v, sizeof(v), "old%d", i);
        CHECK_EQ_INT(lsm_put(db, fk, 21 + (size_t)fl, v, (size_t)vl, &m, 0, NULL), LSM_OK);
    }
}

static void test_persist_old_form_big_hash_loads_and_moves_on_write(void) {
    fresh();
    write_old_form_hash("legacy", 700);
    RUN_EQ("SET n 1", "+OK");
    /* the counts did not see the hand-written hash: make the open recount */
    reopen_without_counts();
    RUN_EQ("DBSIZE", ":2");
    RUN_EQ("HLEN legacy", ":700");
    RUN_EQ("HGET legacy f699", "$6 old699");
    CHECK_EQ_INT(field_records(), 700); /* still in the old form: nobody wrote it */
    CHECK_EQ_INT(token_field_records("legacy"), 0);
    RUN_EQ("HSET legacy f0 new", ":0");
    persist_before_sleep();
    CHECK_EQ_INT(token_field_records("legacy"), 700); /* moved at its first write */
    CHECK_EQ_INT(field_records(), 700);               /* and the old ones tombstoned */
    reopen();
    RUN_EQ("HLEN legacy", ":700");
    RUN_EQ("HGET legacy f0", "$3 new");
    RUN_EQ("HGET legacy f5", "$4 old5");
    RUN_EQ("DEL legacy", ":1");
    persist_before_sleep();
    CHECK_EQ_INT(field_records(), 0);
    cleanup();
}

int main(void) {
    TEST_RUN(test_persist_envelope_round_trips_every_encoding);
    TEST_RUN(test_persist_write_through_and_reopen);
    TEST_RUN(test_persist_reads_through_after_the_cache_is_dropped);
    TEST_RUN(test_persist_flush_marker_hides_and_compaction_drops);
    TEST_RUN(test_persist_expired_keys_are_gone_after_reopen);
    TEST_RUN(test_persist_active_expiry_of_keys_not_in_memory);
    TEST_RUN(test_persist_versions_and_tombstones_survive_restart);
    TEST_RUN(test_persist_active_expiry_tombstone_carries_the_value_version);
    TEST_RUN(test_persist_dbsize_exact_after_clean_and_unclean_stops);
    TEST_RUN(test_persist_scan_returns_every_key_once_with_token_cursors);
    TEST_RUN(test_persist_always_holds_replies_until_the_sync);
    TEST_RUN(test_persist_when_durable_waits_for_the_batch_and_its_sync);
    TEST_RUN(test_persist_client_that_wrote_nothing_new_is_released);
    TEST_RUN(test_persist_big_hash_writes_only_changed_fields);
    TEST_RUN(test_persist_big_hash_fields_live_under_the_key_token);
    TEST_RUN(test_persist_old_form_big_hash_loads_and_moves_on_write);
    persist_close();
    ks_deinit();
    resp_out_deinit(&tc.out);
    TEST_MAIN_END();
}
