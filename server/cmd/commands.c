/* server/cmd/commands.c: the command table built from server/cmd/commands.def (commands
 * and subcommands, and the per-invocation rules: effective flags, key positions,
 * redaction), lookup by name, and the one path every command takes:
 * process_command() (unknown command or subcommand, arity, the DEBUG gate, auth,
 * LOADING, MISCONF, OOM, MULTI queueing, the wait step) then call() (execute, time,
 * stats, slow log, MONITOR feed). Also the slow log and MONITOR.
 * Left to others: COMMAND's replies (cmd_command.c, from these tables), INFO's
 * text (cmd_info.c), SLOWLOG and MONITOR the commands (cmd_admin.c), waiting
 * (pipeline.c), held output and error statistics (server/client/).
 *
 * HOW LOOKUP WORKS
 *   An open-addressing table of 512 slots over the lower-cased name's FNV-1a hash,
 *   built once at start. Lookup hashes the argument folding case on the fly, probes
 *   linearly, and compares lengths then bytes case-insensitively: no allocation, no
 *   copy. With ~100 commands the table is under 20% full: probes are ~1.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/cmd/cmd.h"

/* ------------------------------------------------------------------------------
 * Rules: what a row's columns cannot say, read from one invocation's arguments
 * (the rules column of server/cmd/commands.def; contracts in client/client.h).
 * ------------------------------------------------------------------------------ */
/* Whether an argument from argv[from] on is one of the (lower-case) words. Option
 * values never collide: where a word could follow EX/PX/... as a value, the
 * command is a syntax error anyway, so the answer errs on the RMW side. */
static int args_have_word(int argc, const struct kv_slice *argv, int from,
                          const char *const *words) {
    for (int i = from; i < argc; i++) {
        for (int w = 0; words[w] != NULL; w++) {
            size_t len = strlen(words[w]);
            if (argv[i].len == len && strncasecmp(argv[i].p, words[w], len) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|EXAT|PXAT|KEEPTTL]: NX/XX decide on the
 * key's existence, GET hands back the value it replaces. */
static uint32_t set_flags(uint32_t flags, int argc, const struct kv_slice *argv) {
    static const char *const rmw[] = {"nx", "xx", "get", NULL};
    return args_have_word(argc, argv, 3, rmw) ? flags | CMD_RMW : flags;
}

/* EXPIRE key time [NX|XX|GT|LT] (and PEXPIRE, EXPIREAT, PEXPIREAT): the conditions
 * decide on the key's current expiry. */
static uint32_t expire_flags(uint32_t flags, int argc, const struct kv_slice *argv) {
    static const char *const rmw[] = {"nx", "xx", "gt", "lt", NULL};
    return args_have_word(argc, argv, 3, rmw) ? flags | CMD_RMW : flags;
}

/* GETEX key [EX|PX|EXAT|PXAT time|PERSIST]: with an option it changes the expiry
 * of the value it returns (RMW, the row's flags); without, it is GET. */
static uint32_t getex_flags(uint32_t flags, int argc, const struct kv_slice *argv) {
    if (argc > 2) {
        return flags;
    }
    return (flags & ~(uint32_t)(CMD_WRITE | CMD_RMW | CMD_DENYOOM)) | CMD_READONLY;
}

/* AUTH [username] password: every argument. */
static int auth_redacted(int argc, const struct kv_slice *argv, int i) {
    return i >= 1;
}

/* HELLO [protover [AUTH username password] [SETNAME name]]: the two arguments
 * after AUTH. */
static int hello_redacted(int argc, const struct kv_slice *argv, int i) {
    for (int j = 2; j < argc && j < i; j++) {
        if (argv[j].len == 4 && strncasecmp(argv[j].p, "auth", 4) == 0 &&
            (i == j + 1 || i == j + 2)) {
            return 1;
        }
    }
    return 0;
}

static const struct kv_command_rules set_rules = {.flags = set_flags};
static const struct kv_command_rules expire_rules = {.flags = expire_flags};
static const struct kv_command_rules getex_rules = {.flags = getex_flags};
static const struct kv_command_rules auth_rules = {.redacted = auth_redacted};
static const struct kv_command_rules hello_rules = {.redacted = hello_redacted};

/* ------------------------------------------------------------------------------
 * The tables: command_rows (one per CMD row, in file order) and subcommand_rows
 * (one per SUBCMD row; a container's rows follow each other, as in the file).
 * ------------------------------------------------------------------------------ */
enum command_index {
#define CMD(id, ...) CMDIX_##id,
#include "server/cmd/commands.def"
#undef CMD
    NCOMMANDS
};

static struct kv_command command_rows[NCOMMANDS] = {
#define CMD(id, name_, arity_, flags_, first, last, step, keyspecs_, rules_, since_, group_,  \
            summary_)                                                                     \
    {.name = name_, .proc = cmd_##id, .arity = arity_, .flags = (flags_),                 \
     .first_key = first, .last_key = last, .key_step = step, .key_specs = keyspecs_,      \
     .rules = rules_, .since = since_, .group = group_, .summary = summary_},
#include "server/cmd/commands.def"
#undef CMD
};

static struct kv_command subcommand_rows[] = {
#define CMD(...)
#define SUBCMD(parent_, name_, arity_, flags_, first, last, step, keyspecs_, rules_, since_, \
               summary_)                                                                  \
    {.name = #parent_ "|" name_, .proc = cmd_##parent_, .arity = arity_, .flags = (flags_), \
     .first_key = first, .last_key = last, .key_step = step, .key_specs = keyspecs_,       \
     .rules = rules_, .since = since_, .summary = summary_,                               \
     .parent = &command_rows[CMDIX_##parent_]},
#include "server/cmd/commands.def"
#undef SUBCMD
#undef CMD
};
#define NSUBCOMMANDS (sizeof(subcommand_rows) / sizeof(subcommand_rows[0]))

/* A container's subcommands: subcommand_rows[first .. first + n) (n 0: none). */
static struct {
    uint16_t first, n;
} sub_range[NCOMMANDS];

#define LOOKUP_SLOTS 512
static struct kv_command *lookup_slots[LOOKUP_SLOTS];
static uint8_t lookup_lens[LOOKUP_SLOTS];

static unsigned char lower_tab[256];

static inline uint32_t name_hash(const char *s, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= lower_tab[(uint8_t)s[i]];
        h *= 16777619u;
    }
    return h;
}

/* name is lower case already; s is the client's bytes */
static inline int name_eq(const char *name, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)name[i] != lower_tab[(uint8_t)s[i]]) {
            return 0;
        }
    }
    return 1;
}

/* client_hooks.forget: a client being freed leaves what dispatch keeps of it. */
static void forget_client(struct client *c) {
    if (c->flags & CLIENT_MONITOR) {
        monitor_remove(c);
    }
    client_wait_forget(c);
    kvd_peer_forget(c);
    unwatch_all(c);
    if (c->flags & CLIENT_MULTI || c->mstate) {
        multi_discard_state(c);
    }
}

void commands_init(void) {
    client_hooks.forget = forget_client;
    for (int i = 0; i < 256; i++) {
        lower_tab[i] = (unsigned char)tolower(i);
    }
    memset(lookup_slots, 0, sizeof(lookup_slots));
    for (size_t i = 0; i < NCOMMANDS; i++) {
        struct kv_command *cmd = &command_rows[i];
        size_t len = strlen(cmd->name);
        uint32_t slot = name_hash(cmd->name, len) & (LOOKUP_SLOTS - 1);
        while (lookup_slots[slot] != NULL) {
            slot = (slot + 1) & (LOOKUP_SLOTS - 1);
        }
        lookup_slots[slot] = cmd;
        lookup_lens[slot] = (uint8_t)len;
        sub_range[i].first = sub_range[i].n = 0;
    }
    for (size_t k = 0; k < NSUBCOMMANDS; k++) {
        struct kv_command *sub = &subcommand_rows[k];
        size_t i = (size_t)(sub->parent - command_rows);
        if (sub_range[i].n == 0) {
            sub_range[i].first = (uint16_t)k;
        } else if (sub_range[i].first + sub_range[i].n != k) {
            /* a programming error in commands.def: caught by every test run */
            fprintf(stderr, "commands.def: the SUBCMD rows of %s are not together\n",
                    sub->parent->name);
            abort();
        }
        sub_range[i].n++;
        sub->group = sub->parent->group;
    }
}

struct kv_command *command_lookup(const char *name, size_t len) {
    if (len == 0 || len > 255) {
        return NULL;
    }
    uint32_t slot = name_hash(name, len) & (LOOKUP_SLOTS - 1);
    for (;;) {
        struct kv_command *cmd = lookup_slots[slot];
        if (cmd == NULL) {
            return NULL;
        }
        if (lookup_lens[slot] == len && name_eq(cmd->name, name, len)) {
            return cmd;
        }
        slot = (slot + 1) & (LOOKUP_SLOTS - 1);
    }
}

struct kv_command *command_table(size_t *count) {
    *count = NCOMMANDS;
    return command_rows;
}

const struct kv_command *command_subcommands(const struct kv_command *cmd, size_t *count) {
    if (cmd->parent != NULL) { /* a subcommand has none */
        *count = 0;
        return NULL;
    }
    size_t i = (size_t)(cmd - command_rows); /* every other row is in command_rows */
    if (i >= NCOMMANDS || sub_range[i].n == 0) {
        *count = 0;
        return NULL;
    }
    *count = sub_range[i].n;
    return &subcommand_rows[sub_range[i].first];
}

const struct kv_command *command_lookup_sub(const struct kv_command *parent, const char *name,
                                            size_t len) {
    size_t n;
    const struct kv_command *rows = command_subcommands(parent, &n);
    size_t plen = strlen(parent->name) + 1;
    for (size_t i = 0; i < n; i++) {
        const char *sub = rows[i].name + plen;
        if (strlen(sub) == len && strncasecmp(sub, name, len) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

const struct kv_command *command_resolve(int argc, const struct kv_slice *argv) {
    if (argc < 1) {
        return NULL;
    }
    const struct kv_command *cmd = command_lookup(argv[0].p, argv[0].len);
    size_t nsub;
    if (cmd == NULL || command_subcommands(cmd, &nsub) == NULL) {
        return cmd;
    }
    if (argc < 2) {
        /* COMMAND alone runs; the other containers need a subcommand */
        return cmd->arity == -1 ? cmd : NULL;
    }
    return command_lookup_sub(cmd, argv[1].p, argv[1].len);
}

uint32_t command_effective_flags(const struct kv_command *cmd, int argc,
                                 const struct kv_slice *argv) {
    if (cmd->rules != NULL && cmd->rules->flags != NULL) {
        return cmd->rules->flags(cmd->flags, argc, argv);
    }
    return cmd->flags;
}

int command_keys(const struct kv_command *cmd, int argc, const struct kv_slice *argv, int *pos,
                 int max) {
    if (cmd->rules != NULL && cmd->rules->keys != NULL) {
        return cmd->rules->keys(argc, argv, pos, max);
    }
    if (cmd->first_key <= 0) {
        return 0;
    }
    int last = cmd->last_key < 0 ? argc + cmd->last_key : cmd->last_key;
    int step = cmd->key_step > 0 ? cmd->key_step : 1;
    if (last >= argc || cmd->first_key >= argc) {
        return -1;
    }
    int n = 0;
    for (int i = cmd->first_key; i <= last; i += step) {
        if (n < max) {
            pos[n] = i;
        }
        n++;
    }
    return n;
}

int command_arg_redacted(const struct kv_command *cmd, int argc, const struct kv_slice *argv,
                         int i) {
    if (i == 0 || cmd == NULL || cmd->rules == NULL || cmd->rules->redacted == NULL) {
        return 0;
    }
    return cmd->rules->redacted(argc, argv, i);
}

void commands_reset_stats(void) {
    for (size_t i = 0; i < NCOMMANDS; i++) {
        struct kv_command *cmd = &command_rows[i];
        cmd->calls = cmd->usec = cmd->rejected_calls = cmd->failed_calls = 0;
    }
    for (size_t k = 0; k < NSUBCOMMANDS; k++) {
        struct kv_command *cmd = &subcommand_rows[k];
        cmd->calls = cmd->usec = cmd->rejected_calls = cmd->failed_calls = 0;
    }
    errorstat_reset();
}

/* ACL categories as Redis reports them (in Redis's category bit order: keyspace,
 * read, write, hash, string, admin, fast, slow, dangerous, connection,
 * transaction), derived from flags and group, plus the CMD_ACL_* flags for the
 * ones Redis sets by hand. A container reports @slow (and CMD_ACL_*) only. */
const char *command_acl_categories(const struct kv_command *cmd, const char **out, int max,
                                   int *n) {
    int k = 0;
#define ADD(s)                                                                   \
    do {                                                                         \
        if (k < max) out[k++] = (s);                                             \
    } while (0)
    uint32_t f = cmd->flags;
    size_t nsub;
    if (command_subcommands(cmd, &nsub) != NULL) {
        ADD("@slow");
        if (f & CMD_ACL_CONNECTION) ADD("@connection");
        *n = k;
        return NULL;
    }
    const char *g = cmd->group ? cmd->group : "";
    if ((strcmp(g, "generic") == 0 && cmd->first_key > 0) ||
        (f & (CMD_KEYSPACE_FANOUT | CMD_ACL_KEYSPACE))) {
        ADD("@keyspace");
    }
    if (f & CMD_READONLY) ADD("@read");
    if (f & CMD_WRITE) ADD("@write");
    if (strcmp(g, "hash") == 0) ADD("@hash");
    if (strcmp(g, "string") == 0) ADD("@string");
    if (f & (CMD_ADMIN | CMD_ACL_ADMIN)) ADD("@admin");
    ADD((f & CMD_FAST) ? "@fast" : "@slow");
    if (f & (CMD_ADMIN | CMD_ACL_DANGEROUS)) ADD("@dangerous");
    if (strcmp(g, "connection") == 0 || (f & CMD_ACL_CONNECTION)) ADD("@connection");
    if (strcmp(g, "transactions") == 0) ADD("@transaction");
#undef ADD
    *n = k;
    return NULL;
}

/* ------------------------------------------------------------------------------
 * Slow log: a list of at most server.slowlog_max_len entries, newest first.
 * ------------------------------------------------------------------------------ */
#define SLOWLOG_MAX_ARGC 32
#define SLOWLOG_MAX_STRING 128
struct slow_node {
    struct slow_node *next, *prev;
    struct slowlog_entry e;
};
static struct slow_node *slow_head, *slow_tail; /* newest, oldest */
static long long slow_len, slow_next_id;

static void slow_node_free(struct slow_node *n) {
    for (int i = 0; i < n->e.argc; i++) {
        kv_free((void *)n->e.argv[i].p);
    }
    kv_free(n->e.argv);
    kv_free(n->e.name);
    kv_free(n);
}

static void slowlog_trim(void) {
    while (slow_len > server.slowlog_max_len && slow_tail) {
        struct slow_node *old = slow_tail;
        slow_tail = old->prev;
        if (slow_tail) {
            slow_tail->next = NULL;
        } else {
            slow_head = NULL;
        }
        slow_node_free(old);
        slow_len--;
    }
}

static struct kv_slice slow_copy(const char *p, size_t len) {
    struct kv_slice s;
    s.p = kv_strndup(p, len);
    s.len = len;
    return s;
}

static void slowlog_push(struct client *c, long long duration) {
    if (server.slowlog_max_len <= 0) {
        return;
    }
    struct slow_node *n = kv_calloc(1, sizeof(*n));
    struct slowlog_entry *e = &n->e;
    int argc = c->argc > SLOWLOG_MAX_ARGC ? SLOWLOG_MAX_ARGC : c->argc;
    e->id = slow_next_id++;
    e->time = server.ustime / 1000000;
    e->duration = duration;
    e->argc = argc;
    e->argv = kv_malloc(sizeof(*e->argv) * (size_t)argc);
    for (int i = 0; i < argc; i++) {
        char buf[SLOWLOG_MAX_STRING + 64];
        if (argc != c->argc && i == argc - 1) {
            int len = snprintf(buf, sizeof(buf), "... (%d more arguments)", c->argc - argc + 1);
            e->argv[i] = slow_copy(buf, (size_t)len);
        } else if (command_arg_redacted(c->cmd, c->argc, c->argv, i)) {
            e->argv[i] = slow_copy("(redacted)", 10);
        } else if (c->argv[i].len > SLOWLOG_MAX_STRING) {
            memcpy(buf, c->argv[i].p, SLOWLOG_MAX_STRING);
            int len = snprintf(buf + SLOWLOG_MAX_STRING, sizeof(buf) - SLOWLOG_MAX_STRING,
                               "... (%zu more bytes)", c->argv[i].len - SLOWLOG_MAX_STRING);
            e->argv[i] = slow_copy(buf, SLOWLOG_MAX_STRING + (size_t)len);
        } else {
            e->argv[i] = slow_copy(c->argv[i].p, c->argv[i].len);
        }
    }
    snprintf(e->addr, sizeof(e->addr), "%s", c->addr);
    e->name = kv_strndup(c->name ? c->name : "", c->name ? strlen(c->name) : 0);
    n->next = slow_head;
    if (slow_head) {
        slow_head->prev = n;
    } else {
        slow_tail = n;
    }
    slow_head = n;
    slow_len++;
    slowlog_trim();
}

int slowlog_len(void) {
    slowlog_trim(); /* slowlog-max-len may have been lowered */
    return (int)slow_len;
}

const struct slowlog_entry *slowlog_at(int i) {
    struct slow_node *n = slow_head;
    while (n && i-- > 0) {
        n = n->next;
    }
    return n ? &n->e : NULL;
}

const struct slowlog_entry *slowlog_next(const struct slowlog_entry *e) {
    if (e == NULL) {
        return slow_head ? &slow_head->e : NULL;
    }
    const struct slow_node *n =
        (const struct slow_node *)((const char *)e - offsetof(struct slow_node, e));
    return n->next ? &n->next->e : NULL;
}

void slowlog_reset(void) {
    while (slow_head) {
        struct slow_node *next = slow_head->next;
        slow_node_free(slow_head);
        slow_head = next;
    }
    slow_tail = NULL;
    slow_len = 0;
}

/* ------------------------------------------------------------------------------
 * MONITOR
 * ------------------------------------------------------------------------------ */
static struct client **monitors;
static int nmonitors, monitors_cap;
int clients_monitors;

void monitor_add(struct client *c) {
    if (nmonitors == monitors_cap) {
        monitors_cap = monitors_cap ? monitors_cap * 2 : 4;
        monitors = kv_realloc(monitors, sizeof(*monitors) * (size_t)monitors_cap);
    }
    monitors[nmonitors++] = c;
    c->flags |= CLIENT_MONITOR;
    clients_monitors = nmonitors;
}

void monitor_remove(struct client *c) {
    for (int i = 0; i < nmonitors; i++) {
        if (monitors[i] == c) {
            monitors[i] = monitors[--nmonitors];
            break;
        }
    }
    c->flags &= ~CLIENT_MONITOR;
    clients_monitors = nmonitors;
    if (nmonitors == 0) {
        kv_free(monitors);
        monitors = NULL;
        monitors_cap = 0;
    }
}

/* "+1339518083.107412 [0 127.0.0.1:60866] "keys" "*"" to every monitor. */
static void monitor_feed(struct client *c, int argc, const struct kv_slice *argv) {
    size_t cap = 128;
    for (int i = 0; i < argc; i++) {
        cap += argv[i].len * 4 + 3;
    }
    char *line = kv_malloc(cap);
    long long us = server.ustime;
    size_t n = (size_t)snprintf(line, cap, "%lld.%06lld [%d %s]", us / 1000000, us % 1000000,
                                c->db_id, c->fd < 0 ? "lua" : c->addr);
    for (int i = 0; i < argc; i++) {
        line[n++] = ' ';
        if (command_arg_redacted(c->cmd, argc, argv, i)) {
            n += kv_repr(line + n, cap - n, "(redacted)", 10);
        } else {
            n += kv_repr(line + n, cap - n, argv[i].p, argv[i].len);
        }
    }
    for (int i = 0; i < nmonitors; i++) {
        struct client *m = monitors[i];
        if (m->flags & CLIENT_CLOSE_ASAP) {
            continue;
        }
        client_queue_write(m);
        resp_write_simple(&m->out, line, n);
        client_check_output_limits(m);
    }
    kv_free(line);
}

/* ------------------------------------------------------------------------------
 * The command path
 * ------------------------------------------------------------------------------ */
/* HOW CALL() READS THE CLOCK ONCE PER COMMAND
 *   Each command needs "now" (server.ustime, for TTLs) at its start and its
 *   duration (commandstats, slow log). Within one batch of pipelined commands the
 *   clock read that ends command i is also the start of command i+1 (only the
 *   parsing of i+1 lies between them): N commands cost N+1 reads, not 2N. The
 *   reuse stops at the end of each batch (call_batch_end), so a command never
 *   starts with a stale time. */
static int call_depth;
static long long clock_last; /* last clock read, us */
static int clock_fresh;      /* clock_last may serve as "now" */

void call_batch_end(void) {
    clock_fresh = 0;
}

void call(struct client *c, const struct kv_command *cmd) {
    struct kv_command *mcmd = (struct kv_command *)cmd;
    long long start = clock_fresh ? clock_last : kv_ustime();
    if (call_depth == 0) {
        /* inside EXEC every command sees the time EXEC started at, as Redis */
        server.ustime = start;
        server.mstime = start / 1000;
    }
    long long errs = server.stat_total_error_replies;
    c->cmd = cmd;
    c->lastcmd = cmd;
    size_t out0 = resp_out_pending(&c->out);
    int top = call_depth == 0;
    if (top) {
        client_call_begin(c); /* records the reply's span if it gets held */
        coord_command_begin();
    }
    call_depth++;
    cmd->proc(c);
    call_depth--;
    if (top) {
        client_call_end(c, out0);
        if (persist_on()) {
            persist_after_call();
        }
    }
    clock_last = kv_ustime();
    clock_fresh = 1;
    long long duration = clock_last - start;
    if (duration < 0) {
        duration = 0;
    }
    mcmd->calls++;
    mcmd->usec += duration;
    if (server.stat_total_error_replies != errs) {
        mcmd->failed_calls++;
    }
    server.stat_numcommands++;
    if (server.slowlog_log_slower_than >= 0 && duration >= server.slowlog_log_slower_than &&
        !(cmd->flags & CMD_SKIP_SLOWLOG)) {
        slowlog_push(c, duration);
    }
    if (clients_monitors && !(cmd->flags & (CMD_SKIP_MONITOR | CMD_ADMIN))) {
        monitor_feed(c, c->argc, c->argv);
    }
}

static void reject(struct client *c, struct kv_command *cmd, const char *msg) {
    if (cmd != NULL) {
        cmd->rejected_calls++;
    }
    if (c->flags & CLIENT_MULTI) {
        c->flags |= CLIENT_DIRTY_EXEC;
    }
    reply_error(c, msg);
}

static __attribute__((noinline)) void reject_unknown(struct client *c) {
    /* Redis 7.0: "unknown command 'foo', with args beginning with: 'a' 'b' " (the
     * args list truncated near 128 bytes, each arg cut to what is left). */
    char args[300];
    size_t n = 0;
    args[0] = '\0';
    for (int i = 1; i < c->argc && n < 128; i++) {
        int room = 128 - (int)n;
        int len = (int)c->argv[i].len < room ? (int)c->argv[i].len : room;
        n += (size_t)snprintf(args + n, sizeof(args) - n, "'%.*s' ", len, c->argv[i].p);
    }
    int nl = c->argv[0].len > 128 ? 128 : (int)c->argv[0].len;
    char msg[512];
    snprintf(msg, sizeof(msg), "ERR unknown command '%.*s', with args beginning with: %s", nl,
             c->argv[0].p, args);
    reject(c, NULL, msg);
}

static int auth_required(const struct client *c) {
    return !c->authenticated && server.requirepass != NULL && server.requirepass[0] != '\0';
}

static int is_local_client(const struct client *c) {
    return strncmp(c->addr, "127.", 4) == 0 || strncmp(c->addr, "[::1]", 5) == 0 ||
           strncmp(c->addr, "[::ffff:127.", 12) == 0 || c->fd < 0;
}

/* The rejections with a formatted message, kept out of line: their buffers would
 * stop the compiler from inlining the command path into process_command. */
static __attribute__((noinline)) void reject_arity(struct client *c,
                                                   const struct kv_command *cmd) {
    char msg[128];
    snprintf(msg, sizeof(msg), "ERR wrong number of arguments for '%s' command", cmd->name);
    reject(c, (struct kv_command *)cmd, msg);
}

static __attribute__((noinline)) void reject_unknown_sub(struct client *c,
                                                         const struct kv_command *cmd) {
    char up[64];
    size_t k;
    for (k = 0; cmd->name[k] && k < sizeof(up) - 1; k++) {
        up[k] = (char)toupper((unsigned char)cmd->name[k]);
    }
    up[k] = '\0';
    char msg[256];
    int sl = c->argv[1].len > 128 ? 128 : (int)c->argv[1].len;
    snprintf(msg, sizeof(msg), "ERR unknown subcommand '%.*s'. Try %s HELP.", sl, c->argv[1].p,
             up);
    reject(c, NULL, msg);
}

static __attribute__((noinline)) void reject_misconf(struct client *c,
                                                     const struct kv_command *run,
                                                     const char *werr) {
    char msg[512];
    snprintf(msg, sizeof(msg), "MISCONF Errors writing to the AOF file: %s", werr);
    reject(c, (struct kv_command *)run, msg);
}

/* Sets c->cmd to argv[0]'s row, then to its subcommand's, checking arity on
 * the way. Returns the row that runs, or NULL after rejecting the command
 * (unknown command or subcommand, wrong number of arguments). */
static const struct kv_command *resolve_or_reject(struct client *c) {
    struct kv_command *cmd = command_lookup(c->argv[0].p, c->argv[0].len);
    if (cmd == NULL) {
        reject_unknown(c);
        return NULL;
    }
    c->cmd = cmd;
    if ((cmd->arity > 0 && cmd->arity != c->argc) || c->argc < -cmd->arity) {
        reject_arity(c, cmd);
        return NULL;
    }
    const struct kv_command *run = cmd;
    size_t nsub;
    if (c->argc >= 2 && command_subcommands(cmd, &nsub) != NULL) {
        const struct kv_command *sub = command_lookup_sub(cmd, c->argv[1].p, c->argv[1].len);
        if (sub == NULL) {
            reject_unknown_sub(c, cmd);
            return NULL;
        }
        c->cmd = sub;
        if ((sub->arity > 0 && sub->arity != c->argc) || c->argc < -sub->arity) {
            reject_arity(c, sub);
            return NULL;
        }
        run = sub;
    }
    return run;
}

/* The checks between a resolved command and its run, in Redis's order: DEBUG
 * gate, NOAUTH, LOADING, MISCONF (a sticky write error), OOM, and what MULTI
 * forbids. Returns 1 after rejecting the command, else 0. */
static int refused_or_reject(struct client *c, const struct kv_command *run) {
    if ((run->flags & CMD_PROTECTED) && server.enable_debug_command != 1 &&
        !(server.enable_debug_command == 2 && is_local_client(c))) {
        reject(c, (struct kv_command *)run,
               "ERR DEBUG command not allowed. If the enable-debug-command option is set to "
               "\"local\", you can run it from a local connection, otherwise you need to set "
               "this option in the configuration file, and then restart the server.");
        return 1;
    }
    if (auth_required(c) && !(run->flags & CMD_NO_AUTH)) {
        reject(c, (struct kv_command *)run, "NOAUTH Authentication required.");
        return 1;
    }
    if (server.loading && !(run->flags & CMD_LOADING)) {
        reject(c, (struct kv_command *)run, "LOADING Redis is loading the dataset in memory");
        return 1;
    }
    if (persist_on()) {
        const char *werr = persist_write_error();
        int writes = (run->flags & CMD_WRITE) ||
                     ((run->flags & CMD_RUNS_QUEUED) && (c->flags & CLIENT_MULTI) &&
                      (c->multi_flags & CMD_WRITE));
        if (werr && writes) {
            reject_misconf(c, run, werr);
            return 1;
        }
    }
    if (server.maxmemory > 0 || persist_on()) {
        int oom = ks_evict_if_needed() == -1;
        int denyoom = (run->flags & CMD_DENYOOM) ||
                      ((run->flags & CMD_RUNS_QUEUED) && (c->flags & CLIENT_MULTI) &&
                       c->multi_flags & CMD_DENYOOM);
        if (oom && denyoom) {
            reject(c, (struct kv_command *)run,
                   "OOM command not allowed when used memory > 'maxmemory'.");
            return 1;
        }
    }
    if ((c->flags & CLIENT_MULTI) && (run->flags & CMD_NO_MULTI)) {
        reject(c, (struct kv_command *)run, "ERR Command not allowed inside a transaction");
        return 1;
    }
    return 0;
}

/* 1 when argv[0] is KVD.PEER (any case). */
static int is_peer_verb(const struct client *c) {
    return c->argc > 0 && c->argv[0].len == 8 && strncasecmp(c->argv[0].p, "kvd.peer", 8) == 0;
}

void process_command(struct client *c) {
    if (server.cluster) { /* NULL unless cluster-enabled: one predictable branch */
        if (is_peer_verb(c)) {
            kvd_peer_command(c);
            return;
        }
        if (c->peer_probation) { /* not a peer after all: the refusal it was spared */
            reply_raw(c, c->peer_probation, strlen(c->peer_probation));
            c->flags |= CLIENT_CLOSE_AFTER_REPLY;
            return;
        }
    }
    const struct kv_command *run = resolve_or_reject(c);
    if (run == NULL || refused_or_reject(c, run)) {
        return;
    }
    if (server.cluster && coordinate_gate(c, run)) {
        return; /* cluster mode: not supported yet (coordinate.c) */
    }
    if ((c->flags & CLIENT_MULTI) && !(run->flags & CMD_MULTI_CTL)) {
        multi_queue(c);
        return;
    }
    if (server.cluster && coordinate_command(c, run)) {
        return; /* the cluster's four steps (coordinate.c) */
    }
    if (client_wait_before_call(c, run)) {
        return; /* suspended: runs later from the ready list (pipeline.c) */
    }
    call(c, run);
}
