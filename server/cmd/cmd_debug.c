/* server/cmd/cmd_debug.c: the DEBUG command: SLEEP, LOG, SET-ACTIVE-EXPIRE, and
 * kvd's test hooks ENGINE-FAULT, ENGINE-REOPEN (persist.c and the engine's fault
 * layer do the work) and SET-COMMAND-DELAY (pipeline.c's wait step). Whether DEBUG
 * may run at all (enable-debug-command) is decided in commands.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <time.h>

#include "engine/env.h" /* DEBUG ENGINE-FAULT: the engine's fault layer */
#include "server/cmd/cmd.h"

/* ------------------------------------------------------------------------------
 * DEBUG
 * ------------------------------------------------------------------------------ */
static const char *const debug_help[] = {
    "LOG <message>",
    "    Write <message> to the server log.",
    "SET-ACTIVE-EXPIRE <0|1>",
    "    Setting it to 0 disables expiring keys in background when they are not",
    "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
    "    default.",
    "SLEEP <seconds>",
    "    Stop the server for <seconds>. Decimals allowed.",
    "ENGINE-FAULT nospace|fail-write|fail-sync|off",
    "    Mode persistent: make the engine's next disk writes fail (a full disk, an",
    "    I/O error on write or on fsync) through its fault layer; off clears it.",
    "ENGINE-REOPEN",
    "    Mode persistent: close and reopen the engine (recovers after a fault).",
    "SET-FSYNC-DELAY <ms>",
    "    Mode persistent: every engine fsync sleeps <ms> first (a slow disk; with",
    "    appendfsync always, held replies and replica acknowledgements wait for it).",
    "    0 turns it off.",
    "SET-COMMAND-DELAY <ms> [<probability> [<client-id>]]",
    "    Make commands wait <ms> milliseconds before they run (each with the given",
    "    probability, 0..1, default 1); other clients are served meanwhile. 0 turns",
    "    it off. With <client-id>: that client only (-1: back to the server's",
    "    setting). DEBUG itself never waits.",
    NULL,
};

/* DEBUG SET-COMMAND-DELAY <ms> [<probability> [<client-id>]] (pipeline.c waits). */
static void debug_set_command_delay(struct client *c) {
    long long ms, id = 0;
    double prob = 1.0;
    if (arg_ll_or_reply(c, 2, &ms) != 0) {
        return;
    }
    if (c->argc >= 4 && (resp_str2d(c->argv[3].p, c->argv[3].len, &prob) != 0 ||
                         !(prob >= 0.0 && prob <= 1.0))) {
        reply_error(c, "ERR probability must be between 0 and 1");
        return;
    }
    if (c->argc == 5 && arg_ll_or_reply(c, 4, &id) != 0) {
        return;
    }
    if (ms < (c->argc == 5 ? -1 : 0) || ms > 3600000) {
        reply_error(c, "ERR delay must be between 0 and 3600000 ms (-1 with a client id)");
        return;
    }
    struct client *target = NULL;
    if (c->argc == 5) {
        target = client_by_id((uint64_t)id);
        if (target == NULL || id <= 0) {
            reply_error(c, "ERR No such client");
            return;
        }
    }
    client_set_command_delay(target, ms, prob);
    reply_ok(c);
}

void cmd_debug(struct client *c) {
    if (arg_is(c, 1, "help")) {
        reply_help(c, debug_help);
    } else if (arg_is(c, 1, "sleep") && c->argc == 3) {
        double secs;
        if (resp_str2d(c->argv[2].p, c->argv[2].len, &secs) != 0 || secs < 0) {
            reply_not_float(c);
            return;
        }
        /* inf or 1e300 means "for ever", without an out-of-range conversion */
        const double max_secs = (double)(LLONG_MAX / 1000000 - 1);
        long long us = secs >= max_secs ? (LLONG_MAX / 1000000 - 1) * 1000000
                                        : (long long)(secs * 1000000);
        struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        reply_ok(c);
    } else if (arg_is(c, 1, "log") && c->argc == 3) {
        server_log(LL_WARNING, "DEBUG LOG: %.*s", (int)c->argv[2].len, c->argv[2].p);
        reply_ok(c);
    } else if (arg_is(c, 1, "engine-fault") && c->argc == 3) {
        if (!persist_on()) {
            reply_error(c, "ERR DEBUG ENGINE-FAULT needs mode persistent");
            return;
        }
        persist_set_fault_armed(!arg_is(c, 2, "off"));
        if (arg_is(c, 2, "off")) {
            env_fault_enable(false);
        } else if (arg_is(c, 2, "nospace")) {
            env_fault_enable(true);
            env_fault_space_limit(0);
        } else if (arg_is(c, 2, "fail-write")) {
            env_fault_enable(true);
            env_fault_fail_write(1, 0);
        } else if (arg_is(c, 2, "fail-sync")) {
            env_fault_enable(true);
            env_fault_fail_sync(1);
        } else {
            reply_syntax_error(c);
            return;
        }
        reply_ok(c);
    } else if (arg_is(c, 1, "engine-reopen") && c->argc == 2) {
        char err[256];
        if (!persist_on() || persist_reopen(err, sizeof(err)) != 0) {
            reply_errorf(c, "ERR %s", persist_on() ? err : "DEBUG ENGINE-REOPEN needs mode persistent");
            return;
        }
        reply_ok(c);
    } else if (arg_is(c, 1, "set-fsync-delay") && c->argc == 3) {
        long long ms;
        if (arg_ll_or_reply(c, 2, &ms) != 0) {
            return;
        }
        if (ms < 0 || ms > 60000) {
            reply_error(c, "ERR the fsync delay must be 0..60000 ms");
            return;
        }
        if (!persist_on()) {
            reply_error(c, "ERR DEBUG SET-FSYNC-DELAY needs mode persistent");
            return;
        }
        env_debug_sync_delay((uint32_t)ms);
        reply_ok(c);
    } else if (arg_is(c, 1, "set-command-delay") && c->argc >= 3 && c->argc <= 5) {
        debug_set_command_delay(c);
    } else if (arg_is(c, 1, "set-active-expire") && c->argc == 3) {
        long long v;
        if (arg_ll_or_reply(c, 2, &v) != 0) {
            return;
        }
        server.active_expire_enabled = v != 0;
        reply_ok(c);
    } else {
        char up[16] = "DEBUG";
        int l = c->argv[1].len > 128 ? 128 : (int)c->argv[1].len;
        reply_errorf(c, "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try %s HELP.",
                     l, c->argv[1].p, up);
    }
}
