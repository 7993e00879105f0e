/* server/client/reply.c: the reply_* API over a client's output queue (c->out).
 *
 * Every function first asks reply_begin(): replies are dropped under CLIENT REPLY
 * OFF/SKIP and for clients being closed, and a client with new output joins the
 * before-sleep write list (one writev per loop turn). Error replies are counted
 * for INFO (total_error_replies, errorstats: kept here) even when dropped, as
 * Redis does.
 * Encoding is proto/'s business (resp_write_*), RESP2/RESP3 by c->out.proto.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server/client/client.h"

#define REPLY_DROP (CLIENT_REPLY_OFF | CLIENT_REPLY_SKIP | CLIENT_CLOSE_ASAP)

static inline int reply_begin(struct client *c) {
    if (c->flags & (REPLY_DROP | CLIENT_PENDING_WRITE)) {
        if (c->flags & REPLY_DROP) {
            return 0;
        }
        return 1;
    }
    if (c->fd >= 0) {
        client_queue_write(c);
    }
    return 1;
}

void reply_ok(struct client *c) {
    if (reply_begin(c)) {
        resp_write_raw(&c->out, "+OK\r\n", 5);
    }
}

void reply_raw(struct client *c, const void *p, size_t len) {
    if (reply_begin(c)) {
        resp_write_raw(&c->out, p, len);
    }
}

void reply_simple(struct client *c, const char *s) {
    if (reply_begin(c)) {
        resp_write_simple(&c->out, s, strlen(s));
    }
}

static void reply_error_len(struct client *c, const char *msg, size_t len) {
    server.stat_total_error_replies++;
    errorstat_count(msg, len);
    if (reply_begin(c)) {
        resp_write_error(&c->out, msg, len);
    }
}

void reply_error(struct client *c, const char *msg) {
    reply_error_len(c, msg, strlen(msg));
}

void reply_errorf(struct client *c, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) {
        n = 0;
    }
    if ((size_t)n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
    }
    reply_error_len(c, buf, (size_t)n);
}

void reply_int(struct client *c, long long v) {
    if (reply_begin(c)) {
        resp_write_int(&c->out, v);
    }
}

void reply_bulk(struct client *c, const void *p, size_t len) {
    if (reply_begin(c)) {
        resp_write_bulk(&c->out, p, len);
    }
}

void reply_bulk_cstr(struct client *c, const char *s) {
    if (s == NULL) {
        reply_null(c);
        return;
    }
    reply_bulk(c, s, strlen(s));
}

void reply_bulk_ll(struct client *c, long long v) {
    char buf[32];
    int n = resp_ll2str(buf, v);
    reply_bulk(c, buf, (size_t)n);
}

void reply_null(struct client *c) {
    if (reply_begin(c)) {
        resp_write_null(&c->out);
    }
}

void reply_null_array(struct client *c) {
    if (reply_begin(c)) {
        resp_write_null_array(&c->out);
    }
}

void reply_array(struct client *c, long long n) {
    if (reply_begin(c)) {
        resp_write_array(&c->out, n);
    }
}

void reply_map(struct client *c, long long npairs) {
    if (reply_begin(c)) {
        resp_write_map(&c->out, npairs);
    }
}

void reply_set(struct client *c, long long n) {
    if (reply_begin(c)) {
        resp_write_set(&c->out, n);
    }
}

void reply_double(struct client *c, double d) {
    if (reply_begin(c)) {
        resp_write_double(&c->out, d);
    }
}

void reply_verbatim(struct client *c, const char *p, size_t len) {
    if (reply_begin(c)) {
        resp_write_verbatim(&c->out, "txt", p, len);
    }
}

resp_defer_t reply_defer(struct client *c) {
    if (reply_begin(c)) {
        return resp_defer(&c->out);
    }
    return NULL;
}

void reply_defer_set(struct client *c, resp_defer_t h, enum resp_agg type, long long n) {
    if (h != NULL) {
        resp_defer_set(&c->out, h, type, n);
    }
}

void reply_syntax_error(struct client *c) {
    reply_error(c, "ERR syntax error");
}

void reply_wrongtype(struct client *c) {
    reply_error(c, "WRONGTYPE Operation against a key holding the wrong kind of value");
}

void reply_not_integer(struct client *c) {
    reply_error(c, "ERR value is not an integer or out of range");
}

void reply_not_float(struct client *c) {
    reply_error(c, "ERR value is not a valid float");
}

void reply_arity_error(struct client *c) {
    const char *name = c->cmd ? c->cmd->name : "";
    reply_errorf(c, "ERR wrong number of arguments for '%s' command", name);
}

/* The command's name as typed, upper-cased and cut to fit cmd[64]. */
static void command_upper(const struct client *c, char cmd[64]) {
    size_t n = c->argc > 0 ? c->argv[0].len : 0;
    if (n >= 64) {
        n = 63;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = c->argv[0].p[i];
        cmd[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    cmd[n] = '\0';
}

/* Redis's HELP layout: "<CMD> <subcommand> [<arg> ...]. Subcommands are:" then the
 * given lines, then "HELP" / "    Print this help." */
void reply_help(struct client *c, const char *const *lines) {
    char head[160];
    char cmd[64];
    command_upper(c, cmd);
    long long count = 0;
    while (lines[count] != NULL) {
        count++;
    }
    reply_array(c, count + 3);
    int hl = snprintf(head, sizeof(head), "%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:", cmd);
    if (reply_begin(c)) {
        resp_write_simple(&c->out, head, (size_t)hl);
        for (long long i = 0; i < count; i++) {
            resp_write_simple(&c->out, lines[i], strlen(lines[i]));
        }
        resp_write_simple(&c->out, "HELP", 4);
        resp_write_simple(&c->out, "    Print this help.", 20);
    }
}

void reply_subcommand_error(struct client *c) {
    char cmd[64];
    command_upper(c, cmd);
    const struct kv_slice *sub = c->argc > 1 ? &c->argv[1] : &c->argv[0];
    int sl = sub->len > 128 ? 128 : (int)sub->len;
    reply_errorf(c, "ERR unknown subcommand '%.*s'. Try %s HELP.", sl, sub->p, cmd);
}

int arg_ll_or_reply(struct client *c, int i, long long *out) {
    if (resp_str2ll(c->argv[i].p, c->argv[i].len, out) != 0) {
        reply_not_integer(c);
        return -1;
    }
    return 0;
}

int arg_range_ll_or_reply(struct client *c, int i, long long lo, long long hi,
                          long long *out) {
    if (arg_ll_or_reply(c, i, out) != 0) {
        return -1;
    }
    if (*out < lo || *out > hi) {
        reply_errorf(c, "ERR value is out of range, value must between %lld and %lld", lo, hi);
        return -1;
    }
    return 0;
}

int arg_ld_or_reply(struct client *c, int i, long double *out) {
    if (resp_str2ld(c->argv[i].p, c->argv[i].len, out) != 0) {
        reply_not_float(c);
        return -1;
    }
    return 0;
}

int arg_is(const struct client *c, int i, const char *lower) {
    size_t n = strlen(lower);
    return i < c->argc && c->argv[i].len == n && strncasecmp(c->argv[i].p, lower, n) == 0;
}

/* ------------------------------------------------------------------------------
 * Error statistics: counts by code (the text up to the first space), as Redis's
 * errorstats; at most 128 distinct codes, later ones are folded away.
 * ------------------------------------------------------------------------------ */
#define ERRSTAT_MAX 128
static struct {
    char code[32];
    long long count;
} errstats[ERRSTAT_MAX];
static int nerrstats;

void errorstat_count(const char *msg, size_t len) {
    size_t n = 0;
    while (n < len && msg[n] != ' ' && n < sizeof(errstats[0].code) - 1) {
        n++;
    }
    for (int i = 0; i < nerrstats; i++) {
        if (strlen(errstats[i].code) == n && memcmp(errstats[i].code, msg, n) == 0) {
            errstats[i].count++;
            return;
        }
    }
    if (nerrstats == ERRSTAT_MAX) {
        return;
    }
    memcpy(errstats[nerrstats].code, msg, n);
    errstats[nerrstats].code[n] = '\0';
    errstats[nerrstats].count = 1;
    nerrstats++;
}

int errorstat_iter(int i, const char **code, long long *count) {
    if (i < 0 || i >= nerrstats) {
        return 0;
    }
    *code = errstats[i].code;
    *count = errstats[i].count;
    return 1;
}

void errorstat_reset(void) {
    nerrstats = 0;
}
