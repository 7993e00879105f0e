/* server/cmd/cmd_keys.c: the keyspace family. DEL UNLINK EXISTS TYPE RENAME RENAMENX
 * KEYS SCAN RANDOMKEY TOUCH COPY OBJECT DBSIZE FLUSHDB FLUSHALL MEMORY, with Redis
 * 7.0's replies and errors. Keys go through the coordinator (server/coord/coord.h).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/cmd/cmd.h"
#include "server/coord/coord.h"

void cmd_del(struct client *c) {
    long long n = 0;
    for (int j = 1; j < c->argc; j++) {
        n += coord_delete(c, &c->argv[j], 0);
    }
    reply_int(c, n);
}

void cmd_unlink(struct client *c) {
    long long n = 0;
    for (int j = 1; j < c->argc; j++) {
        n += coord_delete(c, &c->argv[j], 1);
    }
    reply_int(c, n);
}

void cmd_exists(struct client *c) {
    long long n = 0;
    for (int j = 1; j < c->argc; j++) {
        n += coord_lookup(c, &c->argv[j], COORD_NOTOUCH) != NULL;
    }
    reply_int(c, n);
}

void cmd_type(struct client *c) {
    struct kv_entry *e = coord_lookup(c, &c->argv[1], COORD_NOTOUCH);
    reply_simple(c, e ? obj_type_name(e) : "none");
}

static void rename_generic(struct client *c, int nx) {
    const struct kv_slice *src = &c->argv[1], *dst = &c->argv[2];
    if (coord_lookup_write(c, src) == NULL) {
        reply_error(c, "ERR no such key");
        return;
    }
    if (src->len == dst->len && memcmp(src->p, dst->p, src->len) == 0) {
        if (nx) {
            reply_int(c, 0);
        } else {
            reply_ok(c);
        }
        return;
    }
    if (nx && coord_lookup_write(c, dst) != NULL) {
        reply_int(c, 0);
        return;
    }
    coord_rename(c, src, dst);
    if (nx) {
        reply_int(c, 1);
    } else {
        reply_ok(c);
    }
}

void cmd_rename(struct client *c) {
    rename_generic(c, 0);
}

void cmd_renamenx(struct client *c) {
    rename_generic(c, 1);
}

struct keys_ctx {
    struct client *c;
    const struct kv_slice *pat;
    int all;
    long long n;
};

static void keys_one(struct kv_entry *e, void *arg) {
    struct keys_ctx *k = arg;
    size_t klen;
    const char *key = obj_key(e, &klen);
    if (obj_expired(e)) {
        return;
    }
    if (k->all || kv_glob_match(k->pat->p, k->pat->len, key, klen, 0)) {
        reply_bulk(k->c, key, klen);
        k->n++;
    }
}

void cmd_keys(struct client *c) {
    struct keys_ctx k = {c, &c->argv[1], c->argv[1].len == 1 && c->argv[1].p[0] == '*', 0};
    resp_defer_t h = reply_defer(c);
    coord_foreach(c, keys_one, &k);
    reply_defer_set(c, h, RESP_AGG_ARRAY, k.n);
}

/* ---- SCAN (HSCAN shares the cursor and option parsing) ---- */

/* Redis's parseScanCursorOrReply: an unsigned decimal as strtoul reads it; then
 * the block number to its position (coord.h). */
int keys_scan_cursor_or_reply(struct client *c, int i, uint64_t *token) {
    char buf[64];
    const struct kv_slice *a = &c->argv[i];
    /* as strtoul: "" is cursor 0 (Redis accepts it), a leading blank is not */
    if (a->len >= sizeof(buf) || (a->len > 0 && isspace((unsigned char)a->p[0]))) {
        goto invalid;
    }
    memcpy(buf, a->p, a->len);
    buf[a->len] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (*end != '\0' || errno == ERANGE) {
        goto invalid;
    }
    return obj_scan_position((uint64_t)v, token) == 0 ? 0 : 1;
invalid:
    reply_error(c, "ERR invalid cursor");
    return -1;
}

/* Parses [MATCH p] [COUNT n] [TYPE t] from argv[first..]; TYPE only when type is
 * not NULL. Replies and returns -1 on error. */
int keys_scan_opts_or_reply(struct client *c, int first, const struct kv_slice **pat,
                       long *count, const struct kv_slice **type) {
    *pat = NULL;
    *count = 10;
    for (int i = first; i < c->argc; i += 2) {
        int more = i + 1 < c->argc;
        if (arg_is(c, i, "count") && more) {
            long long n;
            if (arg_ll_or_reply(c, i + 1, &n) != 0) {
                return -1;
            }
            if (n < 1) {
                reply_syntax_error(c);
                return -1;
            }
            *count = n > 1000000000 ? 1000000000 : (long)n;
        } else if (arg_is(c, i, "match") && more) {
            const struct kv_slice *p = &c->argv[i + 1];
            *pat = (p->len == 1 && p->p[0] == '*') ? NULL : p;
        } else if (type && arg_is(c, i, "type") && more) {
            *type = &c->argv[i + 1];
        } else {
            reply_syntax_error(c);
            return -1;
        }
    }
    return 0;
}

void keys_reply_scan_cursor(struct client *c, uint64_t next) {
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)obj_scan_cursor(next));
    reply_bulk(c, buf, (size_t)n);
}

void keys_reply_scan_end(struct client *c) {
    reply_array(c, 2);
    reply_bulk(c, "0", 1);
    reply_array(c, 0);
}

struct scan_ctx {
    struct kv_entry **v;
    size_t n, cap;
};

static void scan_collect(struct kv_entry *e, void *arg) {
    struct scan_ctx *s = arg;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->v = kv_realloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = e;
}

void cmd_scan(struct client *c) {
    uint64_t cursor;
    const struct kv_slice *pat, *type = NULL;
    long count;
    int rc = keys_scan_cursor_or_reply(c, 1, &cursor);
    if (rc < 0 || keys_scan_opts_or_reply(c, 2, &pat, &count, &type) != 0) {
        return;
    }
    if (rc > 0) {
        keys_reply_scan_end(c);
        return;
    }
    struct scan_ctx s = {NULL, 0, 0};
    uint64_t next = coord_scan(c, cursor, count, scan_collect, &s);

    /* keep the matches in front, expired keys at the back (deleted after) */
    size_t keep = 0, expired = s.n;
    for (size_t i = 0; i < expired;) {
        struct kv_entry *e = s.v[i];
        size_t klen;
        const char *key = obj_key(e, &klen);
        if (obj_expired(e)) {
            s.v[i] = s.v[--expired];
            s.v[expired] = e;
            continue;
        }
        if ((pat == NULL || kv_glob_match(pat->p, pat->len, key, klen, 0)) &&
            (type == NULL || (strlen(obj_type_name(e)) == type->len &&
                              strncasecmp(obj_type_name(e), type->p, type->len) == 0))) {
            s.v[keep++] = e;
        }
        i++;
    }
    reply_array(c, 2);
    keys_reply_scan_cursor(c, next);
    reply_array(c, (long long)keep);
    for (size_t i = 0; i < keep; i++) {
        size_t klen;
        const char *key = obj_key(s.v[i], &klen);
        reply_bulk(c, key, klen);
    }
    for (size_t i = expired; i < s.n; i++) {
        coord_expire_entry(c, s.v[i]);
    }
    kv_free(s.v);
}

void cmd_randomkey(struct client *c) {
    struct kv_entry *e = coord_random(c);
    if (e == NULL) {
        reply_null(c);
        return;
    }
    size_t klen;
    const char *key = obj_key(e, &klen);
    reply_bulk(c, key, klen);
}

void cmd_touch(struct client *c) {
    long long n = 0;
    for (int j = 1; j < c->argc; j++) {
        n += coord_touch(c, &c->argv[j]) != NULL;
    }
    reply_int(c, n);
}

void cmd_copy(struct client *c) {
    const struct kv_slice *src = &c->argv[1], *dst = &c->argv[2];
    long long dbid = c->db_id;
    int replace = 0;
    for (int j = 3; j < c->argc; j++) {
        if (arg_is(c, j, "replace")) {
            replace = 1;
        } else if (arg_is(c, j, "db") && j + 1 < c->argc) {
            /* as Redis: an int, and a database, at once (before later options) */
            if (arg_range_ll_or_reply(c, j + 1, INT_MIN, INT_MAX, &dbid) != 0) {
                return;
            }
            if (dbid < 0 || dbid >= server.databases) {
                reply_error(c, "ERR DB index is out of range");
                return;
            }
            j++;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    if (dbid < 0 || dbid >= server.databases) {
        reply_error(c, "ERR DB index is out of range");
        return;
    }
    if (dbid == c->db_id && src->len == dst->len && memcmp(src->p, dst->p, src->len) == 0) {
        reply_error(c, "ERR source and destination objects are the same");
        return;
    }
    struct kv_entry *e = coord_lookup_read(c, src);
    if (e == NULL) {
        reply_int(c, 0);
        return;
    }
    if (coord_lookup_write_db(c, (int)dbid, dst) != NULL && !replace) {
        reply_int(c, 0);
        return;
    }
    coord_put(c, (int)dbid, obj_dup(e, dst->p, dst->len), 0);
    reply_int(c, 1);
}

static const char *const object_help[] = {
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    NULL,
};

void cmd_object(struct client *c) {
    static const char *const subs[] = {"encoding", "freq", "idletime", "refcount"};
    if (arg_is(c, 1, "help") && c->argc == 2) {
        reply_help(c, object_help);
        return;
    }
    size_t k;
    for (k = 0; k < 4 && !arg_is(c, 1, subs[k]); k++) {
    }
    if (k == 4) {
        reply_subcommand_error(c);
        return;
    }
    if (c->argc != 3) {
        reply_errorf(c, "ERR wrong number of arguments for 'object|%s' command", subs[k]);
        return;
    }
    struct kv_entry *e = coord_lookup(c, &c->argv[2], COORD_NOTOUCH);
    if (e == NULL) {
        reply_null(c);
        return;
    }
    switch (k) {
    case 0:
        reply_bulk_cstr(c, obj_encoding_name(e));
        break;
    case 1:
        if (!obj_lfu_policy()) {
            reply_error(c, "ERR An LFU maxmemory policy is not selected, access frequency "
                           "not tracked. Please note that when switching between policies "
                           "at runtime LRU and LFU data will take some time to adjust.");
        } else {
            reply_int(c, obj_lfu(e));
        }
        break;
    case 2:
        if (obj_lfu_policy()) {
            reply_error(c, "ERR An LFU maxmemory policy is selected, idle time not tracked. "
                           "Please note that when switching between policies at runtime "
                           "LRU and LFU data will take some time to adjust.");
        } else {
            reply_int(c, obj_idle_ms(e) / 1000);
        }
        break;
    default:
        reply_int(c, 1);
        break;
    }
}

void cmd_dbsize(struct client *c) {
    reply_int(c, (long long)coord_db_size(c));
}

/* [ASYNC|SYNC]: 1 async, 0 sync, -1 after a syntax error reply. */
static int flush_flags_or_reply(struct client *c) {
    if (c->argc == 1) {
        return 0;
    }
    if (c->argc == 2 && arg_is(c, 1, "async")) {
        return 1;
    }
    if (c->argc == 2 && arg_is(c, 1, "sync")) {
        return 0;
    }
    reply_syntax_error(c);
    return -1;
}

void cmd_flushdb(struct client *c) {
    int async = flush_flags_or_reply(c);
    if (async >= 0) {
        coord_flush(c, c->db_id, async);
        reply_ok(c);
    }
}

void cmd_flushall(struct client *c) {
    int async = flush_flags_or_reply(c);
    if (async >= 0) {
        coord_flush(c, -1, async);
        reply_ok(c);
    }
}

static const char *const memory_help[] = {
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    NULL,
};

static void memory_usage(struct client *c) {
    long long samples = 5;
    for (int j = 3; j < c->argc; j++) {
        if (arg_is(c, j, "samples") && j + 1 < c->argc) {
            if (arg_ll_or_reply(c, j + 1, &samples) != 0) {
                return;
            }
            if (samples < 0) {
                reply_syntax_error(c);
                return;
            }
            j++;
        } else {
            reply_syntax_error(c);
            return;
        }
    }
    struct kv_entry *e = coord_lookup(c, &c->argv[2], COORD_NOTOUCH);
    if (e == NULL) {
        reply_null(c);
        return;
    }
    reply_int(c, (long long)obj_memory_usage(e, (long)samples));
}

static void memory_stats(struct client *c) {
    size_t used = kv_used_memory(), keys = 0, overhead = 0;
    int ndb = 0;
    for (int i = 0; i < server.databases; i++) {
        size_t n, main_bytes, expires_bytes;
        coord_db_overhead(i, &n, &main_bytes, &expires_bytes);
        keys += n;
        if (n) {
            ndb++;
        }
        overhead += main_bytes + expires_bytes;
    }
    size_t peak = server.stat_peak_memory > used ? server.stat_peak_memory : used;
    size_t dataset = used > overhead ? used - overhead : 0;
    reply_map(c, 9 + ndb);
    reply_bulk_cstr(c, "peak.allocated");
    reply_int(c, (long long)peak);
    reply_bulk_cstr(c, "total.allocated");
    reply_int(c, (long long)used);
    reply_bulk_cstr(c, "clients.normal");
    reply_int(c, 0);
    for (int i = 0; i < server.databases; i++) {
        size_t n, main_bytes, expires_bytes;
        coord_db_overhead(i, &n, &main_bytes, &expires_bytes);
        if (n == 0) {
            continue;
        }
        char name[32];
        snprintf(name, sizeof(name), "db.%d", i);
        reply_bulk_cstr(c, name);
        reply_map(c, 2);
        reply_bulk_cstr(c, "overhead.hashtable.main");
        reply_int(c, (long long)main_bytes);
        reply_bulk_cstr(c, "overhead.hashtable.expires");
        reply_int(c, (long long)expires_bytes);
    }
    reply_bulk_cstr(c, "overhead.total");
    reply_int(c, (long long)overhead);
    reply_bulk_cstr(c, "keys.count");
    reply_int(c, (long long)keys);
    reply_bulk_cstr(c, "keys.bytes-per-key");
    reply_int(c, keys ? (long long)(used / keys) : 0);
    reply_bulk_cstr(c, "dataset.bytes");
    reply_int(c, (long long)dataset);
    reply_bulk_cstr(c, "dataset.percentage");
    reply_double(c, used ? 100.0 * (double)dataset / (double)used : 0);
    reply_bulk_cstr(c, "peak.percentage");
    reply_double(c, peak ? 100.0 * (double)used / (double)peak : 0);
}

void cmd_memory(struct client *c) {
    if (arg_is(c, 1, "help") && c->argc == 2) {
        reply_help(c, memory_help);
    } else if (arg_is(c, 1, "usage") && c->argc >= 3) {
        memory_usage(c);
    } else if (arg_is(c, 1, "stats") && c->argc == 2) {
        memory_stats(c);
    } else if (arg_is(c, 1, "doctor") && c->argc == 2) {
        const char *msg = kv_used_memory() < 5 * 1024 * 1024
            ? "Hi Sam, this instance is empty or is using very little memory, my issues "
              "detector can't be used in these conditions. Please, leave for your mission "
              "on Earth and fill it with some data. The new Sam and I will be back to our "
              "programming as soon as I finished rebooting."
            : "Hi Sam, I can't find any memory issue in your instance. I can only account "
              "for what occurs on this base.";
        reply_verbatim(c, msg, strlen(msg));
    } else if (arg_is(c, 1, "malloc-stats") && c->argc == 2) {
        reply_verbatim(c, "Stats not supported for the current allocator", 46);
    } else if (arg_is(c, 1, "purge") && c->argc == 2) {
        reply_ok(c);
    } else {
        static const char *const subs[] = {"usage", "stats", "doctor", "malloc-stats", "purge"};
        for (size_t k = 0; k < 5; k++) {
            if (arg_is(c, 1, subs[k])) {
                reply_errorf(c, "ERR wrong number of arguments for 'memory|%s' command", subs[k]);
                return;
            }
        }
        reply_subcommand_error(c);
    }
}
