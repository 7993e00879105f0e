/* server/cmd/commands_test.c: the command table and the command path without
 * sockets: lookup (case, unknown, subcommands), arity and unknown-command errors
 * in Redis's exact words, auth, MULTI queueing, CLIENT REPLY, and the reply
 * counters. A client with fd -1 runs commands; its output queue is read back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/net/net.h"
#include "server/store/events.h"
#include "server/test_client.h"
#include "tests/test.h"

static struct client *tc;

static const char *run(int argc, const char **args) {
    static char out[65536];
    struct kv_slice argv[64];
    for (int i = 0; i < argc; i++) {
        argv[i].p = args[i];
        argv[i].len = strlen(args[i]);
    }
    tc->argc = argc;
    tc->argv = argv;
    process_command(tc);
    tc->flags &= ~CLIENT_REPLY_SKIP;
    if (tc->flags & CLIENT_REPLY_SKIP_NEXT) {
        tc->flags = (tc->flags | CLIENT_REPLY_SKIP) & ~CLIENT_REPLY_SKIP_NEXT;
    }
    tclient_take_output(tc, out, sizeof(out));
    tc->argc = 0;
    tc->argv = NULL;
    return out;
}

#define RUN(...) run(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *), \
                     (const char *[]){__VA_ARGS__})

static void test_lookup_is_case_insensitive(void) {
    struct kv_command *a = command_lookup("get", 3);
    struct kv_command *b = command_lookup("GeT", 3);
    CHECK(a != NULL && a == b);
    CHECK_EQ_STR(a->name, "get");
    CHECK_EQ_INT(a->arity, 2);
    CHECK(command_lookup("gets", 4) == NULL);
    CHECK(command_lookup("ge", 2) == NULL);
    CHECK(command_lookup("", 0) == NULL);
    CHECK(command_lookup("getX", 3) == a); /* length-bounded, no NUL needed */
}

static void test_every_row_is_found(void) {
    size_t n;
    struct kv_command *tab = command_table(&n);
    CHECK(n > 50);
    for (size_t i = 0; i < n; i++) {
        CHECK(command_lookup(tab[i].name, strlen(tab[i].name)) == &tab[i]);
        CHECK(tab[i].proc != NULL);
    }
}

static void test_subcommands_resolve(void) {
    struct kv_command *cfg = command_lookup("config", 6);
    const struct kv_command *get = command_lookup_sub(cfg, "GET", 3);
    CHECK(get != NULL);
    CHECK_EQ_STR(get->name, "config|get");
    CHECK_EQ_INT(get->arity, -3);
    CHECK(command_lookup_sub(cfg, "nope", 4) == NULL);
    CHECK(command_lookup_sub(command_lookup("ping", 4), "x", 1) == NULL);
}

static void test_errors_in_redis_words(void) {
    CHECK_EQ_STR(RUN("foo", "a", "b"),
                 "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
    CHECK_EQ_STR(RUN("foo"), "-ERR unknown command 'foo', with args beginning with: \r\n");
    CHECK_EQ_STR(RUN("GET"), "-ERR wrong number of arguments for 'get' command\r\n");
    CHECK_EQ_STR(RUN("echo", "a", "b"), "-ERR wrong number of arguments for 'echo' command\r\n");
    CHECK_EQ_STR(RUN("config"), "-ERR wrong number of arguments for 'config' command\r\n");
    CHECK_EQ_STR(RUN("config", "get"),
                 "-ERR wrong number of arguments for 'config|get' command\r\n");
    CHECK_EQ_STR(RUN("config", "bad"), "-ERR unknown subcommand 'bad'. Try CONFIG HELP.\r\n");
    CHECK_EQ_STR(RUN("client", "setname"),
                 "-ERR wrong number of arguments for 'client|setname' command\r\n");
}

static void test_unknown_command_args_are_truncated(void) {
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    const char *out = RUN("nope", big, "second");
    /* one argument cut to 128 bytes, then no more arguments */
    char want[400];
    snprintf(want, sizeof(want), "-ERR unknown command 'nope', with args beginning with: '%.128s' \r\n", big);
    CHECK_EQ_STR(out, want);
}

static void test_connection_commands(void) {
    CHECK_EQ_STR(RUN("PING"), "+PONG\r\n");
    CHECK_EQ_STR(RUN("ping", "hey"), "$3\r\nhey\r\n");
    CHECK_EQ_STR(RUN("echo", "x"), "$1\r\nx\r\n");
    CHECK_EQ_STR(RUN("select", "99"), "-ERR DB index is out of range\r\n");
    CHECK_EQ_STR(RUN("select", "1x"), "-ERR value is not an integer or out of range\r\n");
    CHECK_EQ_STR(RUN("hello", "9"), "-NOPROTO unsupported protocol version\r\n");
    CHECK_EQ_STR(RUN("client", "setname", "a b"),
                 "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
    CHECK_EQ_STR(RUN("client", "setname", "n1"), "+OK\r\n");
    CHECK_EQ_STR(RUN("client", "getname"), "$2\r\nn1\r\n");
    CHECK_EQ_STR(RUN("client", "setname", ""), "+OK\r\n");
    CHECK_EQ_STR(RUN("client", "getname"), "$-1\r\n");
}

static void test_hello3_switches_before_replying(void) {
    const char *out = RUN("hello", "3");
    CHECK(strncmp(out, "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n", 27) == 0);
    CHECK_EQ_INT(tc->resp, 3);
    CHECK_EQ_STR(RUN("reset"), "+RESET\r\n");
    CHECK_EQ_INT(tc->resp, 2);
}

static void test_auth_gates_commands(void) {
    char err[256];
    struct kv_slice a[2] = {{"requirepass", 11}, {"pw", 2}};
    CHECK(config_set_pairs(1, a, err, sizeof(err)) == 0);
    tc->authenticated = 0;
    CHECK_EQ_STR(RUN("ping"), "-NOAUTH Authentication required.\r\n");
    CHECK_EQ_STR(RUN("auth", "bad"),
                 "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    CHECK_EQ_STR(RUN("auth", "someone", "pw"),
                 "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    CHECK_EQ_STR(RUN("auth", "default", "pw"), "+OK\r\n");
    CHECK_EQ_STR(RUN("ping"), "+PONG\r\n");
    struct kv_slice b[2] = {{"requirepass", 11}, {"", 0}};
    CHECK(config_set_pairs(1, b, err, sizeof(err)) == 0);
    CHECK_EQ_STR(RUN("auth", "x"),
                 "-ERR AUTH <password> called without any password configured for the default "
                 "user. Are you sure your configuration is correct?\r\n");
}

static void test_multi_queues_and_aborts(void) {
    CHECK_EQ_STR(RUN("multi"), "+OK\r\n");
    CHECK_EQ_STR(RUN("ping"), "+QUEUED\r\n");
    CHECK_EQ_STR(RUN("echo", "e"), "+QUEUED\r\n");
    CHECK_EQ_STR(RUN("multi"), "-ERR MULTI calls can not be nested\r\n");
    CHECK_EQ_STR(RUN("exec"), "*2\r\n+PONG\r\n$1\r\ne\r\n");
    CHECK_EQ_STR(RUN("exec"), "-ERR EXEC without MULTI\r\n");
    CHECK_EQ_STR(RUN("multi"), "+OK\r\n");
    CHECK_EQ_STR(RUN("nosuch"), "-ERR unknown command 'nosuch', with args beginning with: \r\n");
    CHECK_EQ_STR(RUN("exec"), "-EXECABORT Transaction discarded because of previous errors.\r\n");
    CHECK_EQ_INT(tc->flags & CLIENT_MULTI, 0);
}

/* A store event as the keyspace or the store would emit it (events.h). */
static void emit(enum store_event type, int db, const char *key) {
    struct store_ev ev = {.type = type, .db = db, .key = key, .klen = key ? strlen(key) : 0};
    store_emit(&ev);
}

static void test_watch_touch_fails_exec(void) {
    CHECK_EQ_STR(RUN("watch", "k"), "+OK\r\n");
    CHECK(watch_any());
    struct kv_slice other = {"other", 5}, k = {"k", 1};
    emit(STORE_EV_WRITTEN, 0, other.p);
    CHECK_EQ_INT(tc->flags & CLIENT_DIRTY_CAS, 0);
    emit(STORE_EV_DELETED, 1, k.p); /* another db */
    CHECK_EQ_INT(tc->flags & CLIENT_DIRTY_CAS, 0);
    emit(STORE_EV_REPLACING, 0, k.p); /* not a change on its own */
    CHECK_EQ_INT(tc->flags & CLIENT_DIRTY_CAS, 0);
    emit(STORE_EV_WRITTEN, 0, k.p);
    CHECK(tc->flags & CLIENT_DIRTY_CAS);
    CHECK_EQ_STR(RUN("multi"), "+OK\r\n");
    CHECK_EQ_STR(RUN("ping"), "+QUEUED\r\n");
    CHECK_EQ_STR(RUN("exec"), "*-1\r\n");
    CHECK(!watch_any());
    CHECK_EQ_STR(RUN("watch", "a", "b"), "+OK\r\n");
    emit(STORE_EV_EVICTED, 0, "b");
    CHECK(tc->flags & CLIENT_DIRTY_CAS);
    CHECK_EQ_STR(RUN("unwatch"), "+OK\r\n");
    CHECK_EQ_INT(tc->flags & CLIENT_DIRTY_CAS, 0);
    CHECK(!watch_any());
}

static void test_watch_before_flush_marks_existing_keys_only(void) {
    CHECK(server.db != NULL);
    CHECK_EQ_STR(RUN("set", "present", "1"), "+OK\r\n");
    CHECK_EQ_STR(RUN("watch", "absent"), "+OK\r\n");
    emit(STORE_EV_FLUSH_BEFORE, -1, NULL);
    CHECK_EQ_INT(tc->flags & CLIENT_DIRTY_CAS, 0);
    emit(STORE_EV_FLUSHED, -1, NULL); /* the after phase marks nothing */
    CHECK_EQ_STR(RUN("watch", "present"), "+OK\r\n");
    emit(STORE_EV_FLUSH_BEFORE, 1, NULL); /* another db */
    CHECK_EQ_INT(tc->flags & CLIENT_DIRTY_CAS, 0);
    emit(STORE_EV_FLUSHED, 0, NULL);
    CHECK_EQ_INT(tc->flags & CLIENT_DIRTY_CAS, 0);
    emit(STORE_EV_FLUSH_BEFORE, 0, NULL);
    CHECK(tc->flags & CLIENT_DIRTY_CAS);
    CHECK_EQ_STR(RUN("unwatch"), "+OK\r\n");
    CHECK_EQ_STR(RUN("del", "present"), ":1\r\n");
}

static void test_client_reply_off_and_skip(void) {
    CHECK_EQ_STR(RUN("client", "reply", "off"), "");
    CHECK_EQ_STR(RUN("ping"), "");
    CHECK_EQ_STR(RUN("client", "reply", "on"), "+OK\r\n");
    CHECK_EQ_STR(RUN("client", "reply", "skip"), "");
    CHECK_EQ_STR(RUN("ping"), "");
    CHECK_EQ_STR(RUN("ping"), "+PONG\r\n");
}

/* Redis: ON clears SKIP too, and the command after SKIP is ON itself: +OK comes. */
static void test_client_reply_on_after_skip_answers(void) {
    CHECK_EQ_STR(RUN("client", "reply", "skip"), "");
    CHECK_EQ_STR(RUN("client", "reply", "on"), "+OK\r\n");
    CHECK_EQ_STR(RUN("ping"), "+PONG\r\n");
    CHECK_EQ_STR(RUN("client", "reply", "off"), "");
    CHECK_EQ_STR(RUN("client", "reply", "skip"), "");
    CHECK_EQ_STR(RUN("client", "reply", "on"), "+OK\r\n");
    CHECK_EQ_STR(RUN("ping"), "+PONG\r\n");
}

static void test_numeric_ranges_in_redis_words(void) {
    CHECK_EQ_STR(RUN("select", "4294967296"),
                 "-ERR value is out of range, value must between -2147483648 and 2147483647\r\n");
    CHECK_EQ_STR(RUN("select", "9223372036854775808"),
                 "-ERR value is not an integer or out of range\r\n");
    CHECK_EQ_STR(RUN("hrandfield", "nokey", "-4611686018427387904", "withvalues"),
                 "-ERR value is out of range\r\n");
    CHECK_EQ_STR(RUN("hrandfield", "nokey", "-9223372036854775808"),
                 "-ERR value is out of range, value must between -9223372036854775807 and "
                 "9223372036854775807\r\n");
    CHECK_EQ_STR(RUN("setrange", "k", "9223372036854775807", "x"),
                 "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
    CHECK_EQ_STR(RUN("client", "list", "id", "-1"), "$0\r\n\r\n");
}

static void test_error_replies_are_counted(void) {
    long long before = server.stat_total_error_replies;
    RUN("nosuch");
    RUN("get");
    CHECK_EQ_INT(server.stat_total_error_replies, before + 2);
    struct kv_command *get = command_lookup("get", 3);
    CHECK(get->rejected_calls >= 1);
    const char *code;
    long long count;
    int found = 0;
    for (int i = 0; errorstat_iter(i, &code, &count); i++) {
        found |= strcmp(code, "ERR") == 0 && count >= 2;
    }
    CHECK(found);
}

static void test_command_getkeys(void) {
    CHECK_EQ_STR(RUN("command", "getkeys", "mset", "a", "1", "b", "2"),
                 "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    CHECK_EQ_STR(RUN("command", "getkeys", "ping"), "-ERR The command has no key arguments\r\n");
    CHECK_EQ_STR(RUN("command", "getkeys", "zzz"), "-ERR Invalid command specified\r\n");
    CHECK_EQ_STR(RUN("command", "getkeys", "get"),
                 "-ERR Invalid number of arguments specified for command\r\n");
}

static void test_slowlog_truncates_as_redis(void) {
    slowlog_reset();
    server.slowlog_log_slower_than = 0;
    const char *args[40];
    char big[200];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    args[0] = "ping";
    args[1] = big;
    run(2, args);
    CHECK_EQ_INT(slowlog_len(), 1);
    const struct slowlog_entry *e = slowlog_at(0);
    CHECK_EQ_INT(e->argc, 2);
    CHECK_EQ_INT(e->argv[1].len, 128 + strlen("... (71 more bytes)"));
    CHECK(memcmp(e->argv[1].p + 128, "... (71 more bytes)", 19) == 0);
    for (int i = 0; i < 40; i++) {
        args[i] = "x";
    }
    args[0] = "command";
    args[1] = "getkeys";
    args[2] = "mset";
    run(39, args);
    e = slowlog_at(0);
    CHECK_EQ_INT(e->argc, 32);
    CHECK_EQ_STR(e->argv[31].p, "... (8 more arguments)");
    CHECK_EQ_STR(RUN("auth", "secret-pw"), "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n");
    e = slowlog_at(0);
    CHECK_EQ_STR(e->argv[1].p, "(redacted)");
    server.slowlog_max_len = 2;
    CHECK_EQ_INT(slowlog_len(), 2);
    CHECK_EQ_STR(slowlog_at(0)->argv[0].p, "auth");
    server.slowlog_max_len = 128;
    server.slowlog_log_slower_than = -1;
    RUN("ping");
    CHECK_EQ_INT(slowlog_len(), 2);
    server.slowlog_log_slower_than = 10000;
    slowlog_reset();
    CHECK_EQ_INT(slowlog_len(), 0);
}

static void test_monitor_sees_commands_quoted(void) {
    struct client *m = client_create(-1);
    monitor_add(m);
    RUN("echo", "a\"b\n\x01");
    struct iovec iov[4];
    int k = resp_out_iov(&m->out, iov, 4);
    CHECK(k >= 1);
    char line[256];
    size_t n = iov[0].iov_len < sizeof(line) - 1 ? iov[0].iov_len : sizeof(line) - 1;
    memcpy(line, iov[0].iov_base, n);
    line[n] = '\0';
    CHECK(line[0] == '+');
    CHECK(strstr(line, "] \"echo\" \"a\\\"b\\n\\x01\"\r\n") != NULL);
    CHECK(strstr(line, " [0 ") != NULL);
    client_free(m);
    CHECK_EQ_INT(clients_monitors, 0);
}

int main(void) {
    config_init();
    server.loglevel = LL_WARNING;
    commands_init();
    ks_init();
    server_subscribe_events();
    tc = client_create(-1);
    TEST_RUN(test_lookup_is_case_insensitive);
    TEST_RUN(test_every_row_is_found);
    TEST_RUN(test_subcommands_resolve);
    TEST_RUN(test_errors_in_redis_words);
    TEST_RUN(test_unknown_command_args_are_truncated);
    TEST_RUN(test_connection_commands);
    TEST_RUN(test_hello3_switches_before_replying);
    TEST_RUN(test_auth_gates_commands);
    TEST_RUN(test_multi_queues_and_aborts);
    TEST_RUN(test_watch_touch_fails_exec);
    TEST_RUN(test_watch_before_flush_marks_existing_keys_only);
    TEST_RUN(test_client_reply_off_and_skip);
    TEST_RUN(test_client_reply_on_after_skip_answers);
    TEST_RUN(test_numeric_ranges_in_redis_words);
    TEST_RUN(test_error_replies_are_counted);
    TEST_RUN(test_command_getkeys);
    TEST_RUN(test_slowlog_truncates_as_redis);
    TEST_RUN(test_monitor_sees_commands_quoted);
    client_free(tc);
    ks_deinit();
    slowlog_reset();
    config_deinit();
    TEST_MAIN_END();
}
