/* server/coord/coord_test.c: unit tests of the coordinator seam's typed lookup
 * (coord_lookup_type_or_reply) and of the in-place changes that keep handlers from
 * naming a database (coord_str_append, coord_str_setrange, coord_hash_set,
 * coord_hash_del, coord_db_overhead), and of the versioning rule (coord.c
 * "VERSIONS": one version per command where it may, strictly increasing per key),
 * run in-process on a fake client (server/test_client.h).
 */
#include <stdio.h>
#include <string.h>

#include "server/base/base.h"
#include "server/store/hlc.h"
#include "server/test_client.h"
#include "tests/test.h"

static struct client tc;

static void setup(void) {
    tclient_fresh_cache(&tc);
}

static struct kv_slice sl(const char *s) {
    return (struct kv_slice){s, strlen(s)};
}

static const char *run(const char *line) {
    return tclient_run(&tc, line, TCLIENT_HANDLER);
}

/* What the client was sent since the last call, squeezed as tclient_run does. */
static const char *take_reply(void) {
    static char out[4096];
    size_t n = 0;
    struct iovec iov[16];
    int cnt = resp_out_iov(&tc.out, iov, 16);
    for (int i = 0; i < cnt; i++) {
        for (size_t k = 0; k < iov[i].iov_len && n + 2 < sizeof(out); k++) {
            char ch = ((char *)iov[i].iov_base)[k];
            if (ch != '\r') {
                out[n++] = ch == '\n' ? ' ' : ch;
            }
        }
    }
    if (n > 0 && out[n - 1] == ' ') {
        n--;
    }
    out[n] = '\0';
    resp_out_consume(&tc.out, resp_out_pending(&tc.out));
    return out;
}

#define WRONGTYPE "-WRONGTYPE Operation against a key holding the wrong kind of value"

static void test_typed_lookup_absent_key_is_null_with_no_reply(void) {
    setup();
    struct kv_slice k = sl("nokey");
    struct kv_entry *e = (struct kv_entry *)&tc; /* must be overwritten */
    long long hits = server.stat_keyspace_hits, misses = server.stat_keyspace_misses;
    CHECK_EQ_INT(coord_lookup_type_or_reply(&tc, &k, KS_TYPE_STRING, 0, &e), 0);
    CHECK(e == NULL);
    CHECK_EQ_STR(take_reply(), "");
    /* a read counts a miss, as coord_lookup_read */
    CHECK_EQ_INT(server.stat_keyspace_misses, misses + 1);
    CHECK_EQ_INT(server.stat_keyspace_hits, hits);
    /* a write lookup counts nothing, as coord_lookup_write */
    e = (struct kv_entry *)&tc;
    CHECK_EQ_INT(coord_lookup_type_or_reply(&tc, &k, KS_TYPE_HASH, COORD_NOSTATS, &e), 0);
    CHECK(e == NULL);
    CHECK_EQ_STR(take_reply(), "");
    CHECK_EQ_INT(server.stat_keyspace_misses, misses + 1);
    CHECK_EQ_INT(server.stat_keyspace_hits, hits);
}

static void test_typed_lookup_wrong_type_replies_wrongtype_exactly_once(void) {
    setup();
    CHECK_EQ_STR(run("HSET h f v"), ":1");
    CHECK_EQ_STR(run("SET s v"), "+OK");
    struct kv_slice h = sl("h"), s = sl("s");
    struct kv_entry *e = (struct kv_entry *)&tc;
    long long hits = server.stat_keyspace_hits, misses = server.stat_keyspace_misses;
    CHECK_EQ_INT(coord_lookup_type_or_reply(&tc, &h, KS_TYPE_STRING, 0, &e), -1);
    CHECK(e == NULL);
    CHECK_EQ_STR(take_reply(), WRONGTYPE);
    /* the key was found: a read counts a hit, as Redis's lookupKeyRead + checkType */
    CHECK_EQ_INT(server.stat_keyspace_hits, hits + 1);
    CHECK_EQ_INT(server.stat_keyspace_misses, misses);
    e = (struct kv_entry *)&tc;
    CHECK_EQ_INT(coord_lookup_type_or_reply(&tc, &s, KS_TYPE_HASH, COORD_NOSTATS, &e), -1);
    CHECK(e == NULL);
    CHECK_EQ_STR(take_reply(), WRONGTYPE);
    CHECK_EQ_INT(server.stat_keyspace_hits, hits + 1);
    /* the value was not touched */
    CHECK_EQ_STR(run("HGET h f"), "$1 v");
    CHECK_EQ_STR(run("GET s"), "$1 v");
}

static void test_typed_lookup_right_type_returns_the_stored_entry(void) {
    setup();
    CHECK_EQ_STR(run("SET s hello"), "+OK");
    struct kv_slice s = sl("s");
    struct kv_entry *want = coord_lookup(&tc, &s, COORD_NOSTATS | COORD_NOTOUCH), *e = NULL;
    CHECK(want != NULL);
    long long hits = server.stat_keyspace_hits, misses = server.stat_keyspace_misses;
    CHECK_EQ_INT(coord_lookup_type_or_reply(&tc, &s, KS_TYPE_STRING, 0, &e), 0);
    CHECK(e == want);
    CHECK_EQ_STR(take_reply(), "");
    CHECK_EQ_INT(server.stat_keyspace_hits, hits + 1);
    CHECK_EQ_INT(server.stat_keyspace_misses, misses);
    e = NULL;
    CHECK_EQ_INT(coord_lookup_type_or_reply(&tc, &s, KS_TYPE_STRING, COORD_NOSTATS, &e), 0);
    CHECK(e == want);
    CHECK_EQ_INT(server.stat_keyspace_hits, hits + 1);
}

/* Every type-checked command answers a key of the other type with one WRONGTYPE
 * reply and nothing else (the reply is squeezed whole: a second reply would show). */
static void test_every_typed_command_replies_wrongtype_once(void) {
    setup();
    CHECK_EQ_STR(run("HSET h f 1"), ":1");
    CHECK_EQ_STR(run("SET s 1"), "+OK");
    static const char *const on_hash[] = {
        "GET h", "GETEX h PERSIST", "GETDEL h", "GETSET h x", "SET h x GET", "APPEND h x",
        "STRLEN h", "GETRANGE h 0 1", "SUBSTR h 0 1", "SETRANGE h 0 x", "INCR h",
        "DECR h", "INCRBY h 2", "DECRBY h 2", "INCRBYFLOAT h 1.5",
    };
    static const char *const on_string[] = {
        "HSET s f v", "HMSET s f v", "HSETNX s f v", "HGET s f", "HMGET s f g",
        "HGETALL s", "HKEYS s", "HVALS s", "HDEL s f", "HEXISTS s f", "HLEN s",
        "HSTRLEN s f", "HINCRBY s f 1", "HINCRBYFLOAT s f 1", "HSCAN s 0",
        "HRANDFIELD s", "HRANDFIELD s 2 WITHVALUES",
    };
    for (size_t i = 0; i < sizeof(on_hash) / sizeof(on_hash[0]); i++) {
        const char *got = run(on_hash[i]);
        if (strcmp(got, WRONGTYPE) != 0) {
            TEST_FAIL_AT("%s -> %s", on_hash[i], got);
        }
    }
    for (size_t i = 0; i < sizeof(on_string) / sizeof(on_string[0]); i++) {
        const char *got = run(on_string[i]);
        if (strcmp(got, WRONGTYPE) != 0) {
            TEST_FAIL_AT("%s -> %s", on_string[i], got);
        }
    }
    /* nothing changed either key */
    CHECK_EQ_STR(run("HGETALL h"), "*2 $1 f $1 1");
    CHECK_EQ_STR(run("GET s"), "$1 1");
}

/* coord_str_append / coord_str_setrange grow the stored string (the entry moves)
 * and leave it re-linked in the client's database. */
static void test_in_place_string_changes_relink_moved_entries(void) {
    setup();
    struct kv_slice k = sl("s");
    CHECK_EQ_STR(run("SET s 12"), "+OK");
    struct kv_entry *e = NULL;
    CHECK_EQ_INT(coord_lookup_type_or_reply(&tc, &k, KS_TYPE_STRING, COORD_NOSTATS, &e), 0);
    CHECK(e != NULL);
    char chunk[200];
    memset(chunk, 'a', sizeof(chunk));
    for (int i = 0; i < 20; i++) { /* 2 + 4000 bytes: past embstr, several reallocs */
        e = coord_str_append(&tc, &k, e, chunk, sizeof(chunk));
        CHECK(coord_lookup(&tc, &k, COORD_NOSTATS | COORD_NOTOUCH) == e);
    }
    CHECK_EQ_INT(obj_str_len(e), 4002);
    e = coord_str_setrange(&tc, &k, e, 9000, "zz", 2);
    CHECK(coord_lookup(&tc, &k, COORD_NOSTATS | COORD_NOTOUCH) == e);
    CHECK_EQ_STR(run("STRLEN s"), ":9002");
    CHECK_EQ_STR(run("GETRANGE s 0 2"), "$3 12a");
    CHECK_EQ_STR(run("GETRANGE s 9000 -1"), "$2 zz");
}

/* coord_hash_set / coord_hash_del change a stored hash through its conversion to
 * a hashtable; the entry stays findable. */
static void test_in_place_hash_changes_relink_moved_entries(void) {
    setup();
    struct kv_slice k = sl("h");
    CHECK_EQ_STR(run("HSET h f0 v0"), ":1");
    struct kv_entry *e = NULL;
    CHECK_EQ_INT(coord_lookup_type_or_reply(&tc, &k, KS_TYPE_HASH, COORD_NOSTATS, &e), 0);
    CHECK(e != NULL);
    char f[32], v[32];
    for (int i = 1; i < 600; i++) { /* past hash-max-listpack-entries */
        int fl = snprintf(f, sizeof(f), "f%d", i), vl = snprintf(v, sizeof(v), "v%d", i);
        CHECK_EQ_INT(coord_hash_set(&tc, &e, f, (size_t)fl, v, (size_t)vl), 1);
    }
    CHECK_EQ_INT(coord_hash_set(&tc, &e, "f1", 2, "x", 1), 0);
    CHECK_EQ_INT(coord_hash_del(&tc, &e, "f2", 2), 1);
    CHECK_EQ_INT(coord_hash_del(&tc, &e, "f2", 2), 0);
    coord_hash_modified(&tc, &k, e, NULL, 0, 1);
    CHECK(coord_lookup(&tc, &k, COORD_NOSTATS | COORD_NOTOUCH) == e);
    CHECK_EQ_STR(obj_encoding_name(e), "hashtable");
    CHECK_EQ_STR(run("HLEN h"), ":599");
    CHECK_EQ_STR(run("HGET h f1"), "$1 x");
    CHECK_EQ_STR(run("HGET h f599"), "$4 v599");
}

static void test_db_overhead_counts_each_database(void) {
    setup();
    CHECK_EQ_STR(run("MSET a 1 b 2 c 3"), "+OK");
    CHECK_EQ_STR(run("EXPIRE a 100"), ":1");
    size_t keys, main_bytes, expires_bytes;
    coord_db_overhead(0, &keys, &main_bytes, &expires_bytes);
    CHECK_EQ_INT(keys, 3);
    CHECK(main_bytes >= 3 * sizeof(void *));
    CHECK(expires_bytes >= 1 * sizeof(void *));
    coord_db_overhead(1, &keys, &main_bytes, &expires_bytes);
    CHECK_EQ_INT(keys, 0);
}

/* ---- versions (coord.c "VERSIONS") ---- */

/* A whole command through process_command and call(), as a client's would run. */
static const char *run_cmd(const char *line) {
    return tclient_run(&tc, line, TCLIENT_PROCESS);
}

static uint64_t hlc_of(const char *key) {
    struct kv_slice k = sl(key);
    struct kv_entry *e = coord_lookup(&tc, &k, COORD_NOTOUCH | COORD_NOSTATS);
    return e ? ks_entry_version(e).hlc : 0;
}

static void test_one_command_writes_its_keys_with_one_version(void) {
    setup();
    CHECK_EQ_STR(run_cmd("MSET a 1 b 2 c 3"), "+OK");
    uint64_t v = hlc_of("a");
    CHECK(v != 0);
    CHECK(hlc_of("b") == v && hlc_of("c") == v);
    CHECK(v == hlc_last()); /* one tick for the three keys */
    /* the next command takes a new one, also for other keys */
    CHECK_EQ_STR(run_cmd("MSET d 4 e 5"), "+OK");
    CHECK(hlc_of("d") > v && hlc_of("e") == hlc_of("d"));
}

static void test_a_key_written_twice_in_one_command_gets_a_higher_version(void) {
    setup();
    CHECK_EQ_STR(run_cmd("MSET x 1 k a k b y 2"), "+OK");
    CHECK_EQ_STR(run("GET k"), "$1 b");
    uint64_t first = hlc_of("x"); /* what k's first write carried */
    CHECK(hlc_of("k") > first);
    /* the keys after the second write share its version */
    CHECK(hlc_of("y") == hlc_of("k"));
    /* EXEC is one command: the same within a transaction, SET then SET, and an
     * in-place change (INCR) of a key the transaction already wrote */
    CHECK_EQ_STR(run_cmd("MULTI"), "+OK");
    CHECK_EQ_STR(run_cmd("SET t 1"), "+QUEUED");
    CHECK_EQ_STR(run_cmd("SET n 1"), "+QUEUED");
    CHECK_EQ_STR(run_cmd("SET n 2"), "+QUEUED");
    CHECK_EQ_STR(run_cmd("INCR n"), "+QUEUED");
    CHECK_EQ_STR(run_cmd("EXEC"), "*4 +OK +OK +OK :3");
    uint64_t t = hlc_of("t");
    CHECK(t > hlc_of("y"));
    /* inside EXEC the clock stands still: SET n 2 and INCR n took one tick each */
    CHECK(hlc_of("n") == t + 2);
}

static void test_versions_of_a_key_increase_across_commands_and_a_clock_going_back(void) {
    setup();
    CHECK_EQ_STR(run_cmd("MSET k 1 j 1"), "+OK");
    uint64_t prev = hlc_of("k");
    const char *cmds[] = {"SET k 2", "MSET j 2 k 3", "INCR k", "MSET k 5 k 6", "APPEND k x"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        /* every other command runs with the clock an hour back (call() reads it) */
        server.debug_clock_offset_ms = (i % 2) ? -3600000 : 0;
        CHECK(run_cmd(cmds[i])[0] != '-');
        uint64_t v = hlc_of("k");
        if (v <= prev) {
            TEST_FAIL_AT("after %s: version %llx <= %llx", cmds[i], (unsigned long long)v,
                         (unsigned long long)prev);
        }
        prev = v;
    }
    server.debug_clock_offset_ms = 0;
}

/* Rule 2: once the clock moved inside a command (a flush marker's tick, a version
 * observed), the command's later writes are above it, not at its old version. */
static void test_a_write_after_the_clock_moved_in_a_command_is_above_it(void) {
    setup();
    struct kv_slice a = sl("a"), b = sl("b"), k = sl("k");
    coord_command_begin();
    coord_set_str(&tc, &a, "1", 1, 0, 0);
    uint64_t v = hlc_of("a");
    uint64_t marker = hlc_now(); /* e.g. persistent mode's FLUSHALL marker */
    coord_set_str(&tc, &b, "2", 1, 0, 0);
    CHECK(hlc_of("b") > marker && marker > v);
    /* a key holding a version from ahead (restored, or a peer's) is exceeded */
    struct kv_entry *e = coord_set_str(&tc, &k, "3", 1, 0, 0);
    struct kv_version ahead = {HLC_MAKE(HLC_MS(hlc_last()) + 86400000, 0), 9};
    ks_entry_set_version(e, ahead);
    coord_set_str(&tc, &k, "4", 1, 0, 0);
    CHECK(hlc_of("k") > ahead.hlc);
    coord_set_str(&tc, &a, "5", 1, 0, 0);
    CHECK(hlc_of("a") == hlc_of("k")); /* shared again once nothing moved */
}

int main(void) {
    TEST_RUN(test_typed_lookup_absent_key_is_null_with_no_reply);
    TEST_RUN(test_typed_lookup_wrong_type_replies_wrongtype_exactly_once);
    TEST_RUN(test_typed_lookup_right_type_returns_the_stored_entry);
    TEST_RUN(test_every_typed_command_replies_wrongtype_once);
    TEST_RUN(test_in_place_string_changes_relink_moved_entries);
    TEST_RUN(test_in_place_hash_changes_relink_moved_entries);
    TEST_RUN(test_db_overhead_counts_each_database);
    TEST_RUN(test_one_command_writes_its_keys_with_one_version);
    TEST_RUN(test_a_key_written_twice_in_one_command_gets_a_higher_version);
    TEST_RUN(test_versions_of_a_key_increase_across_commands_and_a_clock_going_back);
    TEST_RUN(test_a_write_after_the_clock_moved_in_a_command_is_above_it);
    ks_deinit();
    resp_out_deinit(&tc.out);
    TEST_MAIN_END();
}
