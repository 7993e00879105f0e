/* server/test_client.h: an in-process client for the server's unit tests. It boots
 * the server's globals without a loop or a socket, runs a command line through the
 * command table, and returns the reply with CRLF squeezed to one space
 * ("$3\r\nbar\r\n" -> "$3 bar"), so a test reads like a redis-cli session.
 *
 * For *_test.c files only: everything here is static, and the state (the reply
 * buffer, the argument vector) is shared by the calls of one test binary.
 */
#ifndef KVD_TEST_CLIENT_H
#define KVD_TEST_CLIENT_H

#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "server/coord/coord.h"
#include "server/net/net.h"

/* Sets the globals a test server needs and creates the databases, once per
 * process; mode is MODE_CACHE or MODE_PERSISTENT (persistent tests open the
 * engine themselves). Settings a test changes afterwards stay the test's. */
static inline void tclient_boot(int mode) {
    if (server.db != NULL) {
        return;
    }
    server.databases = 16;
    server.hz = 10;
    server.active_expire_effort = 1;
    server.active_expire_enabled = 1;
    server.proto_max_bulk_len = 512ll * 1024 * 1024;
    server.lfu_log_factor = 10;
    server.lfu_decay_time = 1;
    server.maxmemory_samples = 5;
    server.mode = mode;
    commands_init();
    config_attach_command(); /* CONFIG's backend, leaving the values set above */
    ks_init();
    server_subscribe_events();
}

/* Makes c a fresh, authenticated RESP2 client on database 0 with no socket. */
static inline void tclient_reset(struct client *c) {
    resp_out_deinit(&c->out);
    kv_free(c->spans); /* kept between holds (client.c SPANS_KEEP), as client_free frees it */
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->resp = 2;
    c->db = server.db[0];
    c->db_id = 0;
    c->flags = CLIENT_INTERNAL;
    c->authenticated = 1;
    resp_out_init(&c->out, 2);
}

/* Moves c's pending output, raw, into out (at most cap - 1 bytes, NUL-terminated)
 * and returns how many bytes it took. */
static inline size_t tclient_take_output(struct client *c, char *out, size_t cap) {
    size_t n = 0;
    struct iovec iov[16];
    int k = resp_out_iov(&c->out, iov, 16);
    for (int i = 0; i < k && n + iov[i].iov_len < cap; i++) {
        memcpy(out + n, iov[i].iov_base, iov[i].iov_len);
        n += iov[i].iov_len;
    }
    resp_out_consume(&c->out, n);
    out[n] = '\0';
    return n;
}

/* The usual fixture: a cache-mode node with every database empty, the clock read
 * now, no eviction policy, and c fresh (tclient_reset). */
static inline void tclient_fresh_cache(struct client *c) {
    tclient_boot(MODE_CACHE);
    for (int i = 0; i < server.databases; i++) {
        ks_flush_db(server.db[i], 0);
    }
    server.mstime = kv_mstime();
    server.maxmemory_policy = MM_NOEVICTION;
    tclient_reset(c);
}

enum {
    TCLIENT_HANDLER = 0, /* call the handler directly (no arity, auth or OOM checks) */
    TCLIENT_PROCESS = 1, /* the whole command path: process_command() */
};

/* Runs one command on c: arguments separated by single spaces, '' for an empty
 * argument, at most 64. Returns the reply squeezed as above, valid until the next
 * call; "(unknown command)" when the name is not in the table (TCLIENT_HANDLER). */
static inline const char *tclient_run(struct client *c, const char *line, int how) {
    static char out[65536];
    static char buf[4096];
    static struct kv_slice argv[64];
    snprintf(buf, sizeof(buf), "%s", line);
    int argc = 0;
    for (char *tok = strtok(buf, " "); tok && argc < 64; tok = strtok(NULL, " ")) {
        if (strcmp(tok, "''") == 0) {
            tok[0] = '\0';
        }
        argv[argc++] = (struct kv_slice){tok, strlen(tok)};
    }
    c->argc = argc;
    c->argv = argv;
    if (how == TCLIENT_PROCESS) {
        process_command(c);
    } else {
        struct kv_command *cmd = command_lookup(argv[0].p, argv[0].len);
        if (cmd == NULL) {
            return "(unknown command)";
        }
        c->cmd = cmd;
        coord_command_begin(); /* one command: its writes' versions, as call() */
        cmd->proc(c);
    }

    size_t n = 0;
    struct iovec iov[16];
    int cnt = resp_out_iov(&c->out, iov, 16);
    for (int i = 0; i < cnt; i++) {
        for (size_t k = 0; k < iov[i].iov_len && n + 2 < sizeof(out); k++) {
            char ch = ((char *)iov[i].iov_base)[k];
            if (ch == '\r') {
                continue;
            }
            out[n++] = ch == '\n' ? ' ' : ch;
        }
    }
    if (n > 0 && out[n - 1] == ' ') {
        n--;
    }
    out[n] = '\0';
    resp_out_consume(&c->out, resp_out_pending(&c->out));
    return out;
}

#endif
