/* server/cmd/cmdtable_test.c: the command table of server/cmd/commands.def as the
 * cluster's coordinator reads it: every row classified (keyed read, keyed write,
 * keyspace fanout, node-local) consistently with its key positions, the
 * read-modify-write set exactly the documented one, per-invocation flags
 * (SET NX, EXPIRE GT, GETEX), key positions of every command with keys (and the
 * same keys from COMMAND GETKEYS), redaction, since, and COMMAND INFO showing only
 * Redis's flags. The commands run on a client with fd -1 whose output is read back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/net/net.h"
#include "server/test_client.h"
#include "tests/test.h"

static struct client *tc;

/* Splits a space-separated line into argv (at most 32 words, each borrowed from a
 * static copy of line); returns argc. */
static int split(const char *line, struct kv_slice *argv, int max) {
    static char buf[1024];
    snprintf(buf, sizeof(buf), "%s", line);
    int argc = 0;
    for (char *p = strtok(buf, " "); p != NULL && argc < max; p = strtok(NULL, " ")) {
        argv[argc].p = p;
        argv[argc].len = strlen(p);
        argc++;
    }
    return argc;
}

/* Runs argv through process_command and returns the reply bytes (static buffer). */
static const char *run_argv(int argc, const struct kv_slice *argv) {
    static char out[1 << 16];
    tc->argc = argc;
    tc->argv = (struct kv_slice *)argv;
    process_command(tc);
    tclient_take_output(tc, out, sizeof(out));
    tc->argc = 0;
    tc->argv = NULL;
    return out;
}

static const char *run_line(const char *line) {
    struct kv_slice argv[40];
    int argc = split(line, argv, 40);
    return run_argv(argc, argv);
}

/* Calls fn on every row that can run: top-level rows without subcommands (and
 * COMMAND, which runs alone too) and every subcommand. */
typedef void row_fn(const struct kv_command *cmd, void *arg);
static void each_runnable_row(row_fn *fn, void *arg) {
    size_t n;
    struct kv_command *tab = command_table(&n);
    for (size_t i = 0; i < n; i++) {
        size_t ns;
        const struct kv_command *subs = command_subcommands(&tab[i], &ns);
        if (subs == NULL || tab[i].arity == -1) {
            fn(&tab[i], arg);
        }
        for (size_t k = 0; k < ns; k++) {
            fn(&subs[k], arg);
        }
    }
}

/* Appends " name" to a string of names (for set comparisons). */
static void add_name(char *names, size_t cap, const char *name) {
    size_t len = strlen(names);
    snprintf(names + len, cap - len, "%s%s", len ? " " : "", name);
}

struct names {
    uint32_t bit;
    int with_rules;  /* 1: rows whose rules decide their flags */
    char s[4096];
};

static void collect_flag(const struct kv_command *cmd, void *arg) {
    struct names *nm = arg;
    int has_rules = cmd->rules != NULL && cmd->rules->flags != NULL;
    if (nm->with_rules ? has_rules : (cmd->flags & nm->bit) != 0) {
        add_name(nm->s, sizeof(nm->s), cmd->name);
    }
}

static const char *rows_with(uint32_t bit) {
    static struct names nm;
    memset(&nm, 0, sizeof(nm));
    nm.bit = bit;
    each_runnable_row(collect_flag, &nm);
    return nm.s;
}

/* ---- classification ---- */

struct class_check {
    int bad;
    char why[256];
};

/* The invariant of client/client.h's "Classes": exactly one class, consistent with the
 * key positions. Returns NULL when flags (for this row) are consistent. */
static const char *class_violation(const struct kv_command *cmd, uint32_t f) {
    int ro = (f & CMD_READONLY) != 0, wr = (f & CMD_WRITE) != 0;
    int fan = (f & CMD_KEYSPACE_FANOUT) != 0, local = (f & CMD_NODE_LOCAL) != 0;
    int keyed = cmd->first_key > 0;
    if (ro && wr) return "both readonly and write";
    if ((f & CMD_RMW) && !wr) return "RMW without write";
    if (fan + local > 1) return "fanout and node-local";
    if (fan) {
        if (keyed) return "fanout with key positions";
        if (!ro && !wr) return "fanout neither readonly nor write";
        return NULL;
    }
    if (local) {
        if (ro || wr) return "node-local but readonly or write";
        if (keyed && strcmp(cmd->name, "watch") != 0) return "node-local with keys (only WATCH may)";
        return NULL;
    }
    if (!keyed) return "no class: no keys, neither fanout nor node-local";
    if (!ro && !wr) return "keyed but neither readonly nor write";
    if (cmd->key_step < 1) return "key step < 1";
    if (cmd->last_key >= 0 && cmd->last_key < cmd->first_key) return "last key before first";
    return NULL;
}

static void check_class(const struct kv_command *cmd, void *arg) {
    struct class_check *cc = arg;
    const char *why = class_violation(cmd, cmd->flags);
    if (why != NULL && !cc->bad) {
        cc->bad = 1;
        snprintf(cc->why, sizeof(cc->why), "%s: %s", cmd->name, why);
    }
}

static void test_every_runnable_row_has_exactly_one_class(void) {
    struct class_check cc = {0};
    each_runnable_row(check_class, &cc);
    if (cc.bad) {
        TEST_FAIL_AT("%s", cc.why);
        return;
    }
    /* and the checker itself catches each kind of mistake */
    struct kv_command *get = command_lookup("get", 3);
    struct kv_command *scan = command_lookup("scan", 4);
    struct kv_command *ping = command_lookup("ping", 4);
    CHECK(class_violation(get, CMD_READONLY | CMD_WRITE) != NULL);
    CHECK(class_violation(get, CMD_FAST) != NULL);
    CHECK(class_violation(get, CMD_READONLY | CMD_NODE_LOCAL) != NULL);
    CHECK(class_violation(get, CMD_READONLY | CMD_RMW) != NULL);
    CHECK(class_violation(get, CMD_READONLY | CMD_KEYSPACE_FANOUT) != NULL);
    CHECK(class_violation(scan, CMD_READONLY) != NULL);
    CHECK(class_violation(ping, CMD_FAST) != NULL);
    CHECK(class_violation(ping, CMD_NODE_LOCAL | CMD_KEYSPACE_FANOUT) != NULL);
}

/* The keyspecs column agrees with the key positions and the class: present exactly
 * when there are keys, one spec per key when it lists several, RO for reads and a
 * write's specs never all RO. */
static const char *keyspecs_violation(const struct kv_command *cmd) {
    const char *ks = cmd->key_specs;
    if ((ks != NULL) != (cmd->first_key > 0)) {
        return "key specs without keys, or keys without key specs";
    }
    if (ks == NULL) {
        return NULL;
    }
    const char *semi = strchr(ks, ';');
    size_t len = semi ? (size_t)(semi - ks) : strlen(ks);
    int nspecs = 1, rw = 0;
    for (size_t i = 0; i < len; i++) {
        nspecs += ks[i] == '|';
        if (i + 2 <= len && (ks[i] == 'R' || ks[i] == 'O') && (i == 0 || ks[i - 1] == ' ')) {
            rw += strncmp(ks + i, "RW", 2) == 0 || strncmp(ks + i, "OW", 2) == 0 ||
                  strncmp(ks + i, "RM", 2) == 0;
        }
    }
    if (nspecs > 1 && (cmd->last_key - cmd->first_key + 1 != nspecs || cmd->key_step != 1)) {
        return "one spec per key, but not one key per spec";
    }
    if ((cmd->flags & CMD_READONLY) && rw) {
        return "a read with a writing key spec";
    }
    if ((cmd->flags & CMD_WRITE) && !rw) {
        return "a write whose key specs only read";
    }
    return NULL;
}

static void check_keyspecs(const struct kv_command *cmd, void *arg) {
    struct class_check *cc = arg;
    const char *why = keyspecs_violation(cmd);
    if (why != NULL && !cc->bad) {
        cc->bad = 1;
        snprintf(cc->why, sizeof(cc->why), "%s: %s", cmd->name, why);
    }
}

static void test_key_specs_agree_with_positions_and_class(void) {
    struct class_check cc = {0};
    each_runnable_row(check_keyspecs, &cc);
    if (cc.bad) {
        TEST_FAIL_AT("%s", cc.why);
        return;
    }
    /* and the checker catches each kind of mistake */
    struct kv_command bad = *command_lookup("get", 3);
    bad.key_specs = "RW update";
    CHECK(keyspecs_violation(&bad) != NULL);
    bad.key_specs = NULL;
    CHECK(keyspecs_violation(&bad) != NULL);
    bad = *command_lookup("del", 3);
    bad.key_specs = "RO access";
    CHECK(keyspecs_violation(&bad) != NULL);
    bad = *command_lookup("rename", 6);
    bad.last_key = 3;
    CHECK(keyspecs_violation(&bad) != NULL);
    bad = *command_lookup("ping", 4);
    bad.key_specs = "RO";
    CHECK(keyspecs_violation(&bad) != NULL);
    /* RENAME: one spec per key, as Redis reports it */
    const char *r = run_line("COMMAND INFO rename");
    CHECK(strstr(r, "*2\r\n*6\r\n$5\r\nflags\r\n*3\r\n+RW\r\n+access\r\n+delete\r\n") != NULL);
    CHECK(strstr(r, "$5\r\nindex\r\n:2\r\n") != NULL);
    CHECK(strstr(run_line("COMMAND INFO set"), "$5\r\nnotes\r\n") != NULL);
}

static void test_containers_are_classified_by_their_subcommands(void) {
    size_t n;
    struct kv_command *tab = command_table(&n);
    int containers = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ns;
        const struct kv_command *subs = command_subcommands(&tab[i], &ns);
        if (subs == NULL) {
            continue;
        }
        containers++;
        const uint32_t cls = CMD_READONLY | CMD_WRITE | CMD_KEYSPACE_FANOUT | CMD_NODE_LOCAL;
        uint32_t common = cls;
        for (size_t k = 0; k < ns; k++) {
            common &= subs[k].flags;
            CHECK(subs[k].parent == &tab[i]);
            CHECK(subs[k].proc == tab[i].proc);
            CHECK_EQ_STR(subs[k].group, tab[i].group);
            CHECK(strncmp(subs[k].name, tab[i].name, strlen(tab[i].name)) == 0);
            CHECK(subs[k].name[strlen(tab[i].name)] == '|');
        }
        /* a container's own class is the one its subcommands share, or none */
        CHECK_EQ_INT(tab[i].flags & cls, common);
        CHECK_EQ_INT(tab[i].first_key, 0);
        if (common == 0) {
            CHECK(tab[i].arity <= -2); /* never runs without a subcommand */
        }
    }
    CHECK_EQ_INT(containers, 7);
    CHECK_EQ_INT(command_lookup("object", 6)->flags & CMD_READONLY, 0);
}

/* The documented lists (client/client.h "Read-modify-write" and "Classes"). */
static void test_rmw_set_is_exactly_the_documented_list(void) {
    CHECK_EQ_STR(rows_with(CMD_RMW),
                 "setnx getset getdel getex msetnx append setrange incr incrby decr decrby "
                 "incrbyfloat rename renamenx copy hsetnx hincrby hincrbyfloat");
    struct names nm;
    memset(&nm, 0, sizeof(nm));
    nm.with_rules = 1;
    each_runnable_row(collect_flag, &nm);
    CHECK_EQ_STR(nm.s, "set getex expire pexpire expireat pexpireat");
}

static void test_fanout_and_node_local_sets(void) {
    CHECK_EQ_STR(rows_with(CMD_KEYSPACE_FANOUT), "dbsize flushdb flushall keys scan randomkey");
    CHECK_EQ_STR(rows_with(CMD_NODE_LOCAL),
                 "ping echo quit reset hello auth select client|id client|setname "
                 "client|getname client|setinfo client|list client|info client|kill "
                 "client|no-evict client|no-touch client|reply client|help info config|get "
                 "config|set config|resetstat config|rewrite config|help kvd|nodes kvd|ring "
                     "kvd|keynodes kvd|leave kvd|cleanup kvd|join kvd|removenode kvd|repair kvd|consistency kvd|help command command|count "
                 "command|docs command|getkeys command|info command|list command|help time "
                 "shutdown lastsave save bgsave bgrewriteaof slowlog|get slowlog|len "
                 "slowlog|reset slowlog|help debug monitor wait multi exec discard watch "
                 "unwatch memory|doctor memory|malloc-stats memory|purge memory|stats "
                 "memory|help object|help");
    CHECK_EQ_STR(rows_with(CMD_RUNS_QUEUED), "exec");
}

/* ---- per-invocation flags ---- */

static uint32_t flags_of(const char *line) {
    struct kv_slice argv[40];
    int argc = split(line, argv, 40);
    const struct kv_command *cmd = command_resolve(argc, argv);
    if (cmd == NULL) {
        return 0xffffffffu;
    }
    return command_effective_flags(cmd, argc, argv);
}

static int is_rmw(const char *line) {
    uint32_t f = flags_of(line);
    return f != 0xffffffffu && (f & CMD_RMW) != 0 && (f & CMD_WRITE) != 0;
}

static void test_set_is_rmw_only_with_nx_xx_or_get(void) {
    CHECK(!is_rmw("SET k v"));
    CHECK(flags_of("SET k v") & CMD_WRITE);
    CHECK(!is_rmw("SET k v EX 10"));
    CHECK(!is_rmw("set k v px 100 keepttl"));
    CHECK(!is_rmw("SET k nx"));  /* the value is not an option */
    CHECK(!is_rmw("SET nx xx")); /* nor the key */
    CHECK(is_rmw("SET k v NX"));
    CHECK(is_rmw("set k v nx"));
    CHECK(is_rmw("SET k v XX"));
    CHECK(is_rmw("SET k v GET"));
    CHECK(is_rmw("SET k v EX 10 Nx"));
    CHECK(is_rmw("SET k v GET PXAT 100000"));
    /* the row itself is a blind write: the invocation decides */
    CHECK_EQ_INT(command_lookup("set", 3)->flags & CMD_RMW, 0);
}

static void test_expire_family_is_rmw_only_with_a_condition(void) {
    const char *names[] = {"EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"};
    const char *conds[] = {"NX", "XX", "GT", "lt"};
    char line[64];
    for (int i = 0; i < 4; i++) {
        snprintf(line, sizeof(line), "%s k 100", names[i]);
        CHECK(!is_rmw(line));
        CHECK(flags_of(line) & CMD_WRITE);
        for (int j = 0; j < 4; j++) {
            snprintf(line, sizeof(line), "%s k 100 %s", names[i], conds[j]);
            CHECK(is_rmw(line));
        }
    }
    CHECK(!is_rmw("PERSIST k"));
}

static void test_getex_without_options_is_a_read(void) {
    uint32_t f = flags_of("GETEX k");
    CHECK(f & CMD_READONLY);
    CHECK_EQ_INT(f & (CMD_WRITE | CMD_RMW | CMD_DENYOOM), 0);
    CHECK(is_rmw("GETEX k EX 10"));
    CHECK(is_rmw("GETEX k PXAT 10"));
    CHECK(is_rmw("GETEX k PERSIST"));
    CHECK_EQ_INT(flags_of("GETEX k PERSIST") & CMD_READONLY, 0);
}

static void check_effective_class(const struct kv_command *cmd, void *arg) {
    struct class_check *cc = arg;
    /* every row, invoked with placeholder arguments, keeps one class */
    struct kv_slice argv[8];
    int argc = cmd->arity < 0 ? -cmd->arity : cmd->arity;
    const char *sub = cmd->parent ? strchr(cmd->name, '|') + 1 : NULL;
    argv[0].p = cmd->parent ? cmd->parent->name : cmd->name;
    argv[0].len = strlen(argv[0].p);
    for (int i = 1; i < argc && i < 8; i++) {
        argv[i].p = (i == 1 && sub) ? sub : "x";
        argv[i].len = strlen(argv[i].p);
    }
    const char *why = class_violation(cmd, command_effective_flags(cmd, argc, argv));
    if (why != NULL && !cc->bad) {
        cc->bad = 1;
        snprintf(cc->why, sizeof(cc->why), "%s (invoked): %s", cmd->name, why);
    }
}

static void test_effective_flags_keep_one_class(void) {
    struct class_check cc = {0};
    each_runnable_row(check_effective_class, &cc);
    if (cc.bad) {
        TEST_FAIL_AT("%s", cc.why);
        return;
    }
    CHECK(class_violation(command_lookup("getex", 5), flags_of("GETEX k")) == NULL);
    CHECK(class_violation(command_lookup("set", 3), flags_of("SET k v NX")) == NULL);
    /* rows without rules: the row's flags */
    CHECK_EQ_INT(flags_of("INCR k"), command_lookup("incr", 4)->flags);
    CHECK_EQ_INT(flags_of("HSET k f v"), command_lookup("hset", 4)->flags);
}

/* ---- key positions ---- */

/* A sample invocation of every command with keys, and the keys it names (the
 * arguments spelled K1, K2, ...). */
static const struct {
    const char *line;
    const char *keys;
} key_samples[] = {
    {"WATCH K1 K2 K3", "K1 K2 K3"},
    {"GET K1", "K1"},
    {"SET K1 v EX 10 NX", "K1"},
    {"SETNX K1 v", "K1"},
    {"SETEX K1 10 v", "K1"},
    {"PSETEX K1 10 v", "K1"},
    {"GETSET K1 v", "K1"},
    {"GETDEL K1", "K1"},
    {"GETEX K1 PERSIST", "K1"},
    {"MGET K1 K2 K3", "K1 K2 K3"},
    {"MSET K1 v K2 v K3 v", "K1 K2 K3"},
    {"MSETNX K1 v K2 v", "K1 K2"},
    {"APPEND K1 v", "K1"},
    {"STRLEN K1", "K1"},
    {"GETRANGE K1 0 -1", "K1"},
    {"SUBSTR K1 0 -1", "K1"},
    {"SETRANGE K1 3 v", "K1"},
    {"INCR K1", "K1"},
    {"INCRBY K1 5", "K1"},
    {"DECR K1", "K1"},
    {"DECRBY K1 5", "K1"},
    {"INCRBYFLOAT K1 1.5", "K1"},
    {"MEMORY USAGE K1 SAMPLES 5", "K1"},
    {"DEL K1 K2", "K1 K2"},
    {"UNLINK K1", "K1"},
    {"EXISTS K1 K2 K1", "K1 K2 K1"},
    {"TYPE K1", "K1"},
    {"RENAME K1 K2", "K1 K2"},
    {"RENAMENX K1 K2", "K1 K2"},
    {"TOUCH K1 K2", "K1 K2"},
    {"COPY K1 K2 DB 1 REPLACE", "K1 K2"},
    {"OBJECT ENCODING K1", "K1"},
    {"OBJECT FREQ K1", "K1"},
    {"OBJECT IDLETIME K1", "K1"},
    {"OBJECT REFCOUNT K1", "K1"},
    {"EXPIRE K1 10 GT", "K1"},
    {"PEXPIRE K1 10", "K1"},
    {"EXPIREAT K1 10", "K1"},
    {"PEXPIREAT K1 10", "K1"},
    {"TTL K1", "K1"},
    {"PTTL K1", "K1"},
    {"PERSIST K1", "K1"},
    {"EXPIRETIME K1", "K1"},
    {"PEXPIRETIME K1", "K1"},
    {"HSET K1 f v f2 v2", "K1"},
    {"HSETNX K1 f v", "K1"},
    {"HGET K1 f", "K1"},
    {"HMSET K1 f v", "K1"},
    {"HMGET K1 f g", "K1"},
    {"HGETALL K1", "K1"},
    {"HDEL K1 f g", "K1"},
    {"HEXISTS K1 f", "K1"},
    {"HLEN K1", "K1"},
    {"HSTRLEN K1 f", "K1"},
    {"HINCRBY K1 f 1", "K1"},
    {"HINCRBYFLOAT K1 f 1.5", "K1"},
    {"HKEYS K1", "K1"},
    {"HVALS K1", "K1"},
    {"HSCAN K1 0 MATCH K*", "K1"},
    {"HRANDFIELD K1 2 WITHVALUES", "K1"},
};
#define NKEY_SAMPLES (sizeof(key_samples) / sizeof(key_samples[0]))

/* The keys of argv at pos, space-separated. */
static void keys_text(const struct kv_slice *argv, const int *pos, int n, char *out, size_t cap) {
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%.*s", i ? " " : "", (int)argv[pos[i]].len,
                 argv[pos[i]].p);
    }
}

/* The keys of a COMMAND GETKEYS reply ("*2\r\n$2\r\nK1\r\n..."), space-separated. */
static int getkeys_text(const char *reply, char *out, size_t cap) {
    out[0] = '\0';
    int n;
    if (sscanf(reply, "*%d\r\n", &n) != 1) {
        return -1;
    }
    const char *p = strstr(reply, "\r\n") + 2;
    for (int i = 0; i < n; i++) {
        int len;
        if (sscanf(p, "$%d\r\n", &len) != 1) {
            return -1;
        }
        p = strstr(p, "\r\n") + 2;
        size_t ol = strlen(out);
        snprintf(out + ol, cap - ol, "%s%.*s", i ? " " : "", len, p);
        p += len + 2;
    }
    return n;
}

static void test_key_positions_of_every_command_with_keys(void) {
    char want_keys[256], got[256], viaget[256];
    for (size_t s = 0; s < NKEY_SAMPLES; s++) {
        struct kv_slice argv[40];
        int argc = split(key_samples[s].line, argv, 40);
        snprintf(want_keys, sizeof(want_keys), "%s", key_samples[s].keys);
        const struct kv_command *cmd = command_resolve(argc, argv);
        CHECK(cmd != NULL);
        int pos[16];
        int n = command_keys(cmd, argc, argv, pos, 16);
        CHECK(n > 0 && n <= 16);
        keys_text(argv, pos, n, got, sizeof(got));
        if (strcmp(got, want_keys) != 0) {
            TEST_FAIL_AT("%s: command_keys gives \"%s\", want \"%s\"", key_samples[s].line, got,
                         want_keys);
            return;
        }
        /* COMMAND GETKEYS <the same command> answers the same keys */
        char line[300];
        snprintf(line, sizeof(line), "COMMAND GETKEYS %s", key_samples[s].line);
        const char *reply = run_line(line);
        if (getkeys_text(reply, viaget, sizeof(viaget)) != n || strcmp(viaget, want_keys) != 0) {
            TEST_FAIL_AT("%s: COMMAND GETKEYS answered %s", key_samples[s].line, reply);
            return;
        }
    }
}

struct coverage {
    int missing;
    char name[64];
};

static void check_sampled(const struct kv_command *cmd, void *arg) {
    struct coverage *cv = arg;
    if (cmd->first_key <= 0 || cv->missing) {
        return;
    }
    for (size_t s = 0; s < NKEY_SAMPLES; s++) {
        struct kv_slice argv[40];
        int argc = split(key_samples[s].line, argv, 40);
        if (command_resolve(argc, argv) == cmd) {
            return;
        }
    }
    cv->missing = 1;
    snprintf(cv->name, sizeof(cv->name), "%s", cmd->name);
}

static void test_every_command_with_keys_has_a_sample(void) {
    struct coverage cv = {0};
    each_runnable_row(check_sampled, &cv);
    if (cv.missing) {
        TEST_FAIL_AT("%s has key positions but no sample in key_samples", cv.name);
    }
}

static void test_key_positions_edge_cases(void) {
    struct kv_slice argv[8];
    int pos[4];
    /* keyless rows: no keys */
    int argc = split("SCAN 0 MATCH *", argv, 8);
    CHECK_EQ_INT(command_keys(command_resolve(argc, argv), argc, argv, pos, 4), 0);
    argc = split("CONFIG GET maxmemory", argv, 8);
    CHECK_EQ_INT(command_keys(command_resolve(argc, argv), argc, argv, pos, 4), 0);
    /* more keys than room: the count, and only max written */
    argc = split("DEL a b c d e f", argv, 8);
    pos[2] = -7;
    CHECK_EQ_INT(command_keys(command_resolve(argc, argv), argc, argv, pos, 2), 6);
    CHECK_EQ_INT(pos[0], 1);
    CHECK_EQ_INT(pos[1], 2);
    CHECK_EQ_INT(pos[2], -7);
    /* too short for the row's positions */
    argc = split("RENAME a", argv, 8);
    CHECK_EQ_INT(command_keys(command_lookup("rename", 6), argc, argv, pos, 4), -1);
    /* GETKEYS errors stay Redis's */
    CHECK_EQ_STR(run_line("COMMAND GETKEYS OBJECT NOSUCH k"), "-ERR Invalid command specified\r\n");
    CHECK_EQ_STR(run_line("COMMAND GETKEYS OBJECT ENCODING"),
                 "-ERR Invalid number of arguments specified for command\r\n");
    CHECK_EQ_STR(run_line("COMMAND GETKEYS CONFIG GET x"),
                 "-ERR The command has no key arguments\r\n");
}

static void test_resolve_finds_the_row_that_runs(void) {
    struct kv_slice argv[4];
    int argc = split("Config GeT maxmemory", argv, 4);
    CHECK_EQ_STR(command_resolve(argc, argv)->name, "config|get");
    argc = split("config", argv, 4);
    CHECK(command_resolve(argc, argv) == NULL);
    argc = split("command", argv, 4);
    CHECK_EQ_STR(command_resolve(argc, argv)->name, "command");
    argc = split("object nosuch k", argv, 4);
    CHECK(command_resolve(argc, argv) == NULL);
    argc = split("nosuch a", argv, 4);
    CHECK(command_resolve(argc, argv) == NULL);
    argc = split("get k", argv, 4);
    CHECK(command_resolve(argc, argv) == command_lookup("get", 3));
    CHECK(command_resolve(0, argv) == NULL);
}

/* ---- redaction, since, COMMAND INFO ---- */

static void test_secret_arguments_come_from_the_rules(void) {
    struct kv_slice argv[10];
    int argc = split("AUTH user pw", argv, 10);
    const struct kv_command *auth = command_resolve(argc, argv);
    CHECK(!command_arg_redacted(auth, argc, argv, 0));
    CHECK(command_arg_redacted(auth, argc, argv, 1));
    CHECK(command_arg_redacted(auth, argc, argv, 2));
    argc = split("HELLO 3 AUTH user pw SETNAME auth", argv, 10);
    const struct kv_command *hello = command_resolve(argc, argv);
    int want[] = {0, 0, 0, 1, 1, 0, 0};
    for (int i = 0; i < argc; i++) {
        CHECK_EQ_INT(command_arg_redacted(hello, argc, argv, i), want[i]);
    }
    argc = split("SET auth pw", argv, 10);
    CHECK(!command_arg_redacted(command_resolve(argc, argv), argc, argv, 2));
    CHECK(!command_arg_redacted(NULL, argc, argv, 2));
}

static int valid_version(const char *v) {
    int a, b, c;
    char end;
    return v != NULL && sscanf(v, "%d.%d.%d%c", &a, &b, &c, &end) == 3 && a >= 1 && a <= 7;
}

struct since_check {
    int rows;
    char bad[64];
};

static void check_since(const struct kv_command *cmd, void *arg) {
    struct since_check *sc = arg;
    sc->rows++;
    if (!valid_version(cmd->since) && sc->bad[0] == '\0') {
        snprintf(sc->bad, sizeof(sc->bad), "%s", cmd->name);
    }
}

static void test_every_row_has_since_and_summary(void) {
    size_t n;
    struct kv_command *tab = command_table(&n);
    for (size_t i = 0; i < n; i++) {
        CHECK(valid_version(tab[i].since));
        CHECK(tab[i].summary != NULL && tab[i].summary[0] != '\0');
        CHECK(tab[i].group != NULL);
    }
    struct since_check sc = {0};
    each_runnable_row(check_since, &sc);
    CHECK(sc.rows > 100);
    if (sc.bad[0]) {
        TEST_FAIL_AT("%s has no valid since", sc.bad);
        return;
    }
    CHECK_EQ_STR(command_lookup("getex", 5)->since, "6.2.0");
    CHECK(strstr(run_line("COMMAND DOCS object|freq"), "$5\r\nsince\r\n$5\r\n4.0.0\r\n") != NULL);
}

/* Redis's flag names, as COMMAND INFO spells them. */
static int redis_flag_count(uint32_t f) {
    const uint32_t redis = CMD_WRITE | CMD_READONLY | CMD_DENYOOM | CMD_ADMIN | CMD_NOSCRIPT |
                           CMD_LOADING | CMD_STALE | CMD_SKIP_MONITOR | CMD_SKIP_SLOWLOG |
                           CMD_FAST | CMD_NO_AUTH | CMD_MAY_REPLICATE | CMD_NO_MULTI |
                           CMD_ALLOW_BUSY | CMD_NO_ASYNC_LOADING;
    return __builtin_popcount(f & redis);
}

struct info_check {
    char bad[256];
};

static void check_info_flags(const struct kv_command *cmd, void *arg) {
    struct info_check *ic = arg;
    if (ic->bad[0]) {
        return;
    }
    char line[128];
    snprintf(line, sizeof(line), "COMMAND INFO %s", cmd->name);
    const char *r = run_line(line);
    /* *1 *10 $len name :arity *nflags +flag... */
    char head[128];
    snprintf(head, sizeof(head), "*1\r\n*10\r\n$%zu\r\n%s\r\n:%d\r\n*", strlen(cmd->name),
             cmd->name, cmd->arity);
    int nflags = -1;
    if (strncmp(r, head, strlen(head)) != 0 || sscanf(r + strlen(head), "%d", &nflags) != 1 ||
        nflags != redis_flag_count(cmd->flags)) {
        snprintf(ic->bad, sizeof(ic->bad), "%s: %d flags in %.80s", cmd->name, nflags, r);
    }
}

static void test_command_info_shows_only_redis_flags(void) {
    struct info_check ic = {{0}};
    each_runnable_row(check_info_flags, &ic);
    size_t n;
    struct kv_command *tab = command_table(&n);
    for (size_t i = 0; i < n; i++) {
        check_info_flags(&tab[i], &ic); /* containers too */
    }
    if (ic.bad[0]) {
        TEST_FAIL_AT("%s", ic.bad);
        return;
    }
    /* as Redis 7.0 reports them */
    const char *r = run_line("COMMAND INFO incr");
    static const char incr_head[] =
        "*1\r\n*10\r\n$4\r\nincr\r\n:2\r\n*3\r\n+write\r\n+denyoom\r\n+fast\r\n"
        ":1\r\n:1\r\n:1\r\n*3\r\n+@write\r\n+@string\r\n+@fast\r\n";
    CHECK(strncmp(r, incr_head, strlen(incr_head)) == 0);
    r = run_line("COMMAND INFO scan");
    CHECK(strstr(r, "$4\r\nscan\r\n:-2\r\n*1\r\n+readonly\r\n:0\r\n:0\r\n:0\r\n"
                    "*3\r\n+@keyspace\r\n+@read\r\n+@slow\r\n") != NULL);
    CHECK(strstr(run_line("COMMAND INFO config"), "$6\r\nconfig\r\n:-2\r\n*0\r\n") != NULL);
    CHECK(strstr(run_line("COMMAND INFO command"),
                 "$7\r\ncommand\r\n:-1\r\n*2\r\n+loading\r\n+stale\r\n") != NULL);
    CHECK(strstr(run_line("COMMAND INFO save"),
                 "*4\r\n+admin\r\n+noscript\r\n+no_multi\r\n+no_async_loading\r\n") != NULL);
    r = run_line("COMMAND INFO exec");
    CHECK(strstr(r, "*4\r\n+noscript\r\n+loading\r\n+stale\r\n+skip_slowlog\r\n") != NULL);
}

int main(void) {
    config_init();
    server.loglevel = LL_WARNING;
    commands_init();
    ks_init();
    server_subscribe_events();
    tc = client_create(-1);
    TEST_RUN(test_every_runnable_row_has_exactly_one_class);
    TEST_RUN(test_containers_are_classified_by_their_subcommands);
    TEST_RUN(test_key_specs_agree_with_positions_and_class);
    TEST_RUN(test_rmw_set_is_exactly_the_documented_list);
    TEST_RUN(test_fanout_and_node_local_sets);
    TEST_RUN(test_set_is_rmw_only_with_nx_xx_or_get);
    TEST_RUN(test_expire_family_is_rmw_only_with_a_condition);
    TEST_RUN(test_getex_without_options_is_a_read);
    TEST_RUN(test_effective_flags_keep_one_class);
    TEST_RUN(test_key_positions_of_every_command_with_keys);
    TEST_RUN(test_every_command_with_keys_has_a_sample);
    TEST_RUN(test_key_positions_edge_cases);
    TEST_RUN(test_resolve_finds_the_row_that_runs);
    TEST_RUN(test_secret_arguments_come_from_the_rules);
    TEST_RUN(test_every_row_has_since_and_summary);
    TEST_RUN(test_command_info_shows_only_redis_flags);
    client_free(tc);
    ks_deinit();
    slowlog_reset();
    config_deinit();
    TEST_MAIN_END();
}
