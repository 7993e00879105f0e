/* server/net/config_test.c: the configuration table: defaults, units, bounds, enums,
 * kv.conf parsing and its errors, CONFIG SET atomicity, CONFIG GET patterns, and
 * CONFIG REWRITE keeping comments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/net/net.h"
#include "tests/test.h"

static struct kv_slice sl(const char *s) {
    struct kv_slice x = {s, strlen(s)};
    return x;
}

static int set2(const char *n, const char *v, char *err, size_t errlen) {
    struct kv_slice a[2] = {sl(n), sl(v)};
    return config_set_pairs(1, a, err, errlen);
}

static void fresh(void) {
    config_deinit();
    config_init();
}

static void test_config_defaults_match_redis(void) {
    fresh();
    CHECK_EQ_INT(server.port, 6379);
    CHECK_EQ_INT(server.databases, 16);
    CHECK_EQ_INT(server.maxclients, 10000);
    CHECK_EQ_INT(server.hz, 10);
    CHECK_EQ_INT(server.maxmemory, 0);
    CHECK_EQ_INT(server.maxmemory_policy, MM_NOEVICTION);
    CHECK_EQ_INT(server.maxmemory_samples, 5);
    CHECK_EQ_INT(server.proto_max_bulk_len, 512LL * 1024 * 1024);
    CHECK_EQ_INT(server.client_query_buffer_limit, 1024LL * 1024 * 1024);
    CHECK_EQ_INT(server.slowlog_log_slower_than, 10000);
    CHECK_EQ_INT(server.slowlog_max_len, 128);
    CHECK_EQ_INT(server.mode, MODE_PERSISTENT); /* kvd's default (DESIGN.md) */
    CHECK_EQ_INT(server.appendfsync, 1);        /* everysec */
    CHECK_EQ_INT(server.protected_mode, 1);
    char buf[256];
    CHECK(config_get_value("bind", buf, sizeof(buf)) == 0);
    CHECK_EQ_STR(buf, "* -::*");
    CHECK(config_get_value("client-output-buffer-limit", buf, sizeof(buf)) == 0);
    CHECK_EQ_STR(buf, "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
    CHECK(config_get_value("nonexistent", buf, sizeof(buf)) == -1);
}

static void test_memory_units_follow_redis(void) {
    long long v;
    CHECK(kv_parse_memory("100", &v) == 0 && v == 100);
    CHECK(kv_parse_memory("1k", &v) == 0 && v == 1000);
    CHECK(kv_parse_memory("1kb", &v) == 0 && v == 1024);
    CHECK(kv_parse_memory("2m", &v) == 0 && v == 2000000);
    CHECK(kv_parse_memory("2MB", &v) == 0 && v == 2 * 1048576);
    CHECK(kv_parse_memory("1g", &v) == 0 && v == 1000000000);
    CHECK(kv_parse_memory("3Gb", &v) == 0 && v == 3LL * 1073741824);
    CHECK(kv_parse_memory("5b", &v) == 0 && v == 5);
    CHECK(kv_parse_memory("", &v) == -1);
    CHECK(kv_parse_memory("1x", &v) == -1);
    CHECK(kv_parse_memory("-1", &v) == -1);
    CHECK(kv_parse_memory("1 mb", &v) == -1);
    CHECK(kv_parse_memory("99999999999999gb", &v) == -1);
}

static void test_config_set_reports_errors_in_redis_words(void) {
    fresh();
    char err[512];
    CHECK(set2("foo", "1", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR Unknown option or number of arguments for CONFIG SET - 'foo'");
    CHECK(set2("maxmemory", "12q", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - "
                      "argument must be a memory value");
    CHECK(set2("port", "70000", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR CONFIG SET failed (possibly related to argument 'port') - "
                      "argument must be between 0 and 65535 inclusive");
    CHECK(set2("timeout", "abc", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR CONFIG SET failed (possibly related to argument 'timeout') - "
                      "argument couldn't be parsed into an integer");
    CHECK(set2("protected-mode", "maybe", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR CONFIG SET failed (possibly related to argument 'protected-mode') - "
                      "argument must be 'yes' or 'no'");
    CHECK(set2("loglevel", "loud", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR CONFIG SET failed (possibly related to argument 'loglevel') - "
                      "argument(s) must be one of the following: debug, verbose, notice, warning");
    CHECK(set2("databases", "4", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR CONFIG SET failed (possibly related to argument 'databases') - "
                      "can't set immutable config");
    CHECK(set2("maxmemory-samples", "0", err, sizeof(err)) == -1);
    CHECK(set2("slowlog-log-slower-than", "-2", err, sizeof(err)) == -1);
    CHECK(set2("slowlog-log-slower-than", "-1", err, sizeof(err)) == 0);
    CHECK_EQ_INT(server.slowlog_log_slower_than, -1);
}

static void test_config_set_is_all_or_nothing(void) {
    fresh();
    char err[512];
    struct kv_slice a[4] = {sl("timeout"), sl("30"), sl("maxmemory"), sl("bad")};
    CHECK(config_set_pairs(2, a, err, sizeof(err)) == -1);
    CHECK_EQ_INT(server.timeout, 0);
    struct kv_slice b[4] = {sl("timeout"), sl("30"), sl("MAXMEMORY"), sl("1mb")};
    CHECK(config_set_pairs(2, b, err, sizeof(err)) == 0);
    CHECK_EQ_INT(server.timeout, 30);
    CHECK_EQ_INT(server.maxmemory, 1048576);
    struct kv_slice d[4] = {sl("hz"), sl("5"), sl("hz"), sl("6")};
    CHECK(config_set_pairs(2, d, err, sizeof(err)) == -1);
    CHECK(strstr(err, "duplicate parameter") != NULL);
    CHECK_EQ_INT(server.hz, 10);
}

static void test_config_modes_and_daemonize(void) {
    fresh();
    char err[1024];
    CHECK(config_load_text("mode persistent\nappendfsync always\n", err, sizeof(err)) == 0);
    CHECK_EQ_INT(server.mode, MODE_PERSISTENT);
    CHECK_EQ_INT(server.appendfsync, 0);
    fresh();
    CHECK(config_load_text("databases 40000\nmode persistent\n", err, sizeof(err)) == -1);
    CHECK(strstr(err, "at most 32767 databases") != NULL);
    fresh();
    CHECK(config_load_text("daemonize yes\n", err, sizeof(err)) == -1);
    fresh();
    CHECK(config_load_text("daemonize no\nmode cache\n", err, sizeof(err)) == 0);
}

static void test_config_file_parsing(void) {
    fresh();
    char err[1024];
    const char *text =
        "# a comment\n"
        "   \n"
        "port 7001\n"
        "MaxMemory 2mb\n"
        "bind 127.0.0.1 ::1\n"
        "requirepass \"s e\\x41cret\"\n"
        "save 900 1\n"
        "save 300 10\n"
        "client-output-buffer-limit normal 1mb 512kb 30\n"
        "maxmemory-policy ALLKEYS-LRU\n";
    CHECK(config_load_text(text, err, sizeof(err)) == 0);
    CHECK_EQ_INT(server.port, 7001);
    CHECK_EQ_INT(server.maxmemory, 2 * 1048576);
    CHECK_EQ_STR(server.bind, "127.0.0.1 ::1");
    CHECK_EQ_STR(server.requirepass, "s eAcret");
    CHECK_EQ_INT(server.maxmemory_policy, MM_ALLKEYS_LRU);
    CHECK_EQ_INT(server.client_output_buffer_limit_hard, 1048576);
    CHECK_EQ_INT(server.client_output_buffer_limit_soft, 512 * 1024);
    CHECK_EQ_INT(server.client_output_buffer_limit_secs, 30);
    char buf[256];
    config_get_value("save", buf, sizeof(buf));
    CHECK_EQ_STR(buf, "900 1 300 10");
    config_get_value("client-output-buffer-limit", buf, sizeof(buf));
    CHECK_EQ_STR(buf, "normal 1048576 524288 30 slave 268435456 67108864 60 pubsub 33554432 8388608 60");
}

static void test_config_file_errors_name_the_line(void) {
    fresh();
    char err[1024];
    CHECK(config_load_text("port 1\nnosuch 2\n", err, sizeof(err)) == -1);
    CHECK(strstr(err, "at line 2") != NULL);
    CHECK(strstr(err, ">>> 'nosuch 2'") != NULL);
    CHECK(strstr(err, "Bad directive or wrong number of arguments") != NULL);
    fresh();
    CHECK(config_load_text("port 99999\n", err, sizeof(err)) == -1);
    CHECK(strstr(err, "argument must be between 0 and 65535 inclusive") != NULL);
    fresh();
    CHECK(config_load_text("port 1 2\n", err, sizeof(err)) == -1);
    fresh();
    CHECK(config_load_text("requirepass \"unterminated\n", err, sizeof(err)) == -1);
    fresh();
    CHECK(config_load_text("save 1\n", err, sizeof(err)) == -1);
    CHECK(strstr(err, "Invalid save parameters") != NULL);
    fresh();
    CHECK(config_load_text("client-output-buffer-limit bogus 1 1 1\n", err, sizeof(err)) == -1);
    CHECK(strstr(err, "Invalid client class") != NULL);
}

struct collected {
    int n;
    char names[64][64];
};

static void collect(void *ctx, const char *name, const char *value) {
    struct collected *c = ctx;
    (void)value;
    if (c->n < 64) {
        snprintf(c->names[c->n++], 64, "%s", name);
    }
}

static void test_config_get_patterns(void) {
    fresh();
    struct collected c = {0};
    struct kv_slice p1[1] = {sl("max*")};
    config_get(1, p1, collect, &c);
    CHECK_EQ_INT(c.n, 4); /* maxclients maxmemory maxmemory-policy maxmemory-samples */
    memset(&c, 0, sizeof(c));
    struct kv_slice p2[3] = {sl("port"), sl("PORT"), sl("p?rt")};
    config_get(3, p2, collect, &c);
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_STR(c.names[0], "port");
    memset(&c, 0, sizeof(c));
    struct kv_slice p3[2] = {sl("nomatch*"), sl("[hl]z")};
    config_get(2, p3, collect, &c);
    CHECK_EQ_INT(c.n, 1);
    CHECK_EQ_STR(c.names[0], "hz");
    memset(&c, 0, sizeof(c));
    struct kv_slice p4[1] = {sl("*")};
    config_get(1, p4, collect, &c);
    CHECK(c.n > 30);
}

static void test_config_aliases(void) {
    fresh();
    char err[256];
    CHECK(set2("hash-max-ziplist-entries", "7", err, sizeof(err)) == 0);
    CHECK_EQ_INT(ks_hash_max_listpack_entries, 7);
    struct collected c = {0};
    struct kv_slice p[1] = {sl("hash-max-*")};
    config_get(1, p, collect, &c);
    CHECK_EQ_INT(c.n, 4);
    CHECK_EQ_STR(c.names[0], "hash-max-listpack-entries");
    CHECK_EQ_STR(c.names[1], "hash-max-ziplist-entries");
    char buf[64];
    CHECK(config_get_value("hash-max-ziplist-entries", buf, sizeof(buf)) == 0);
    CHECK_EQ_STR(buf, "7");
    /* a memory value, as in Redis 7.0.15: no sign; past LLONG_MAX it is out of bounds */
    CHECK(set2("hash-max-listpack-value", "-1", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-value') - "
                      "argument must be a memory value");
    CHECK(set2("hash-max-listpack-value", "9223372036854775808", err, sizeof(err)) == -1);
    CHECK_EQ_STR(err, "ERR CONFIG SET failed (possibly related to argument 'hash-max-listpack-value') - "
                      "argument must be between 0 and 9223372036854775807 inclusive");
    CHECK(set2("hash-max-listpack-value", "1kb", err, sizeof(err)) == 0);
    CHECK(config_get_value("hash-max-listpack-value", buf, sizeof(buf)) == 0);
    CHECK_EQ_STR(buf, "1024");
    CHECK(set2("hash-max-listpack-value", "64", err, sizeof(err)) == 0);
    CHECK(set2("hash-max-ziplist-entries", "128", err, sizeof(err)) == 0);
}

static char *slurp(const char *path) {
    FILE *fp = fopen(path, "r");
    if (!fp) return NULL;
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void test_config_rewrite_keeps_comments(void) {
    fresh();
    char path[] = "/tmp/kvd_config_test_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    const char *text = "# my comment\nport 7001\n\n# mem\nmaxmemory 1mb\nunknown-thing keep\nport 7002\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char err[1024];
    /* the file also holds a line kvd does not know (e.g. from a newer version):
     * loading it would fail, rewriting must keep it */
    CHECK(config_load_text("port 7001\nmaxmemory 1mb\nport 7002\n", err, sizeof(err)) == 0);
    server.config_file = kv_strndup(path, strlen(path));
    CHECK(set2("maxmemory", "3gb", err, sizeof(err)) == 0);
    CHECK(set2("timeout", "9", err, sizeof(err)) == 0);
    CHECK(config_rewrite(err, sizeof(err)) == 0);
    char *out = slurp(path);
    unlink(path);
    CHECK(out != NULL);
    CHECK_EQ_STR(out, "# my comment\nport 7002\n\n# mem\nmaxmemory 3gb\nunknown-thing keep\n"
                      "# Generated by CONFIG REWRITE\ntimeout 9\n");
}

static void test_split_args_quoting(void) {
    char **argv;
    int argc = kv_split_args("a \"b c\" 'd e' \"x\\x41\\n\" ''", &argv);
    CHECK_EQ_INT(argc, 5);
    CHECK_EQ_STR(argv[0], "a");
    CHECK_EQ_STR(argv[1], "b c");
    CHECK_EQ_STR(argv[2], "d e");
    CHECK_EQ_STR(argv[3], "xA\n");
    CHECK_EQ_STR(argv[4], "");
    kv_free(argv);
    CHECK_EQ_INT(kv_split_args("\"abc\"def", &argv), -1);
    CHECK_EQ_INT(kv_split_args("'abc", &argv), -1);
    CHECK_EQ_INT(kv_split_args("   ", &argv), 0);
    kv_free(argv);
}

static void test_repr_quotes_as_redis(void) {
    char buf[64];
    size_t n = kv_repr(buf, sizeof(buf), "a\"b\\\n\x01 z", 8);
    CHECK_EQ_STR(buf, "\"a\\\"b\\\\\\n\\x01 z\"");
    CHECK_EQ_INT(n, strlen(buf));
    char h[32];
    kv_bytes_human(h, sizeof(h), 1023);
    CHECK_EQ_STR(h, "1023B");
    kv_bytes_human(h, sizeof(h), 1536);
    CHECK_EQ_STR(h, "1.50K");
    kv_bytes_human(h, sizeof(h), 3ULL << 30);
    CHECK_EQ_STR(h, "3.00G");
}

int main(void) {
    server.loglevel = LL_WARNING;
    TEST_RUN(test_config_defaults_match_redis);
    TEST_RUN(test_memory_units_follow_redis);
    TEST_RUN(test_config_set_reports_errors_in_redis_words);
    TEST_RUN(test_config_set_is_all_or_nothing);
    TEST_RUN(test_config_modes_and_daemonize);
    TEST_RUN(test_config_file_parsing);
    TEST_RUN(test_config_file_errors_name_the_line);
    TEST_RUN(test_config_get_patterns);
    TEST_RUN(test_config_aliases);
    TEST_RUN(test_config_rewrite_keeps_comments);
    TEST_RUN(test_split_args_quoting);
    TEST_RUN(test_repr_quotes_as_redis);
    config_deinit();
    TEST_MAIN_END();
}
