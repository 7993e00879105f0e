/* server/client.c: a client's life: creation on accept, the query buffer and the
 * parse-execute loop (pipelining: every complete command of a read runs before
 * the next read), backpressure limits, the before-sleep write list, closing (never
 * inside the client's own callback: marked, then freed in before-sleep), timeouts
 * and the CLIENT LIST line. Sockets and events are net.c's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"
#include "server/server_int.h"

#define QBUF_CHUNK 16384               /* bytes read at a time, at least */
#define QBUF_IDLE_MS 2000              /* buffers of clients idle this long: trimmed */
#define QBUF_FREE_ABOVE (1024 * 1024)  /* emptied buffers above this: at once */
#define QBUF_WASTE_MIN 4096            /* the cron trims only buffers wasting more */
#define QBUF_RESIZE_ABOVE (32 * 1024)  /* busy clients: only buffers larger than this */

struct client *clients_pending_write;
static struct client **to_close;
static int nto_close, to_close_cap;

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
    if (c->flags & (CLIENT_PERSIST_WROTE | CLIENT_PERSIST_HELD)) {
        persist_client_gone(c);
    }
    if (c->flags & CLIENT_MONITOR) {
        monitor_remove(c);
    }
    unwatch_all(c);
    if (c->flags & CLIENT_MULTI || c->mstate) {
        multi_discard_state(c);
    }
    if (c->fd >= 0) {
        net_client_uninstall(c);
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
    kv_free(c);
}

void client_close_async(struct client *c) {
    if (c->flags & CLIENT_CLOSE_ASAP) {
        return;
    }
    c->flags |= CLIENT_CLOSE_ASAP;
    if (c->fd >= 0) {
        net_stop_reading(c);
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
        net_write_now(c);
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
    if (hard == 0 && soft == 0) {
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

/* After each top-level command: CLIENT REPLY SKIP applies to exactly the next one. */
static void after_command(struct client *c) {
    c->flags &= ~CLIENT_REPLY_SKIP;
    if (c->flags & CLIENT_REPLY_SKIP_NEXT) {
        c->flags |= CLIENT_REPLY_SKIP;
        c->flags &= ~CLIENT_REPLY_SKIP_NEXT;
    }
}

void client_process_input(struct client *c) {
    while (c->qpos < c->qlen &&
           !(c->flags & (CLIENT_CLOSE_AFTER_REPLY | CLIENT_CLOSE_ASAP)) &&
           !server.shutdown_asap) {
        size_t consumed = 0;
        int rc = resp_parse(&c->parser, c->qbuf + c->qpos, c->qlen - c->qpos, &consumed);
        if (rc == RESP_AGAIN) {
            break;
        }
        if (rc == RESP_ERR_PROTO) {
            server_log(LL_VERBOSE, "Protocol error (%s) from client: id=%llu addr=%s",
                       c->parser.err, (unsigned long long)c->id, c->addr);
            c->flags &= ~(CLIENT_REPLY_OFF | CLIENT_REPLY_SKIP);
            reply_errorf(c, "ERR %s", c->parser.err);
            c->flags |= CLIENT_CLOSE_AFTER_REPLY;
            c->qpos = c->qlen;
            break;
        }
        if (c->parser.argc > 0) {
            c->argc = c->parser.argc;
            c->argv = c->parser.argv;
            process_command(c);
            after_command(c);
            c->argc = 0;
            c->argv = NULL;
            c->cmd = NULL;
            if (c->flags & CLIENT_PENDING_WRITE) {
                client_check_output_limits(c);
            }
        }
        c->qpos += consumed;
    }
    call_batch_end();
    if (c->qpos == c->qlen) {
        c->qpos = c->qlen = 0;
        if (c->qcap > QBUF_FREE_ABOVE) {
            /* grown for a big argument: give it back now, not after 2 s idle */
            kv_free(c->qbuf);
            c->qbuf = NULL;
            c->qcap = 0;
        }
    } else if (c->qpos > 0) {
        memmove(c->qbuf, c->qbuf + c->qpos, c->qlen - c->qpos);
        c->qlen -= c->qpos;
        c->qpos = 0;
    }
    if ((c->flags & CLIENT_CLOSE_AFTER_REPLY) && c->fd >= 0) {
        net_stop_reading(c);
        client_queue_write(c);
    }
}

void client_read(struct client *c) {
    size_t want = resp_parser_want(&c->parser);
    size_t readlen = QBUF_CHUNK;
    if (want > readlen) {
        /* a big bulk is coming: read it in as few calls as possible, growing the
         * buffer geometrically so memory follows what has arrived, not what was
         * announced */
        size_t grow = c->qlen > QBUF_CHUNK ? c->qlen : QBUF_CHUNK;
        readlen = want < grow ? want : grow;
    }
    if (c->qcap - c->qlen < readlen) {
        size_t need = c->qlen + readlen;
        size_t cap = c->qcap ? c->qcap : QBUF_CHUNK;
        while (cap < need) {
            cap *= 2;
        }
        if (want > QBUF_CHUNK && cap > c->qlen + want) {
            cap = c->qlen + want;  /* exactly what the bulk needs, no slack */
        }
        c->qbuf = kv_realloc(c->qbuf, cap);
        c->qcap = cap;
    }
    ssize_t n = read(c->fd, c->qbuf + c->qlen, c->qcap - c->qlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        server_log(LL_VERBOSE, "Reading from client: %s", strerror(errno));
        client_close_async(c);
        return;
    }
    if (n == 0) {
        server_log(LL_VERBOSE, "Client closed connection id=%llu addr=%s",
                   (unsigned long long)c->id, c->addr);
        client_close_async(c);
        return;
    }
    c->qlen += (size_t)n;
    if (c->qlen > c->qbuf_peak) {
        c->qbuf_peak = c->qlen;
    }
    server.stat_net_input_bytes += n;
    server.stat_total_reads++;
    c->last_interaction_ms = server.mstime;
    if ((long long)(c->qlen - c->qpos) > server.client_query_buffer_limit) {
        char info[1024];
        size_t il = client_info_line(c, info, sizeof(info));
        if (il > 0 && info[il - 1] == '\n') {
            info[il - 1] = '\0';
        }
        char head[64];
        size_t hl = c->qlen - c->qpos < 32 ? c->qlen - c->qpos : 32;
        kv_repr(head, sizeof(head), c->qbuf + c->qpos, hl);
        server_log(LL_WARNING,
                   "Closing client that reached max query buffer length: %s (qbuf initial bytes: %s)",
                   info, head);
        client_close_async(c);
        return;
    }
    client_process_input(c);
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
        if (server.timeout > 0 && !(c->flags & CLIENT_MONITOR) &&
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
