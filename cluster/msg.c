/* cluster/msg.c: internal messages, encode and decode. See msg.h for the format. */
#include "cluster/msg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cluster/fields.h"
#include "cluster/mem.h"

int msg_fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void msg_record_header(const struct msg_record *rec, unsigned char out[MSG_REC_HDR]) {
    msg_put_be(out, rec->v.hlc, 8);
    msg_put_be(out + 8, rec->v.node, 4);
    out[12] = (unsigned char)((rec->deleted ? MSG_REC_DELETED : 0) |
                              (rec->fields ? MSG_REC_FIELDS : 0));
    msg_put_be(out + 13, rec->expire_at, 8);
}

int msg_record_parse(const char *p, size_t len, struct msg_record *out) {
    if (len < MSG_REC_HDR) {
        return MSG_INVALID;
    }
    const unsigned char *u = (const unsigned char *)p;
    if (u[12] & ~(MSG_REC_DELETED | MSG_REC_FIELDS)) {
        return MSG_INVALID;
    }
    out->v.hlc = msg_get_be(u, 8);
    out->v.node = (uint32_t)msg_get_be(u + 8, 4);
    out->deleted = (u[12] & MSG_REC_DELETED) != 0;
    out->fields = (u[12] & MSG_REC_FIELDS) != 0;
    out->expire_at = msg_get_be(u + 13, 8);
    if (out->expire_at >> 63) {
        return MSG_INVALID;
    }
    out->vlen = len - MSG_REC_HDR;
    out->val = out->vlen ? p + MSG_REC_HDR : NULL;
    if (out->deleted && (out->vlen || out->fields)) {
        return MSG_INVALID;
    }
    if (out->fields && !fields_record_ok(out)) {
        return MSG_INVALID;
    }
    return MSG_OK;
}

/* ---- requests ---- */

static void argv_alloc(struct msg_argv *a, int argc, size_t buflen) {
    a->argc = argc;
    a->argv = cl_calloc((size_t)argc, sizeof *a->argv);
    a->argvlen = cl_calloc((size_t)argc, sizeof *a->argvlen);
    a->buf = cl_malloc(buflen);
}

static size_t put_db(char *buf, unsigned db) {
    return (size_t)snprintf(buf, 8, "%u", db);
}

void msg_encode_read(struct msg_argv *out, unsigned db, const struct kv_slice *keys,
                     size_t n) {
    argv_alloc(out, (int)(3 + n), 8);
    out->argv[0] = MSG_COMMAND, out->argvlen[0] = sizeof MSG_COMMAND - 1;
    out->argv[1] = "READ", out->argvlen[1] = 4;
    out->argv[2] = out->buf, out->argvlen[2] = put_db(out->buf, db);
    for (size_t i = 0; i < n; i++) {
        out->argv[3 + i] = keys[i].p;
        out->argvlen[3 + i] = keys[i].len;
    }
}

void msg_encode_write(struct msg_argv *out, unsigned db, const char *key, size_t klen,
                      const struct msg_record *rec) {
    argv_alloc(out, 5, 8 + MSG_REC_HDR + rec->vlen);
    out->argv[0] = MSG_COMMAND, out->argvlen[0] = sizeof MSG_COMMAND - 1;
    out->argv[1] = "WRITE", out->argvlen[1] = 5;
    out->argv[2] = out->buf, out->argvlen[2] = put_db(out->buf, db);
    out->argv[3] = key, out->argvlen[3] = klen;
    unsigned char *r = (unsigned char *)out->buf + 8;
    msg_record_header(rec, r);
    if (rec->vlen) {
        memcpy(r + MSG_REC_HDR, rec->val, rec->vlen);
    }
    out->argv[4] = (const char *)r, out->argvlen[4] = MSG_REC_HDR + rec->vlen;
}

void msg_encode_mwrite(struct msg_argv *out, unsigned db, const struct msg_write *w, size_t n) {
    size_t bytes = 8;
    for (size_t i = 0; i < n; i++) {
        bytes += MSG_REC_HDR + w[i].rec->vlen;
    }
    argv_alloc(out, (int)(3 + 2 * n), bytes);
    out->argv[0] = MSG_COMMAND, out->argvlen[0] = sizeof MSG_COMMAND - 1;
    out->argv[1] = "MWRITE", out->argvlen[1] = 6;
    out->argv[2] = out->buf, out->argvlen[2] = put_db(out->buf, db);
    unsigned char *r = (unsigned char *)out->buf + 8;
    for (size_t i = 0; i < n; i++) {
        const struct msg_record *rec = w[i].rec;
        out->argv[3 + 2 * i] = w[i].key, out->argvlen[3 + 2 * i] = w[i].klen;
        msg_record_header(rec, r);
        if (rec->vlen) {
            memcpy(r + MSG_REC_HDR, rec->val, rec->vlen);
        }
        out->argv[4 + 2 * i] = (const char *)r, out->argvlen[4 + 2 * i] = MSG_REC_HDR + rec->vlen;
        r += MSG_REC_HDR + rec->vlen;
    }
}

void msg_argv_free(struct msg_argv *a) {
    free(a->argv);
    free(a->argvlen);
    free(a->buf);
    memset(a, 0, sizeof *a);
}

int msg_word_is(struct kv_slice s, const char *word) {
    size_t n = strlen(word);
    return s.len == n && strncasecmp(s.p, word, n) == 0;
}

int msg_parse_db(struct kv_slice s, unsigned *db) {
    if (s.len == 0 || s.len > 5 || (s.len > 1 && s.p[0] == '0')) {
        return -1;
    }
    unsigned v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned)(s.p[i] - '0');
    }
    if (v > MSG_MAX_DB) {
        return -1;
    }
    *db = v;
    return 0;
}

int msg_decode_request(const struct kv_slice *argv, size_t argc, struct msg_request *out,
                       char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (argc < 2 || !msg_word_is(argv[0], MSG_COMMAND)) {
        return msg_fail(err, errlen, MSG_INVALID, "not a " MSG_COMMAND " message");
    }
    if (msg_word_is(argv[1], "READ")) {
        out->verb = MSG_READ;
        if (argc < 4 || argc - 3 > MSG_MAX_KEYS) {
            return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " READ: 1..%d keys", MSG_MAX_KEYS);
        }
    } else if (msg_word_is(argv[1], "WRITE")) {
        out->verb = MSG_WRITE;
        if (argc != 5) {
            return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " WRITE: wrong number of arguments");
        }
    } else if (msg_word_is(argv[1], "MWRITE")) {
        out->verb = MSG_MWRITE;
        if (argc < 5 || (argc - 3) % 2 != 0 || (argc - 3) / 2 > MSG_MAX_KEYS) {
            return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " MWRITE: 1..%d key, record pairs",
                        MSG_MAX_KEYS);
        }
    } else {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND ": unknown verb");
    }
    if (msg_parse_db(argv[2], &out->db) != 0) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND ": bad db");
    }
    out->keys = argv + 3;
    if (out->verb == MSG_READ) {
        out->nkeys = argc - 3;
        return MSG_OK;
    }
    if (out->verb == MSG_MWRITE) {
        out->nkeys = (argc - 3) / 2;
        for (size_t i = 0; i < out->nkeys; i++) {
            struct msg_record rec;
            const struct kv_slice *r = &argv[4 + 2 * i];
            if (msg_record_parse(r->p, r->len, &rec) != MSG_OK) {
                return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " MWRITE: bad record %zu", i);
            }
        }
        return MSG_OK;
    }
    out->nkeys = 1;
    if (msg_record_parse(argv[4].p, argv[4].len, &out->rec) != MSG_OK) {
        return msg_fail(err, errlen, MSG_INVALID, MSG_COMMAND " WRITE: bad record");
    }
    return MSG_OK;
}

/* ---- replies ---- */

void msg_buf_put(struct msg_buf *b, const void *p, size_t n) {
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->len < n) {
            cap *= 2;
        }
        b->p = cl_realloc(b->p, cap);
        b->cap = cap;
    }
    if (n) {
        memcpy(b->p + b->len, p, n);
    }
    b->len += n;
}

void msg_buf_bulk_header(struct msg_buf *b, size_t n) {
    char h[32];
    int k = snprintf(h, sizeof h, "$%zu\r\n", n);
    msg_buf_put(b, h, (size_t)k);
}

void msg_buf_bulk(struct msg_buf *b, const void *p, size_t n) {
    msg_buf_bulk_header(b, n);
    msg_buf_put(b, p, n);
    msg_buf_put(b, "\r\n", 2);
}

static void buf_printf(struct msg_buf *b, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    msg_buf_put(b, tmp, (size_t)n);
}

void msg_reply_read_begin(struct msg_buf *b, size_t n) {
    buf_printf(b, "*%zu\r\n", n);
}

void msg_reply_read_item(struct msg_buf *b, const struct msg_item *item) {
    if (!item->found) {
        msg_buf_put(b, "$-1\r\n", 5);
        return;
    }
    unsigned char hdr[MSG_REC_HDR];
    msg_record_header(&item->rec, hdr);
    buf_printf(b, "$%zu\r\n", MSG_REC_HDR + item->rec.vlen);
    msg_buf_put(b, hdr, sizeof hdr);
    msg_buf_put(b, item->rec.val, item->rec.vlen);
    msg_buf_put(b, "\r\n", 2);
}

void msg_reply_read(struct msg_buf *b, const struct msg_item *items, size_t n) {
    msg_reply_read_begin(b, n);
    for (size_t i = 0; i < n; i++) {
        msg_reply_read_item(b, &items[i]);
    }
}

void msg_reply_write(struct msg_buf *b, int applied) {
    msg_buf_put(b, applied ? ":1\r\n" : ":0\r\n", 4);
}

void msg_reply_error(struct msg_buf *b, const char *text) {
    msg_buf_put(b, "-ERR ", 5);
    for (const char *c = text; *c; c++) {
        char ch = (*c == '\r' || *c == '\n') ? ' ' : *c;
        msg_buf_put(b, &ch, 1);
    }
    msg_buf_put(b, "\r\n", 2);
}

void msg_argv_to_resp(const struct msg_argv *a, struct msg_buf *b) {
    buf_printf(b, "*%d\r\n", a->argc);
    for (int i = 0; i < a->argc; i++) {
        buf_printf(b, "$%zu\r\n", a->argvlen[i]);
        msg_buf_put(b, a->argv[i], a->argvlen[i]);
        msg_buf_put(b, "\r\n", 2);
    }
}

void msg_buf_free(struct msg_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int remote_error(const redisReply *r, char *err, size_t errlen) {
    int n = r->len > 200 ? 200 : (int)r->len;
    return msg_fail(err, errlen, MSG_REMOTE, "%.*s", n, r->str ? r->str : "");
}

int msg_decode_read_reply(const redisReply *r, size_t nkeys, struct msg_item *items,
                          char *err, size_t errlen) {
    if (r == NULL) {
        return msg_fail(err, errlen, MSG_INVALID, "no reply");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return remote_error(r, err, errlen);
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != nkeys) {
        return msg_fail(err, errlen, MSG_INVALID, "READ reply: not an array of %zu items", nkeys);
    }
    for (size_t i = 0; i < nkeys; i++) {
        const redisReply *e = r->element[i];
        memset(&items[i], 0, sizeof items[i]);
        if (e == NULL) {
            return msg_fail(err, errlen, MSG_INVALID, "READ reply: missing item %zu", i);
        }
        if (e->type == REDIS_REPLY_NIL) {
            continue;
        }
        if (e->type != REDIS_REPLY_STRING ||
            msg_record_parse(e->str, (size_t)e->len, &items[i].rec) != MSG_OK) {
            return msg_fail(err, errlen, MSG_INVALID, "READ reply: bad record at item %zu", i);
        }
        items[i].found = 1;
    }
    return MSG_OK;
}

int msg_decode_write_reply(const redisReply *r, int *applied, char *err, size_t errlen) {
    if (r == NULL) {
        return msg_fail(err, errlen, MSG_INVALID, "no reply");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return remote_error(r, err, errlen);
    }
    if (r->type != REDIS_REPLY_INTEGER || (r->integer != 0 && r->integer != 1)) {
        return msg_fail(err, errlen, MSG_INVALID, "WRITE reply: not :0 or :1");
    }
    *applied = (int)r->integer;
    return MSG_OK;
}

int msg_decode_mwrite_reply(const redisReply *r, size_t n, int *applied, char *err,
                            size_t errlen) {
    if (r == NULL) {
        return msg_fail(err, errlen, MSG_INVALID, "no reply");
    }
    if (r->type == REDIS_REPLY_ERROR) {
        return remote_error(r, err, errlen);
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        return msg_fail(err, errlen, MSG_INVALID, "MWRITE reply: not an array of %zu items", n);
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *e = r->element[i];
        if (e == NULL || e->type != REDIS_REPLY_INTEGER || (e->integer != 0 && e->integer != 1)) {
            return msg_fail(err, errlen, MSG_INVALID, "MWRITE reply: item %zu not :0 or :1", i);
        }
        applied[i] = (int)e->integer;
    }
    return MSG_OK;
}
