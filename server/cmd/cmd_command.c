/* server/cmd/cmd_command.c: the COMMAND command (COUNT, LIST, INFO with Redis 7.0's
 * key specs, DOCS, GETKEYS, HELP), written from the table in commands.def. The
 * table, lookup and key positions (command_keys) live in commands.c; this file
 * only turns rows into Redis 7.0's reply shapes, so client libraries that parse
 * COMMAND work unchanged.
 */
#include <string.h>
#include <strings.h>

#include "server/cmd/cmd.h"

/* ------------------------------------------------------------------------------
 * COMMAND
 * ------------------------------------------------------------------------------ */
/* Redis's flags under Redis's names; kvd's own (CMD_RMW, CMD_NODE_LOCAL, ...) are
 * left out on purpose: client libraries parse this set. */
static void reply_flags(struct client *c, uint32_t flags) {
    static const struct {
        uint32_t bit;
        const char *name;
    } names[] = {
        {CMD_WRITE, "write"}, {CMD_READONLY, "readonly"}, {CMD_DENYOOM, "denyoom"},
        {CMD_ADMIN, "admin"}, {CMD_NOSCRIPT, "noscript"}, {CMD_LOADING, "loading"},
        {CMD_STALE, "stale"}, {CMD_SKIP_MONITOR, "skip_monitor"},
        {CMD_SKIP_SLOWLOG, "skip_slowlog"}, {CMD_FAST, "fast"}, {CMD_NO_AUTH, "no_auth"},
        {CMD_MAY_REPLICATE, "may_replicate"}, {CMD_NO_MULTI, "no_multi"},
        {CMD_ALLOW_BUSY, "allow_busy"}, {CMD_NO_ASYNC_LOADING, "no_async_loading"},
    };
    int n = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        n += (flags & names[i].bit) != 0;
    }
    reply_set(c, n);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (flags & names[i].bit) {
            reply_simple(c, names[i].name);
        }
    }
}

/* Writes the words of [p, end) (space-separated) as a set of simple strings. */
static void reply_words(struct client *c, const char *p, const char *end) {
    long long n = 0;
    for (const char *q = p; q < end; q++) {
        n += *q != ' ' && (q == p || q[-1] == ' ');
    }
    reply_set(c, n);
    while (p < end) {
        while (p < end && *p == ' ') {
            p++;
        }
        const char *w = p;
        while (p < end && *p != ' ') {
            p++;
        }
        if (p > w) {
            char word[32];
            size_t len = (size_t)(p - w) < sizeof(word) - 1 ? (size_t)(p - w) : sizeof(word) - 1;
            memcpy(word, w, len);
            word[len] = '\0';
            reply_simple(c, word);
        }
    }
}

/* COMMAND INFO's key specs from the keyspecs column (commands.def's header):
 * "FLAGS" is one spec over first..last by step; "FLAGS | FLAGS" is one spec per
 * key from first on; "; notes" after them belongs to the first spec. */
static void reply_key_specs(struct client *c, const struct kv_command *cmd) {
    const char *ks = cmd->key_specs;
    if (cmd->first_key <= 0 || ks == NULL) {
        reply_array(c, 0);
        return;
    }
    const char *semi = strchr(ks, ';');
    const char *end = semi ? semi : ks + strlen(ks);
    const char *notes = semi ? semi + 1 : NULL;
    while (notes && *notes == ' ') {
        notes++;
    }
    int nspecs = 1;
    for (const char *q = ks; q < end; q++) {
        nspecs += *q == '|';
    }
    reply_array(c, nspecs);
    const char *p = ks;
    for (int i = 0; i < nspecs; i++) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        const char *stop = bar ? bar : end;
        reply_map(c, (i == 0 && notes) ? 4 : 3);
        if (i == 0 && notes) {
            reply_bulk_cstr(c, "notes");
            reply_bulk_cstr(c, notes);
        }
        reply_bulk_cstr(c, "flags");
        reply_words(c, p, stop);
        reply_bulk_cstr(c, "begin_search");
        reply_map(c, 2);
        reply_bulk_cstr(c, "type");
        reply_bulk_cstr(c, "index");
        reply_bulk_cstr(c, "spec");
        reply_map(c, 1);
        reply_bulk_cstr(c, "index");
        reply_int(c, nspecs > 1 ? cmd->first_key + i : cmd->first_key);
        reply_bulk_cstr(c, "find_keys");
        reply_map(c, 2);
        reply_bulk_cstr(c, "type");
        reply_bulk_cstr(c, "range");
        reply_bulk_cstr(c, "spec");
        reply_map(c, 3);
        reply_bulk_cstr(c, "lastkey");
        if (nspecs > 1) {
            reply_int(c, 0);
        } else {
            reply_int(c, cmd->last_key < 0 ? cmd->last_key : cmd->last_key - cmd->first_key);
        }
        reply_bulk_cstr(c, "keystep");
        reply_int(c, nspecs > 1 ? 1 : cmd->key_step);
        reply_bulk_cstr(c, "limit");
        reply_int(c, 0);
        p = bar ? bar + 1 : end;
    }
}

static void reply_command_info(struct client *c, const struct kv_command *cmd) {
    size_t ns;
    const struct kv_command *subs = command_subcommands(cmd, &ns);
    /* a container (CONFIG, CLIENT, ...) has no keys of its own: its subcommands
     * do; its row's flags are the ones Redis reports for it */
    reply_array(c, 10);
    reply_bulk_cstr(c, cmd->name);
    reply_int(c, cmd->arity);
    reply_flags(c, cmd->flags);
    reply_int(c, subs ? 0 : cmd->first_key);
    reply_int(c, subs ? 0 : cmd->last_key);
    reply_int(c, subs ? 0 : cmd->key_step);
    const char *cats[8];
    int ncats;
    command_acl_categories(cmd, cats, 8, &ncats);
    reply_set(c, ncats);
    for (int i = 0; i < ncats; i++) {
        reply_simple(c, cats[i]);
    }
    reply_array(c, 0); /* tips */
    if (subs) {
        reply_array(c, 0);
    } else {
        reply_key_specs(c, cmd);
    }
    reply_array(c, (long long)ns);
    for (size_t i = 0; i < ns; i++) {
        reply_command_info(c, &subs[i]);
    }
}

static void reply_command_docs(struct client *c, const struct kv_command *cmd) {
    const char *since = cmd->since;
    size_t ns;
    const struct kv_command *subs = command_subcommands(cmd, &ns);
    reply_map(c, 2 + (since != NULL) + (subs != NULL));
    reply_bulk_cstr(c, "summary");
    reply_bulk_cstr(c, cmd->summary ? cmd->summary : "");
    if (since) {
        reply_bulk_cstr(c, "since");
        reply_bulk_cstr(c, since);
    }
    reply_bulk_cstr(c, "group");
    reply_bulk_cstr(c, cmd->group ? cmd->group : "server");
    if (subs) {
        reply_bulk_cstr(c, "subcommands");
        reply_map(c, (long long)ns);
        for (size_t i = 0; i < ns; i++) {
            reply_bulk_cstr(c, subs[i].name);
            reply_command_docs(c, &subs[i]);
        }
    }
}

/* "config|get" or "config" (then a subcommand in the next arg is not used). */
static const struct kv_command *lookup_full_name(const struct kv_slice *name) {
    const char *bar = memchr(name->p, '|', name->len);
    if (bar == NULL) {
        return command_lookup(name->p, name->len);
    }
    const struct kv_command *parent = command_lookup(name->p, (size_t)(bar - name->p));
    if (parent == NULL) {
        return NULL;
    }
    return command_lookup_sub(parent, bar + 1, name->len - (size_t)(bar - name->p) - 1);
}

static int list_filter_match(struct client *c, const struct kv_command *cmd) {
    if (c->argc == 2) {
        return 1;
    }
    if (arg_is(c, 3, "module")) {
        return 0;
    }
    if (arg_is(c, 3, "pattern")) {
        return kv_glob_match(c->argv[4].p, c->argv[4].len, cmd->name, strlen(cmd->name), 1);
    }
    /* aclcat */
    const char *cats[8];
    int ncats;
    command_acl_categories(cmd, cats, 8, &ncats);
    for (int i = 0; i < ncats; i++) {
        if (strlen(cats[i] + 1) == c->argv[4].len &&
            strncasecmp(cats[i] + 1, c->argv[4].p, c->argv[4].len) == 0) {
            return 1;
        }
    }
    return 0;
}

static void command_list(struct client *c) {
    if (c->argc != 2 &&
        !(c->argc == 5 && arg_is(c, 2, "filterby") &&
          (arg_is(c, 3, "module") || arg_is(c, 3, "aclcat") || arg_is(c, 3, "pattern")))) {
        reply_syntax_error(c);
        return;
    }
    size_t n;
    struct kv_command *tab = command_table(&n);
    long long count = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            reply_array(c, count);
        }
        for (size_t i = 0; i < n; i++) {
            if (list_filter_match(c, &tab[i])) {
                if (pass == 0) count++;
                else reply_bulk_cstr(c, tab[i].name);
            }
            size_t ns;
            const struct kv_command *subs = command_subcommands(&tab[i], &ns);
            for (size_t k = 0; k < ns; k++) {
                if (list_filter_match(c, &subs[k])) {
                    if (pass == 0) count++;
                    else reply_bulk_cstr(c, subs[k].name);
                }
            }
        }
    }
}

/* COMMAND GETKEYS <full-command>: the key positions come from the table
 * (command_keys), so the coordinator and this reply never disagree. */
static void command_getkeys(struct client *c) {
    int argc = c->argc - 2;
    const struct kv_slice *argv = c->argv + 2;
    const struct kv_command *cmd = command_lookup(argv[0].p, argv[0].len);
    size_t ns;
    if (cmd != NULL && argc >= 2 && command_subcommands(cmd, &ns) != NULL) {
        cmd = command_resolve(argc, argv);
    }
    if (cmd == NULL) {
        reply_error(c, "ERR Invalid command specified");
        return;
    }
    if (cmd->first_key <= 0 && (cmd->rules == NULL || cmd->rules->keys == NULL)) {
        reply_error(c, "ERR The command has no key arguments");
        return;
    }
    if ((cmd->arity > 0 && cmd->arity != argc) || argc < -cmd->arity) {
        reply_error(c, "ERR Invalid number of arguments specified for command");
        return;
    }
    int nkeys = command_keys(cmd, argc, argv, NULL, 0);
    if (nkeys < 0) {
        reply_error(c, "ERR Invalid arguments specified for command");
        return;
    }
    /* nkeys <= argc: the parser bounds argc */
    int *pos = kv_malloc(sizeof(int) * (size_t)(nkeys > 0 ? nkeys : 1));
    command_keys(cmd, argc, argv, pos, nkeys);
    reply_array(c, nkeys);
    for (int i = 0; i < nkeys; i++) {
        reply_bulk(c, argv[pos[i]].p, argv[pos[i]].len);
    }
    kv_free(pos);
}

static const char *const command_help[] = {
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    NULL,
};

void cmd_command(struct client *c) {
    size_t n;
    struct kv_command *tab = command_table(&n);
    if (c->argc == 1 || (arg_is(c, 1, "info") && c->argc == 2)) {
        reply_array(c, (long long)n);
        for (size_t i = 0; i < n; i++) {
            reply_command_info(c, &tab[i]);
        }
    } else if (arg_is(c, 1, "count")) {
        reply_int(c, (long long)n);
    } else if (arg_is(c, 1, "info")) {
        reply_array(c, c->argc - 2);
        for (int i = 2; i < c->argc; i++) {
            const struct kv_command *cmd = lookup_full_name(&c->argv[i]);
            if (cmd) {
                reply_command_info(c, cmd);
            } else {
                reply_null(c);
            }
        }
    } else if (arg_is(c, 1, "docs")) {
        if (c->argc == 2) {
            reply_map(c, (long long)n);
            for (size_t i = 0; i < n; i++) {
                reply_bulk_cstr(c, tab[i].name);
                reply_command_docs(c, &tab[i]);
            }
            return;
        }
        long long found = 0;
        for (int i = 2; i < c->argc; i++) {
            found += lookup_full_name(&c->argv[i]) != NULL;
        }
        reply_map(c, found);
        for (int i = 2; i < c->argc; i++) {
            const struct kv_command *cmd = lookup_full_name(&c->argv[i]);
            if (cmd) {
                reply_bulk_cstr(c, cmd->name);
                reply_command_docs(c, cmd);
            }
        }
    } else if (arg_is(c, 1, "list")) {
        command_list(c);
    } else if (arg_is(c, 1, "getkeys")) {
        command_getkeys(c);
    } else if (arg_is(c, 1, "help")) {
        reply_help(c, command_help);
    } else {
        reply_subcommand_error(c);
    }
}
