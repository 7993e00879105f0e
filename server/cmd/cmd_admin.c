/* server/cmd/cmd_admin.c: the node's administrative commands: TIME, SHUTDOWN,
 * LASTSAVE, SAVE, BGSAVE, BGREWRITEAOF, WAIT, MONITOR and SLOWLOG. The work
 * behind them is elsewhere: shutdown in server.c, saving in persist.c, the slow
 * log and the MONITOR feed in commands.c; this file parses arguments and replies
 * as Redis 7.0.
 */
#include <limits.h>

#include "server/cmd/cmd.h"

/* ------------------------------------------------------------------------------
 * TIME SHUTDOWN LASTSAVE WAIT MONITOR
 * ------------------------------------------------------------------------------ */
void cmd_time(struct client *c) {
    long long us = kv_ustime();
    reply_array(c, 2);
    reply_bulk_ll(c, us / 1000000);
    reply_bulk_ll(c, us % 1000000);
}

void cmd_shutdown(struct client *c) {
    int nosave = 0, save = 0, abort_ = 0;
    for (int i = 1; i < c->argc; i++) {
        if (arg_is(c, i, "nosave")) nosave = 1;
        else if (arg_is(c, i, "save")) save = 1;
        else if (arg_is(c, i, "now") || arg_is(c, i, "force")) continue;
        else if (arg_is(c, i, "abort")) abort_ = 1;
        else {
            reply_syntax_error(c);
            return;
        }
    }
    if ((nosave && save) || (abort_ && c->argc > 2)) {
        reply_syntax_error(c);
        return;
    }
    if (abort_) {
        reply_error(c, "ERR No shutdown in progress.");
        return;
    }
    /* mode cache keeps nothing on disk: SAVE and NOSAVE both just stop; mode
     * persistent always closes the engine cleanly (persist_close) */
    server_request_shutdown(0);
}

void cmd_lastsave(struct client *c) {
    reply_int(c, server.lastsave);
}

/* SAVE / BGSAVE / BGREWRITEAOF. In mode persistent every write is already in the
 * engine's WAL; SAVE writes the memtable into a table (blocking), BGSAVE starts the
 * same in the background, BGREWRITEAOF a full compaction (the engine's rewrite of
 * its files). Mode cache has nothing to save: the replies are Redis's. */
void cmd_save(struct client *c) {
    if (persist_on()) {
        const char *err;
        if (persist_save(&err) != 0) {
            reply_error(c, err);
            return;
        }
    } else {
        server.lastsave = kv_mstime() / 1000;
    }
    server.dirty = 0;
    reply_ok(c);
}

void cmd_bgsave(struct client *c) {
    if (c->argc > 2 || (c->argc == 2 && !arg_is(c, 1, "schedule"))) {
        reply_syntax_error(c);
        return;
    }
    int rc = persist_on() ? persist_bgsave() : 0;
    if (rc < 0) {
        reply_error(c, "ERR Background save already in progress");
        return;
    }
    if (rc > 0) {
        reply_simple(c, "Background saving scheduled");
        return;
    }
    if (!persist_on()) {
        server.lastsave = kv_mstime() / 1000;
    }
    server.dirty = 0;
    reply_simple(c, "Background saving started");
}

void cmd_bgrewriteaof(struct client *c) {
    int rc = persist_on() ? persist_bgrewrite() : 0;
    if (rc < 0) {
        reply_error(c, "ERR Background append only file rewriting already in progress");
        return;
    }
    if (rc > 0) {
        reply_simple(c, "Background append only file rewriting scheduled");
        return;
    }
    reply_simple(c, "Background append only file rewriting started");
}

void cmd_wait(struct client *c) {
    long long nrep, timeout;
    if (resp_str2ll(c->argv[1].p, c->argv[1].len, &nrep) != 0) {
        reply_not_integer(c);
        return;
    }
    if (resp_str2ll(c->argv[2].p, c->argv[2].len, &timeout) != 0) {
        reply_error(c, "ERR timeout is not an integer or out of range");
        return;
    }
    if (timeout < 0) {
        reply_error(c, "ERR timeout is negative");
        return;
    }
    reply_int(c, 0);
}

void cmd_monitor(struct client *c) {
    if (c->flags & CLIENT_MULTI) {
        reply_error(c, "ERR MONITOR isn't allowed for DENY BLOCKING client");
        return;
    }
    if (c->flags & CLIENT_MONITOR) {
        return;  /* already monitoring: ignored, as Redis */
    }
    monitor_add(c);
    reply_ok(c);
}

/* ------------------------------------------------------------------------------
 * SLOWLOG
 * ------------------------------------------------------------------------------ */
static const char *const slowlog_help[] = {
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    NULL,
};

void cmd_slowlog(struct client *c) {
    if (arg_is(c, 1, "get")) {
        long long count = 10;
        if (c->argc == 3) {
            if (resp_str2ll(c->argv[2].p, c->argv[2].len, &count) != 0 || count < -1) {
                reply_error(c, "ERR count should be greater than or equal to -1");
                return;
            }
            if (count == -1) {
                count = LLONG_MAX;
            }
        } else if (c->argc > 3) {
            reply_arity_error(c);
            return;
        }
        long long len = slowlog_len();
        if (count > len) {
            count = len;
        }
        reply_array(c, count);
        const struct slowlog_entry *e = NULL;
        for (long long i = 0; i < count; i++) {
            e = slowlog_next(e);
            reply_array(c, 6);
            reply_int(c, e->id);
            reply_int(c, e->time);
            reply_int(c, e->duration);
            reply_array(c, e->argc);
            for (int k = 0; k < e->argc; k++) {
                reply_bulk(c, e->argv[k].p, e->argv[k].len);
            }
            reply_bulk_cstr(c, e->addr);
            reply_bulk_cstr(c, e->name);
        }
    } else if (arg_is(c, 1, "len")) {
        reply_int(c, slowlog_len());
    } else if (arg_is(c, 1, "reset")) {
        slowlog_reset();
        reply_ok(c);
    } else if (arg_is(c, 1, "help")) {
        reply_help(c, slowlog_help);
    } else {
        reply_subcommand_error(c);
    }
}
