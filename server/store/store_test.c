/* server/store/store_test.c: the store as versioned records (server/store/store.c): the
 * last-write-wins apply against values, tombstones, expired keys and flush markers,
 * the record read, and the token-range iterator, each in cache mode and in
 * persistent mode (an engine in a temp dir, reopened to prove what survives).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "server/store/hlc.h"
#include "server/store/persist.h"
#include "server/store/store.h"
#include "server/test_store.h"
#include "server/test_client.h"
#include "tests/test.h"

#define RUN_EQ(line, want) CHECK_EQ_STR(run(line), want)

static struct kv_version V(uint64_t ms, uint32_t node) {
    struct kv_version v = {HLC_MAKE(ms, 0), node};
    return v;
}

/* A string record (its envelope in a static buffer, one at a time). */
static struct store_record val_rec(const char *s, struct kv_version v, long long expire_at) {
    static char *buf;
    size_t len;
    kv_free(buf);
    struct kv_entry *e = obj_str_new("x", 1, s, strlen(s), 0);
    persist_encode(e, &buf, &len);
    ks_entry_free(e);
    struct store_record r = {v, 0, expire_at, buf, len};
    return r;
}

static struct store_record tomb_rec(struct kv_version v) {
    struct store_record r = {v, 1, 0, NULL, 0};
    return r;
}

static int apply(const char *key, struct store_record r) {
    return store_apply(0, key, strlen(key), &r);
}

/* The value held for key as a C string ("" for a tombstone, NULL for nothing),
 * and its record. */
static const char *held(const char *key, struct store_record *r) {
    static char out[256];
    int rc = store_get_record(0, key, strlen(key), r);
    if (rc != 1) {
        return NULL;
    }
    if (r->deleted) {
        return "";
    }
    struct kv_entry *e = persist_decode(key, strlen(key), r->value, r->vlen, r->expire_at);
    if (e == NULL) {
        return "(malformed)";
    }
    char b[OBJ_LL_BUF];
    size_t n;
    const char *s = obj_str(e, b, &n);
    snprintf(out, sizeof(out), "%.*s", (int)n, s);
    ks_entry_free(e);
    return out;
}

#define HELD_EQ(key, want)                                                    \
    do {                                                                      \
        struct store_record hr_;                                              \
        const char *h_ = held(key, &hr_);                                     \
        CHECK_EQ_STR(h_ ? h_ : "(none)", want);                               \
    } while (0)

static const int modes[2] = {MODE_CACHE, MODE_PERSISTENT};

/* ---- last-write-wins ---- */

static void lww_values(void) {
    CHECK_EQ_INT(apply("k", val_rec("v5", V(5000, 1), 0)), STORE_APPLIED);
    HELD_EQ("k", "v5");
    struct store_record r;
    held("k", &r);
    CHECK(kv_version_cmp(r.version, V(5000, 1)) == 0);
    CHECK_EQ_INT(apply("k", val_rec("v4", V(4000, 9), 0)), STORE_IGNORED); /* older */
    HELD_EQ("k", "v5");
    CHECK_EQ_INT(apply("k", val_rec("v5", V(5000, 1), 0)), STORE_IGNORED); /* the same */
    CHECK_EQ_INT(apply("k", val_rec("v6", V(6000, 1), 0)), STORE_APPLIED); /* newer */
    HELD_EQ("k", "v6");
    /* equal hlc: the node decides */
    CHECK_EQ_INT(apply("k", val_rec("n0", V(6000, 0), 0)), STORE_IGNORED);
    CHECK_EQ_INT(apply("k", val_rec("n2", V(6000, 2), 0)), STORE_APPLIED);
    HELD_EQ("k", "n2");
    CHECK_EQ_INT(apply("k", val_rec("n1", V(6000, 1), 0)), STORE_IGNORED);
    HELD_EQ("k", "n2");
    RUN_EQ("GET k", "$2 n2");
    RUN_EQ("DBSIZE", ":1");
}

static void test_store_apply_keeps_the_newest_value_by_hlc_then_node(void) {
    for (int i = 0; i < 2; i++) {
        start(modes[i]);
        lww_values();
        stop();
    }
}

static void lww_tombstones(void) {
    CHECK_EQ_INT(apply("k", val_rec("v5", V(5000, 1), 0)), STORE_APPLIED);
    /* a tombstone older than the value: ignored */
    CHECK_EQ_INT(apply("k", tomb_rec(V(4000, 1))), STORE_IGNORED);
    HELD_EQ("k", "v5");
    /* a newer tombstone deletes it */
    CHECK_EQ_INT(apply("k", tomb_rec(V(10000, 1))), STORE_APPLIED);
    RUN_EQ("GET k", "$-1");
    RUN_EQ("DBSIZE", ":0");
    /* a value older than the tombstone: persistent mode remembers the tombstone;
     * cache mode keeps none (store.h TOMBSTONES) and takes the value */
    struct store_record r;
    if (cur_mode == MODE_PERSISTENT) {
        CHECK_EQ_STR(held("k", &r), "");
        CHECK(r.deleted && kv_version_cmp(r.version, V(10000, 1)) == 0);
        CHECK_EQ_INT(apply("k", val_rec("v7", V(7000, 1), 0)), STORE_IGNORED);
        RUN_EQ("GET k", "$-1");
    } else {
        CHECK(held("k", &r) == NULL);
        CHECK_EQ_INT(apply("k", val_rec("v7", V(7000, 1), 0)), STORE_APPLIED);
        CHECK_EQ_INT(apply("k", tomb_rec(V(10000, 1))), STORE_APPLIED);
    }
    /* a value newer than the tombstone wins */
    CHECK_EQ_INT(apply("k", val_rec("v12", V(12000, 1), 0)), STORE_APPLIED);
    HELD_EQ("k", "v12");
    RUN_EQ("DBSIZE", ":1");
    /* a tombstone for a key never seen is stored (persistent) and then beats an
     * older value */
    CHECK_EQ_INT(apply("new", tomb_rec(V(9000, 3))), STORE_APPLIED);
    RUN_EQ("DBSIZE", ":1");
    if (cur_mode == MODE_PERSISTENT) {
        CHECK_EQ_INT(apply("new", val_rec("old", V(8000, 3), 0)), STORE_IGNORED);
        /* and after a restart, still */
        restart();
        CHECK_EQ_INT(apply("k", val_rec("v11", V(11000, 1), 0)), STORE_IGNORED);
        CHECK_EQ_INT(apply("new", val_rec("old", V(8000, 3), 0)), STORE_IGNORED);
        CHECK_EQ_STR(held("new", &r), "");
        CHECK(kv_version_cmp(r.version, V(9000, 3)) == 0);
        HELD_EQ("k", "v12");
        RUN_EQ("DBSIZE", ":1");
        CHECK_EQ_INT(apply("new", val_rec("newer", V(9000, 4), 0)), STORE_APPLIED);
        RUN_EQ("DBSIZE", ":2");
        restart();
        HELD_EQ("new", "newer");
        RUN_EQ("DBSIZE", ":2");
    }
}

static void test_store_apply_tombstones_beat_older_values_and_lose_to_newer(void) {
    for (int i = 0; i < 2; i++) {
        start(modes[i]);
        lww_tombstones();
        stop();
    }
}

static void lww_expired(void) {
    long long now = kv_mstime();
    /* a value that expired (still in memory or on disk): the tombstone it becomes
     * carries its version, so an older record or the same value is ignored */
    CHECK_EQ_INT(apply("e", val_rec("ttl", V(5000, 1), now + 50)), STORE_APPLIED);
    RUN_EQ("GET e", "$3 ttl");
    if (cur_mode == MODE_PERSISTENT) {
        persist_before_sleep();
        drop_cache(); /* from the engine this time */
    }
    server.debug_clock_offset_ms = 1000;
    server.mstime = kv_mstime();
    struct store_record r;
    CHECK_EQ_STR(held("e", &r), "");
    CHECK(kv_version_cmp(r.version, V(5000, 1)) == 0);
    CHECK_EQ_INT(apply("e", val_rec("older", V(4000, 1), 0)), STORE_IGNORED);
    CHECK_EQ_INT(apply("e", val_rec("ttl", V(5000, 1), 0)), STORE_IGNORED);
    CHECK_EQ_INT(apply("e", val_rec("newer", V(5000, 2), 0)), STORE_APPLIED);
    HELD_EQ("e", "newer");
    /* a record that arrives already expired is stored as its tombstone */
    CHECK_EQ_INT(apply("f", val_rec("late", V(6000, 1), now - 10)), STORE_APPLIED);
    RUN_EQ("EXISTS f", ":0");
    if (cur_mode == MODE_PERSISTENT) {
        CHECK_EQ_STR(held("f", &r), "");
        CHECK(kv_version_cmp(r.version, V(6000, 1)) == 0 && r.expire_at == now - 10);
        CHECK_EQ_INT(apply("f", val_rec("older", V(5999, 1), 0)), STORE_IGNORED);
    }
    server.debug_clock_offset_ms = 0;
    server.mstime = kv_mstime();
    RUN_EQ("DBSIZE", ":1");
}

static void test_store_apply_treats_an_expired_key_as_its_tombstone(void) {
    for (int i = 0; i < 2; i++) {
        start(modes[i]);
        lww_expired();
        server.debug_clock_offset_ms = 0;
        stop();
    }
}

static void local_after_remote(void) {
    /* a record from a node whose clock is a day ahead: the next local write on the
     * key is still newer (the clock observed it) */
    uint64_t ahead = (uint64_t)kv_mstime() + 86400000;
    CHECK_EQ_INT(apply("k", val_rec("remote", V(ahead, 7), 0)), STORE_APPLIED);
    RUN_EQ("SET k local", "+OK");
    struct store_record r;
    HELD_EQ("k", "local");
    held("k", &r);
    CHECK(kv_version_cmp(r.version, V(ahead, 7)) > 0 && r.version.node == 0x100);
    /* a local DEL leaves (persistent) a tombstone newer than the remote value */
    RUN_EQ("DEL k", ":1");
    CHECK_EQ_INT(apply("k", val_rec("remote", V(ahead, 7), 0)),
                 cur_mode == MODE_PERSISTENT ? STORE_IGNORED : STORE_APPLIED);
}

static void test_store_local_writes_after_an_applied_record_are_newer(void) {
    for (int i = 0; i < 2; i++) {
        start(modes[i]);
        local_after_remote();
        stop();
    }
}

static void bad_records(void) {
    CHECK_EQ_INT(apply("k", val_rec("v", V(5000, 1), 0)), STORE_APPLIED);
    struct store_record r = val_rec("v", V(9000, 1), 0);
    r.vlen = 3; /* truncated */
    CHECK_EQ_INT(store_apply(0, "k", 1, &r), STORE_ERROR);
    char env[16] = {1, KS_TYPE_HASH, KS_ENC_HASHTABLE, (char)PERSIST_ENV_FIELDS, 0};
    struct store_record h = {V(9000, 1), 0, 0, env, 16};
    CHECK_EQ_INT(store_apply(0, "k", 1, &h), STORE_ERROR); /* not self-contained */
    char junk[6] = {1, 9, 9, 0, 'x', 'y'};
    struct store_record j = {V(9000, 1), 0, 0, junk, 6};
    CHECK_EQ_INT(store_apply(0, "k", 1, &j), STORE_ERROR);
    CHECK_EQ_INT(store_apply(-1, "k", 1, &r), STORE_ERROR);
    CHECK_EQ_INT(store_apply(server.databases, "k", 1, &r), STORE_ERROR);
    HELD_EQ("k", "v");
    struct store_record g;
    CHECK(held("k", &g) && kv_version_cmp(g.version, V(5000, 1)) == 0);
}

static void test_store_apply_refuses_malformed_records_and_changes_nothing(void) {
    for (int i = 0; i < 2; i++) {
        start(modes[i]);
        bad_records();
        stop();
    }
}

static void test_store_flush_marker_is_a_tombstone_of_every_key(void) {
    start(MODE_PERSISTENT);
    RUN_EQ("SET a 1", "+OK");
    uint64_t before = hlc_last();
    RUN_EQ("FLUSHALL", "+OK");
    persist_before_sleep();
    struct store_record r;
    CHECK_EQ_STR(held("a", &r), "");
    CHECK(r.version.hlc > before && r.version.node == 0);
    CHECK_EQ_STR(held("never", &r), ""); /* the marker covers every key */
    struct kv_version old = {before, 0x100};
    CHECK_EQ_INT(apply("a", val_rec("old", old, 0)), STORE_IGNORED);
    CHECK_EQ_INT(apply("a", val_rec("new", V((uint64_t)kv_mstime() + 1000, 1), 0)),
                 STORE_APPLIED);
    restart();
    HELD_EQ("a", "new");
    RUN_EQ("DBSIZE", ":1");
    stop();
}

/* One command's writes share a version (coord.c "VERSIONS"), but never one below a
 * flush marker ticked in between: MULTI SET a; FLUSHALL; SET b EXEC keeps b, also
 * across a restart, where the marker hides every record below it. */
static void test_store_a_write_after_a_flush_in_one_transaction_survives(void) {
    start(MODE_PERSISTENT);
    const char *lines[] = {"MULTI", "SET a 1", "FLUSHALL", "SET b 2", "EXEC"};
    const char *want[] = {"+OK", "+QUEUED", "+QUEUED", "+QUEUED", "*3 +OK +OK +OK"};
    for (int i = 0; i < 5; i++) {
        server.mstime = kv_mstime();
        CHECK_EQ_STR(tclient_run(&tc, lines[i], TCLIENT_PROCESS), want[i]);
    }
    struct store_record a;
    const char *ha = held("a", &a);
    CHECK(ha == NULL || strcmp(ha, "") == 0);
    HELD_EQ("b", "2");
    restart();
    HELD_EQ("b", "2");
    RUN_EQ("DBSIZE", ":1");
    stop();
}

static void test_store_applies_a_whole_big_hash_record(void) {
    for (int i = 0; i < 2; i++) {
        start(modes[i]);
        RUN_EQ("CONFIG SET hash-max-listpack-entries 2", "+OK");
        RUN_EQ("HSET big a 1 b 2 c 3", ":3");
        struct store_record r;
        CHECK(store_get_record(0, "big", 3, &r) == 1 && !r.deleted);
        char env[256];
        CHECK(r.vlen < sizeof(env));
        memcpy(env, r.value, r.vlen);
        struct store_record copy = {V((uint64_t)kv_mstime() + 60000, 2), 0, 0, env, r.vlen};
        CHECK_EQ_INT(store_apply(1, "big", 3, &copy), STORE_APPLIED);
        if (modes[i] == MODE_PERSISTENT) {
            restart();
        }
        /* the range iterator hands out the whole hash as one record */
        uint64_t t = ks_token("big", 3);
        struct store_iter *it = store_iter_range(t, t + 1);
        struct store_item item;
        int n = 0;
        while (store_iter_next(it, &item) == 1 && n < 10) {
            n++;
            struct kv_entry *e = persist_decode("big", 3, item.rec.value, item.rec.vlen, 0);
            CHECK(e != NULL);
            CHECK_EQ_INT(hash_len(e), 3);
            ks_entry_free(e);
        }
        store_iter_destroy(&it);
        CHECK_EQ_INT(n, 2); /* db 0 and db 1 */
        RUN_EQ("SELECT 1", "+OK");
        RUN_EQ("HGET big c", "$1 3");
        RUN_EQ("HLEN big", ":3");
        RUN_EQ("OBJECT ENCODING big", "$9 hashtable");
        RUN_EQ("SELECT 0", "+OK");
        RUN_EQ("CONFIG SET hash-max-listpack-entries 512", "+OK");
        stop();
    }
}

/* ---- token ranges ---- */

struct seen {
    int n;
    uint64_t last_token;
    int last_db;
    int ordered;
    int deleted;
};

static void drain(struct store_iter *it, struct seen *s) {
    struct store_item item;
    memset(s, 0, sizeof(*s));
    s->ordered = 1;
    while (store_iter_next(it, &item) == 1 && s->n < 100000) {
        if (s->n > 0 && (item.token < s->last_token ||
                         (item.token == s->last_token && item.db < s->last_db))) {
            s->ordered = 0;
        }
        if (ks_token(item.key, item.klen) != item.token) {
            s->ordered = 0;
        }
        s->last_token = item.token;
        s->last_db = item.db;
        s->deleted += item.rec.deleted;
        s->n++;
    }
    store_iter_destroy(&it);
}

static void ranges(void) {
    struct seen s;
    drain(store_iter_range(0, 0), &s);
    CHECK_EQ_INT(s.n, 0); /* empty store */
    char cmd[64];
    for (int db = 0; db < 3; db++) {
        snprintf(cmd, sizeof(cmd), "SELECT %d", db);
        RUN_EQ(cmd, "+OK");
        for (int i = 0; i < 700; i++) {
            snprintf(cmd, sizeof(cmd), "SET key%d %d", i, db);
            RUN_EQ(cmd, "+OK");
        }
    }
    RUN_EQ("SELECT 0", "+OK");
    drain(store_iter_range(0, 0), &s);
    CHECK_EQ_INT(s.n, 2100); /* the whole ring: every key of every db, in order */
    CHECK(s.ordered);
    /* one token: the same key in three databases */
    uint64_t t = ks_token("key42", 5);
    drain(store_iter_range(t, t + 1), &s);
    CHECK_EQ_INT(s.n, 3);
    drain(store_iter_range(t, t), &s); /* empty range */
    CHECK_EQ_INT(s.n, 0);
    drain(store_iter_range(t + 1, t), &s); /* wraps: the caller splits it */
    CHECK_EQ_INT(s.n, 0);
    /* a wrapping range split at the ring's end covers exactly its complement */
    struct seen a, b, c;
    drain(store_iter_range(t + 1, 0), &a);
    drain(store_iter_range(0, t), &b);
    CHECK_EQ_INT(a.n + b.n, 2100 - 3);
    CHECK(a.ordered && b.ordered);
    /* halves of the ring */
    drain(store_iter_range(0, 1ull << 63), &b);
    drain(store_iter_range(1ull << 63, 0), &c);
    CHECK_EQ_INT(b.n + c.n, 2100);
    CHECK(b.n > 700 && c.n > 700);
    /* versions come with the records */
    struct store_iter *it = store_iter_range(t, t + 1);
    struct store_item item;
    CHECK_EQ_INT(store_iter_next(it, &item), 1);
    CHECK(item.rec.version.node == 0x100 && item.rec.version.hlc != 0 && !item.rec.deleted);
    CHECK_EQ_INT(item.db, 0);
    CHECK_EQ_MEM(item.key, item.klen, "key42", 5);
    store_iter_destroy(&it);
    /* tombstones (persistent mode) */
    RUN_EQ("DEL key42", ":1");
    RUN_EQ("SET gone v PX 1", "+OK");
    usleep(5000);
    server.mstime = kv_mstime();
    drain(store_iter_range(0, 0), &s);
    if (cur_mode == MODE_PERSISTENT) {
        CHECK_EQ_INT(s.n, 2101);
        CHECK_EQ_INT(s.deleted, 2); /* key42 in db 0 and the expired gone */
        it = store_iter_range(t, t + 1);
        CHECK_EQ_INT(store_iter_next(it, &item), 1);
        CHECK(item.db == 0 && item.rec.deleted && item.rec.version.node == 0x100);
        CHECK(item.rec.value == NULL);
        store_iter_destroy(&it);
    } else {
        CHECK_EQ_INT(s.n, 2100); /* gone, expired but still in memory, as a tombstone */
        CHECK_EQ_INT(s.deleted, 1);
    }
    /* a write between two calls does not break the iteration */
    it = store_iter_range(0, 0);
    int n = 0;
    while (store_iter_next(it, &item) == 1 && n < 100000) {
        if (n++ == 10) {
            RUN_EQ("SET added v", "+OK");
            RUN_EQ("DEL key1", ":1");
        }
    }
    store_iter_destroy(&it);
    CHECK(n >= 2098 && n <= 2102);
}

static void test_store_iter_range_yields_every_record_of_a_token_range(void) {
    for (int i = 0; i < 2; i++) {
        start(modes[i]);
        ranges();
        stop();
    }
}

/* ---- a cluster flush at a version (store_flush_below) ---- */

static void flush_below(void) {
    CHECK_EQ_INT(apply("old", val_rec("o", V(1000, 1), 0)), STORE_APPLIED);
    CHECK_EQ_INT(apply("new", val_rec("n", V(3000, 1), 0)), STORE_APPLIED);
    CHECK_EQ_INT(store_apply(1, "other", 5, &(struct store_record){V(1000, 1), 1, 0, NULL, 0}),
                 STORE_APPLIED);
    CHECK_EQ_INT(store_flush_below(0, V(2000, 0).hlc), 0);
    RUN_EQ("GET old", "$-1");            /* below the flush: gone */
    RUN_EQ("GET new", "$1 n");           /* written after it (a straggler ahead): kept */
    RUN_EQ("DBSIZE", ":1");
    CHECK(store_floor(0) == V(2000, 0).hlc);
    CHECK(store_floor(1) == 0);          /* FLUSHDB: its database only */
    /* a late record older than the flush (a hint, a read repair) is never applied */
    CHECK_EQ_INT(apply("old", val_rec("late", V(1500, 9), 0)), STORE_IGNORED);
    CHECK_EQ_INT(apply("fresh", val_rec("late", V(1999, 9), 0)), STORE_IGNORED);
    RUN_EQ("GET old", "$-1");
    CHECK_EQ_INT(apply("fresh", val_rec("f", V(2500, 9), 0)), STORE_APPLIED);
    RUN_EQ("GET fresh", "$1 f");
    /* a local write after it is newer (the clock observed the flush) */
    RUN_EQ("SET local v", "+OK");
    RUN_EQ("DBSIZE", ":3");
    /* a floor is never lowered; every database (-1) */
    CHECK_EQ_INT(store_flush_below(-1, V(1000, 0).hlc), 0);
    CHECK(store_floor(0) == V(2000, 0).hlc);
    CHECK_EQ_INT(store_flush_below(16 + 1000, 5), -1);
    if (cur_mode == MODE_PERSISTENT) {
        restart(); /* the floor is the flush marker: it outlives a restart */
        CHECK_EQ_INT(apply("old", val_rec("late", V(1500, 9), 0)), STORE_IGNORED);
        RUN_EQ("GET old", "$-1");
        RUN_EQ("GET new", "$1 n");
        RUN_EQ("DBSIZE", ":3");
    }
}

static void test_store_flush_below_deletes_older_records_and_keeps_a_floor(void) {
    for (int i = 0; i < 2; i++) {
        start(modes[i]);
        flush_below();
        stop();
    }
}

int main(void) {
    TEST_RUN(test_store_apply_keeps_the_newest_value_by_hlc_then_node);
    TEST_RUN(test_store_apply_tombstones_beat_older_values_and_lose_to_newer);
    TEST_RUN(test_store_apply_treats_an_expired_key_as_its_tombstone);
    TEST_RUN(test_store_local_writes_after_an_applied_record_are_newer);
    TEST_RUN(test_store_apply_refuses_malformed_records_and_changes_nothing);
    TEST_RUN(test_store_flush_marker_is_a_tombstone_of_every_key);
    TEST_RUN(test_store_a_write_after_a_flush_in_one_transaction_survives);
    TEST_RUN(test_store_applies_a_whole_big_hash_record);
    TEST_RUN(test_store_iter_range_yields_every_record_of_a_token_range);
    TEST_RUN(test_store_flush_below_deletes_older_records_and_keeps_a_floor);
    TEST_MAIN_END();
}
