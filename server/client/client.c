/* server/client/client.c: a client's life: creation on accept, the registry,
 * output limits, the before-sleep write list, closing (never inside the client's
 * own callback: marked, then freed in before-sleep), timeouts, query-buffer
 * trimming and the CLIENT LIST line; and the facility that lets a reply be held
 * until what it acknowledges is true. Sockets and events are the network's
 * (server/net/net.c, reached through client_hooks); the parse loop and a command
 * that waits are dispatch's (server/cmd/pipeline.c); when to hold or release
 * (fsync, W acks) is the holder's business (persist.c through
 * client_attach_store's hooks; the cluster later).
 *
 * HOW IT WORKS: A REPLY CAN BE HELD
 *   c->hold is a set of reasons (CLIENT_HOLD_*); while it is not empty
 *   net_write_now writes nothing of c's output, so later replies queue behind
 *   (pipelines stay in order; the client keeps running commands). A holder calls
 *   client_hold(c, reason) while c runs a command whose reply depends on it
 *   (persist.c: a write not yet stored, or not yet fsynced under appendfsync
 *   always). call() brackets each top-level command with client_call_begin/end,
 *   which records that command's reply as a span [start, end) of the pending
 *   output with the reasons it depends on. Nothing is consumed while held, so
 *   the offsets stay valid. client_release drops a reason; client_fail_held
 *   rebuilds the pending output with each span of that reason replaced by the
 *   error (a reply that acknowledged a write that did not happen becomes
 *   -MISCONF, later -the cluster's "W acks missing"), shifting the other spans.
 *   A failure while the client itself runs (a batch written from inside EXEC)
 *   is applied when its command ends, to its reply too.
 */
#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "server/client/client.h"

#define QBUF_IDLE_MS 2000              /* buffers of clients idle this long: trimmed */
#define QBUF_WASTE_MIN 4096            /* the cron trims only buffers wasting more */
#define QBUF_RESIZE_ABOVE (32 * 1024)  /* busy clients: only buffers larger than this */

struct client_hooks client_hooks;

static struct client *clients_pending_write;
static struct client **to_close;
static int nto_close, to_close_cap;

/* A reply that depends on holds: bytes [start, end) of the pending output. */
struct client_span {
    size_t start, end;
    uint32_t reasons;              /* CLIENT_HOLD_* */
};

struct client *client_running;                 /* in call() at top level, or NULL */

static void resp_limits_from_config(struct resp_limits *lim) {
    lim->max_bulk_len = server.proto_max_bulk_len;
    lim->max_multibulk_len = INT_MAX;
    lim->max_inline_len = 64 * 1024;
}

struct client *client_create(int fd) {
    struct client *c = kv_calloc(1, sizeof(*c));
    c->id = ++server.next_client_id;
    c->fd = fd;
    c->resp = 2;
    c->db_id = 0;
    c->db = server.db ? server.db[0] : NULL;
    c->authenticated = server.requirepass == NULL || server.requirepass[0] == '\0';
    c->ctime_ms = server.mstime;
    c->delay_prob = 1.0;
    c->last_interaction_ms = server.mstime;
    struct resp_limits lim;
    resp_limits_from_config(&lim);
    resp_parser_init(&c->parser, &lim);
    resp_out_init(&c->out, 2);
    c->next = server.clients;
    if (server.clients) {
        server.clients->prev = c;
    }
    server.clients = c;
    server.nclients++;
    return c;
}

void client_free(struct client *c) {
    if (c->pw.flags & (PERSIST_WRITER_WROTE | PERSIST_WRITER_HELD)) {
        persist_client_gone(c);
    }
    if (client_hooks.forget) {
        client_hooks.forget(c); /* MONITOR, the ready list, WATCH, MULTI */
    }
    if (c->fd >= 0) {
        if (client_hooks.uninstall) {
            client_hooks.uninstall(c);
        }
        close(c->fd);
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else if (server.clients == c) {
        server.clients = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    server.nclients--;
    resp_parser_deinit(&c->parser);
    resp_out_deinit(&c->out);
    kv_free(c->qbuf);
    kv_free(c->name);
    kv_free(c->lib_name);
    kv_free(c->lib_ver);
    kv_free(c->spans);
    kv_free(c->fail_msg);
    kv_free(c);
}

void client_close_async(struct client *c) {
    if (c->flags & CLIENT_CLOSE_ASAP) {
        return;
    }
    c->flags |= CLIENT_CLOSE_ASAP;
    if (c->fd >= 0 && client_hooks.stop_reading) {
        client_hooks.stop_reading(c);
    }
    if (nto_close == to_close_cap) {
        to_close_cap = to_close_cap ? to_close_cap * 2 : 16;
        to_close = kv_realloc(to_close, sizeof(*to_close) * (size_t)to_close_cap);
    }
    to_close[nto_close++] = c;
}

void client_free_pending_closes(void) {
    /* client_free may not add entries (it never closes other clients) */
    for (int i = 0; i < nto_close; i++) {
        client_free(to_close[i]);
    }
    nto_close = 0;
    if (to_close_cap > 64) {
        kv_free(to_close);
        to_close = NULL;
        to_close_cap = 0;
    }
}

void client_queue_write(struct client *c) {
    if (c->flags & CLIENT_PENDING_WRITE) {
        return;
    }
    c->flags |= CLIENT_PENDING_WRITE;
    c->next_pending = clients_pending_write;
    clients_pending_write = c;
}

void client_handle_pending_writes(void) {
    while (clients_pending_write) {
        struct client *c = clients_pending_write;
        clients_pending_write = c->next_pending;
        c->next_pending = NULL;
        c->flags &= ~CLIENT_PENDING_WRITE;
        if (c->flags & CLIENT_CLOSE_ASAP) {
            continue;
        }
        if (client_check_output_limits(c)) {
            continue;
        }
        if (client_hooks.write_now) {
            client_hooks.write_now(c);
        }
    }
}

struct client *client_by_id(uint64_t id) {
    for (struct client *c = server.clients; c; c = c->next) {
        if (c->id == id) {
            return c;
        }
    }
    return NULL;
}

void client_set_db(struct client *c, int id) {
    c->db_id = id;
    c->db = server.db ? server.db[id] : NULL;
}

/* Redis's client-output-buffer-limit for the normal class. */
int client_check_output_limits(struct client *c) {
    long long hard = server.client_output_buffer_limit_hard;
    long long soft = server.client_output_buffer_limit_soft;
    if ((hard == 0 && soft == 0) || (c->flags & CLIENT_PEER)) {
        return 0;
    }
    long long used = (long long)resp_out_pending(&c->out);
    int over = hard > 0 && used >= hard;
    if (!over && soft > 0 && used >= soft) {
        long long now = server.mstime / 1000;
        if (c->obuf_soft_since == 0) {
            c->obuf_soft_since = now;
        } else if (now - c->obuf_soft_since > server.client_output_buffer_limit_secs) {
            over = 1;
        }
    } else if (!over) {
        c->obuf_soft_since = 0;
    }
    if (!over || (c->flags & CLIENT_CLOSE_ASAP)) {
        return over;
    }
    char info[1024];
    size_t n = client_info_line(c, info, sizeof(info));
    if (n > 0 && info[n - 1] == '\n') {
        info[n - 1] = '\0';
    }
    server_log(LL_WARNING,
               "Client %s scheduled to be closed ASAP for overcoming of output buffer limits.",
               info);
    client_close_async(c);
    return 1;
}

/* ------------------------------------------------------------------------------
 * A reply can be held (see HOW IT WORKS at the top)
 * ------------------------------------------------------------------------------ */
/* A client that held once (persistent mode: every write's reply waits for the
 * WAL) holds again at its next batch: a small array is kept for it rather than
 * freed and grown again each time (a realloc per batch); a large one is freed. */
#define SPANS_KEEP 64

static void spans_clear(struct client *c) {
    c->nspans = 0;
    if (c->capspans > SPANS_KEEP) {
        kv_free(c->spans);
        c->spans = NULL;
        c->capspans = 0;
    }
}

static void span_add(struct client *c, size_t start, size_t end, uint32_t reasons) {
    if (end <= start) {
        return; /* no reply (CLIENT REPLY OFF) */
    }
    if (c->nspans == c->capspans) {
        c->capspans = c->capspans ? c->capspans * 2 : 4;
        c->spans = kv_realloc(c->spans, (size_t)c->capspans * sizeof(*c->spans));
    }
    c->spans[c->nspans++] = (struct client_span){start, end, reasons};
}

void client_hold(struct client *c, uint32_t reason) {
    c->hold |= reason;
    if (c == client_running) {
        c->hold_now |= reason;
    }
}

/* reason no longer holds c; when nothing does, its recorded spans are dropped.
 * Returns 1 when c's output is free to be written. */
static int hold_drop(struct client *c, uint32_t reason) {
    c->hold &= ~reason;
    c->hold_now &= ~reason;
    if (c->hold != 0) {
        return 0;
    }
    spans_clear(c);
    return 1;
}

void client_release(struct client *c, uint32_t reason) {
    if (hold_drop(c, reason)) {
        if (c->fd >= 0) {
            client_queue_write(c);
        }
        return;
    }
    int k = 0;
    for (int i = 0; i < c->nspans; i++) {
        c->spans[i].reasons &= ~reason;
        if (c->spans[i].reasons) {
            c->spans[k++] = c->spans[i];
        }
    }
    c->nspans = k;
}

/* Rewrites the spans of reason into msg: all of them (starts NULL), or those
 * starting at one of starts[0..nstarts) (ascending). */
static void fail_spans(struct client *c, uint32_t reason, const char *msg, const size_t *starts,
                       size_t nstarts);

void client_fail_held(struct client *c, uint32_t reason, const char *msg) {
    if (c == client_running) {
        c->fail_now |= reason;
        if (c->fail_msg == NULL) {
            c->fail_msg = kv_strndup(msg, strlen(msg));
        }
        return;
    }
    fail_spans(c, reason, msg, NULL, 0);
}

void client_fail_held_at(struct client *c, uint32_t reason, const char *msg,
                         const size_t *starts, size_t nstarts) {
    fail_spans(c, reason, msg, starts, nstarts);
}

/* 1 when the span sp is one fail_spans rewrites (*next: the cursor in starts). */
static int span_fails(const struct client_span *sp, uint32_t reason, const size_t *starts,
                      size_t nstarts, size_t *next) {
    if (!(sp->reasons & reason)) {
        return 0;
    }
    if (starts == NULL) {
        return 1;
    }
    while (*next < nstarts && starts[*next] < sp->start) {
        (*next)++;
    }
    return *next < nstarts && starts[*next] == sp->start;
}

static void fail_spans(struct client *c, uint32_t reason, const char *msg, const size_t *starts,
                       size_t nstarts) {
    int any = 0;
    size_t cur = 0;
    for (int i = 0; i < c->nspans && !any; i++) {
        any = span_fails(&c->spans[i], reason, starts, nstarts, &cur);
    }
    if (!any) {
        client_release(c, reason); /* no reply of it to rewrite */
        return;
    }
    cur = 0;
    /* take the pending output out, then write it back with the spans of reason
     * replaced (nothing was consumed while held: the offsets are exact) */
    size_t total = resp_out_pending(&c->out);
    char *all = kv_malloc(total ? total : 1);
    size_t got = 0;
    while (got < total) {
        struct iovec iov[64];
        int n = resp_out_iov(&c->out, iov, 64);
        if (n <= 0) {
            break;
        }
        size_t chunk = 0;
        for (int i = 0; i < n && got + chunk + iov[i].iov_len <= total; i++) {
            memcpy(all + got + chunk, iov[i].iov_base, iov[i].iov_len);
            chunk += iov[i].iov_len;
        }
        if (chunk == 0) {
            break;
        }
        resp_out_consume(&c->out, chunk);
        got += chunk;
    }
    size_t len = strlen(msg), pos = 0;
    int k = 0;
    for (int i = 0; i < c->nspans; i++) {
        struct client_span sp = c->spans[i];
        if (sp.start < pos || sp.end > got) {
            continue; /* cannot happen: spans are in order within the output */
        }
        resp_write_raw(&c->out, all + pos, sp.start - pos);
        size_t start = resp_out_pending(&c->out);
        if (span_fails(&sp, reason, starts, nstarts, &cur)) {
            server.stat_total_error_replies++;
            errorstat_count(msg, len);
            resp_write_error(&c->out, msg, len);
        } else {
            resp_write_raw(&c->out, all + sp.start, sp.end - sp.start);
        }
        sp.reasons &= ~reason;
        if (sp.reasons) {
            c->spans[k++] = (struct client_span){start, resp_out_pending(&c->out), sp.reasons};
        }
        pos = sp.end;
    }
    resp_write_raw(&c->out, all + pos, got - pos);
    kv_free(all);
    c->nspans = k;
    hold_drop(c, reason);
    if (c->fd >= 0) {
        client_queue_write(c);
    }
}

void client_call_finish(struct client *c, size_t out0) {
    uint32_t reasons = (c->hold_now & c->hold) | c->fail_now;
    c->hold_now = 0;
    if (reasons) {
        c->hold |= reasons;
        span_add(c, out0, resp_out_pending(&c->out), reasons);
    }
    if (c->fail_now) {
        uint32_t failed = c->fail_now;
        char *msg = c->fail_msg;
        c->fail_now = 0;
        c->fail_msg = NULL;
        client_fail_held(c, failed, msg);
        kv_free(msg);
    }
}

/* Gives back query-buffer space a client no longer needs, as Redis's
 * clientsCronResizeQueryBuffer. A buffer wasting more than QBUF_WASTE_MIN bytes
 * is cut to what it holds when the client has been idle QBUF_IDLE_MS, or, for a
 * busy client, when it is over QBUF_RESIZE_ABOVE and more than twice the peak
 * it reached since the last cron (down to that peak: it will soon be needed
 * again). Example: a 900 KiB SET followed by "*1\r\n$4\r\nPI" leaves 10 bytes in
 * a ~1 MiB buffer; 2 s later it is 10 bytes. The bytes held never move relative
 * to each other, and the parser keeps offsets, not pointers, so a moved buffer
 * is safe between commands. Called from client_cron only. */
static void client_resize_qbuf(struct client *c, long long idle) {
    size_t peak = c->qbuf_peak;
    /* the peak of the next period starts at what is held, or at what the bulk
     * being read needs */
    c->qbuf_peak = c->qlen + resp_parser_want(&c->parser);
    if (c->argv != NULL || c->qpos != 0 || c->qcap - c->qlen <= QBUF_WASTE_MIN) {
        return; /* a command is using the buffer, or little to gain */
    }
    size_t target;
    if (idle > QBUF_IDLE_MS) {
        target = c->qlen;
    } else if (c->qcap > QBUF_RESIZE_ABOVE && c->qcap / 2 > peak) {
        target = peak > c->qlen ? peak : c->qlen;
    } else {
        return;
    }
    if (target == 0) {
        kv_free(c->qbuf);
        c->qbuf = NULL;
    } else {
        c->qbuf = kv_realloc(c->qbuf, target);
    }
    c->qcap = target;
}

void client_cron(void) {
    long long now = server.mstime;
    for (struct client *c = server.clients; c; c = c->next) {
        if (c->flags & CLIENT_CLOSE_ASAP) {
            continue;
        }
        long long idle = now - c->last_interaction_ms;
        /* As Redis exempts blocked clients: one whose command waits, or whose
         * reply is held until what it acknowledges is true, is not idle. */
        uint32_t busy = CLIENT_MONITOR | CLIENT_WAITING | CLIENT_PEER;
        if (server.timeout > 0 && !(c->flags & busy) && !client_output_held(c) &&
            idle > (long long)server.timeout * 1000) {
            server_log(LL_VERBOSE, "Closing idle client");
            client_close_async(c);
            continue;
        }
        client_resize_qbuf(c, idle);
    }
}

static void client_flags_string(const struct client *c, char *p) {
    char *s = p;
    if (c->flags & CLIENT_MONITOR) *p++ = 'O';
    if (c->flags & CLIENT_WAITING) *p++ = 'b'; /* as Redis's blocked clients */
    if (c->flags & CLIENT_MULTI) *p++ = 'x';
    if (c->flags & CLIENT_DIRTY_CAS) *p++ = 'd';
    if (c->flags & CLIENT_CLOSE_AFTER_REPLY) *p++ = 'c';
    if (c->flags & CLIENT_CLOSE_ASAP) *p++ = 'A';
    if (c->flags & CLIENT_NO_EVICT) *p++ = 'e';
    if (c->flags & CLIENT_NO_TOUCH) *p++ = 'T';
    if (p == s) *p++ = 'N';
    *p = '\0';
}

size_t client_info_line(const struct client *c, char *buf, size_t cap) {
    char flags[16];
    client_flags_string(c, flags);
    size_t argv_mem = 0;
    for (int i = 0; i < c->argc; i++) {
        argv_mem += c->argv[i].len;
    }
    size_t pending = resp_out_pending(&c->out);
    size_t obl = c->out.len - c->out.sent;
    if (obl > pending) {
        obl = pending;
    }
    size_t omem = pending - obl;
    size_t oll = omem ? (omem + RESP_OUT_INLINE - 1) / RESP_OUT_INLINE : 0;
    size_t tot = sizeof(*c) + c->qcap + omem + (size_t)c->multi_mem;
    const char *cmd = c->lastcmd ? c->lastcmd->name : "NULL";
    long long now = server.mstime;
    int w = (c->write_ev != NULL && (c->flags & CLIENT_WRITE_INSTALLED));
    int n = snprintf(buf, cap,
        "id=%llu addr=%s laddr=%s fd=%d name=%s age=%lld idle=%lld flags=%s db=%d sub=0 "
        "psub=0 ssub=0 multi=%d qbuf=%zu qbuf-free=%zu argv-mem=%zu multi-mem=%lld "
        "rbs=%d rbp=%zu obl=%zu oll=%zu omem=%zu tot-mem=%zu events=%s cmd=%s user=default "
        "redir=-1 resp=%d lib-name=%s lib-ver=%s\n",
        (unsigned long long)c->id, c->addr, c->laddr, c->fd, c->name ? c->name : "",
        (now - c->ctime_ms) / 1000, (now - c->last_interaction_ms) / 1000, flags, c->db_id,
        (c->flags & CLIENT_MULTI) ? c->mcount : -1, c->qlen - c->qpos,
        c->qcap - c->qlen, argv_mem, c->multi_mem, RESP_OUT_INLINE, c->out.len, obl, oll,
        omem, tot, w ? "rw" : "r", cmd, c->resp, c->lib_name ? c->lib_name : "",
        c->lib_ver ? c->lib_ver : "");
    if (n < 0) {
        return 0;
    }
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

static void persist_hold(struct client *c) {
    client_hold(c, CLIENT_HOLD_PERSIST);
}

static void persist_release(struct client *c) {
    client_release(c, CLIENT_HOLD_PERSIST);
}

static void persist_fail(struct client *c, const char *msg) {
    client_fail_held(c, CLIENT_HOLD_PERSIST, msg);
}

void client_attach_store(void) {
    static const struct persist_client_hooks hooks = {
        .hold = persist_hold,
        .release = persist_release,
        .fail = persist_fail,
    };
    persist_set_client_hooks(&hooks);
}
