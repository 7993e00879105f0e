/* server/cmd/cmd_config.c: the CONFIG command (GET, SET, RESETSTAT, REWRITE, HELP).
 * The table, parsing, bounds and the rewrite live in the process's config.c
 * (server/net/, above this folder), reached through config_ops, which config_init
 * registers; the statistics that RESETSTAT clears are INFO's (cmd_info.c). This
 * file only shapes replies.
 */
#include <string.h>

#include "server/cmd/cmd.h"

struct config_ops config_ops;

/* ------------------------------------------------------------------------------
 * CONFIG
 * ------------------------------------------------------------------------------ */
static const char *const config_help[] = {
    "GET <pattern>",
    "    Return parameters matching the glob-like <pattern> and their values.",
    "SET <directive> <value>",
    "    Set the configuration <directive> to <value>.",
    "RESETSTAT",
    "    Reset statistics reported by the INFO command.",
    "REWRITE",
    "    Rewrite the configuration file.",
    NULL,
};

struct config_pairs {
    int n, cap;
    const char **names;
    char **values;
};

static void collect_pair(void *ctx, const char *name, const char *value) {
    struct config_pairs *p = ctx;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 16;
        p->names = kv_realloc(p->names, sizeof(*p->names) * (size_t)p->cap);
        p->values = kv_realloc(p->values, sizeof(*p->values) * (size_t)p->cap);
    }
    p->names[p->n] = name;
    p->values[p->n] = kv_strndup(value, strlen(value));
    p->n++;
}

void cmd_config(struct client *c) {
    if (arg_is(c, 1, "get")) {
        struct config_pairs p = {0, 0, NULL, NULL};
        config_ops.get(c->argc - 2, c->argv + 2, collect_pair, &p);
        reply_map(c, p.n);
        for (int i = 0; i < p.n; i++) {
            reply_bulk_cstr(c, p.names[i]);
            reply_bulk_cstr(c, p.values[i]);
            kv_free(p.values[i]);
        }
        kv_free(p.names);
        kv_free(p.values);
    } else if (arg_is(c, 1, "set")) {
        if (c->argc % 2) {
            reply_arity_error(c);
            return;
        }
        char err[512];
        if (config_ops.set_pairs((c->argc - 2) / 2, c->argv + 2, err, sizeof(err)) != 0) {
            reply_error(c, err);
            return;
        }
        reply_ok(c);
    } else if (arg_is(c, 1, "resetstat")) {
        info_reset_stats();
        reply_ok(c);
    } else if (arg_is(c, 1, "rewrite")) {
        char err[512];
        if (config_ops.rewrite(err, sizeof(err)) != 0) {
            server_log(LL_WARNING, "CONFIG REWRITE failed: %s", err);
            reply_error(c, err);
            return;
        }
        server_log(LL_NOTICE, "CONFIG REWRITE executed with success.");
        reply_ok(c);
    } else if (arg_is(c, 1, "help")) {
        reply_help(c, config_help);
    } else {
        reply_subcommand_error(c);
    }
}
