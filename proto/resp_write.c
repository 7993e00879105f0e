/* proto/resp_write.c: the reply writer, struct resp_out.
 *
 * Encodes replies (every RESP3 type, down-converted for RESP2 clients as resp.h
 * lists) into a byte queue that the owner drains with writev. It leaves to the
 * caller: the socket, when to write, output-buffer limits (resp_out_pending tells
 * the size), and which reply a command gives.
 *
 * HOW IT WORKS. The queue is the inline buffer o->buf, then a doubly linked list
 * of heap blocks. Bytes go into o->buf while no block exists; once one does, they
 * go to the tail block (a new one of RESP_BLOCK_SIZE bytes, or exactly the size of
 * a bigger write, when the tail is full), so order is kept. Draining frees blocks
 * and rewinds o->buf once it is empty, so a connection in a steady
 * request/reply rhythm writes only into its inline buffer: a small reply is one
 * bounds check and a couple of memcpy's, headers are formatted in place.
 *
 * Deferred lengths: resp_defer appends a placeholder block (room for one header)
 * marked unset, and later bytes go to blocks after it. resp_out_iov stops at the
 * first unset block, so nothing after a missing header can reach the socket.
 * resp_defer_set formats the header, then keeps the queue compact the way Redis
 * does: the header goes at the end of the block before the placeholder (or o->buf)
 * if it has room, and the block after it joins too when it fits, so a small
 * deferred reply written into an empty queue ends up back in o->buf; otherwise the
 * header is put in front of a small next block, or finally kept in the placeholder.
 * Example: buf "*2\r\n" | P(unset) | B "$1\r\na\r\n$1\r\nb\r\n" ; set P to 2 ->
 *          buf "*2\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n", P and B freed.
 */
#include "proto/resp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp_int.h"

#define RESP_BLOCK_SIZE 16384   /* an ordinary overflow block */
#define RESP_BLOCK_SLACK 64     /* extra room in a block sized for one big write */
#define RESP_SMALL_COPY 1024    /* a payload this small is written contiguously */
#define RESP_PREPEND_MAX 4096   /* most bytes moved to put a header in front */

struct resp_block {
    struct resp_block *next;
    struct resp_block *prev;
    size_t cap;   /* bytes of data[] */
    size_t used;  /* bytes written into data[] */
    size_t sent;  /* bytes of data[] consumed */
    int unset;    /* a resp_defer placeholder whose header is not written yet */
    char data[];
};

void resp_out_init(struct resp_out *o, int proto) {
    o->proto = proto;
    o->len = 0;
    o->sent = 0;
    o->pending = 0;
    o->head = NULL;
    o->tail = NULL;
}

void resp_out_deinit(struct resp_out *o) {
    struct resp_block *b = o->head;
    while (b != NULL) {
        struct resp_block *next = b->next;
        free(b);
        b = next;
    }
    o->head = NULL;
    o->tail = NULL;
    o->len = 0;
    o->sent = 0;
    o->pending = 0;
}

/* ---- the queue ------------------------------------------------------------ */

static struct resp_block *block_append(struct resp_out *o, size_t cap) {
    struct resp_block *b = resp_xmalloc(sizeof(*b) + cap);
    b->next = NULL;
    b->prev = o->tail;
    b->cap = cap;
    b->used = 0;
    b->sent = 0;
    b->unset = 0;
    if (o->tail != NULL) {
        o->tail->next = b;
    } else {
        o->head = b;
    }
    o->tail = b;
    return b;
}

static void block_unlink_free(struct resp_out *o, struct resp_block *b) {
    if (b->prev != NULL) {
        b->prev->next = b->next;
    } else {
        o->head = b->next;
    }
    if (b->next != NULL) {
        b->next->prev = b->prev;
    } else {
        o->tail = b->prev;
    }
    free(b);
}

/* Where the next byte goes and how much room is there (0 when the tail is an
 * unset placeholder). */
static inline char *tail_space(struct resp_out *o, size_t *room) {
    if (o->head == NULL) {
        *room = RESP_OUT_INLINE - o->len;
        return o->buf + o->len;
    }
    struct resp_block *t = o->tail;
    *room = t->unset ? 0 : t->cap - t->used;
    return t->data + t->used;
}

static char *reserve_slow(struct resp_out *o, size_t need) {
    size_t room;
    char *dst = tail_space(o, &room);
    if (room >= need) {
        return dst;
    }
    size_t cap = need > RESP_BLOCK_SIZE ? need + RESP_BLOCK_SLACK : RESP_BLOCK_SIZE;
    return block_append(o, cap)->data;
}

/* Returns room for `need` contiguous bytes at the end of the queue; the caller
 * writes up to need bytes there and then calls commit with how many it wrote. */
static inline char *reserve(struct resp_out *o, size_t need) {
    if (o->head == NULL && RESP_OUT_INLINE - o->len >= need) {
        return o->buf + o->len;
    }
    return reserve_slow(o, need);
}

static inline void commit(struct resp_out *o, size_t n) {
    if (o->head == NULL) {
        o->len += n;
    } else {
        o->tail->used += n;
    }
    o->pending += n;
}

/* Appends n bytes of any size: what fits in the current space, the rest in one
 * new block sized for it. */
static void append(struct resp_out *o, const char *p, size_t n) {
    size_t room;
    char *dst = tail_space(o, &room);
    if (room >= n) {
        memcpy(dst, p, n);
        commit(o, n);
        return;
    }
    if (room > 0) {
        memcpy(dst, p, room);
        commit(o, room);
        p += room;
        n -= room;
    }
    dst = reserve_slow(o, n);
    memcpy(dst, p, n);
    commit(o, n);
}

/* Formats "<type><n>\r\n" at dst; returns its length (at most RESP_HDR_MAX-1). */
static inline size_t format_header(char *dst, char type, long long n) {
    dst[0] = type;
    size_t k = 1 + (size_t)resp_i2digits(dst + 1, n);
    dst[k] = '\r';
    dst[k + 1] = '\n';
    return k + 2;
}

static inline void write_header(struct resp_out *o, char type, long long n) {
    char *d = reserve(o, RESP_HDR_MAX);
    commit(o, format_header(d, type, n));
}

/* <type><payload>\r\n, for simple strings, doubles and big numbers. */
static void write_line(struct resp_out *o, char type, const char *p, size_t len) {
    if (len <= RESP_SMALL_COPY) {
        char *d = reserve(o, len + 3);
        d[0] = type;
        memcpy(d + 1, p, len);
        d[len + 1] = '\r';
        d[len + 2] = '\n';
        commit(o, len + 3);
        return;
    }
    append(o, &type, 1);
    append(o, p, len);
    append(o, "\r\n", 2);
}

int resp_out_iov(const struct resp_out *o, struct iovec *iov, int max) {
    int n = 0;
    if (max <= 0) {
        return 0;
    }
    if (o->len > o->sent) {
        iov[n].iov_base = (void *)(o->buf + o->sent);
        iov[n].iov_len = o->len - o->sent;
        n++;
    }
    for (const struct resp_block *b = o->head; b != NULL && n < max; b = b->next) {
        if (b->unset) {
            break;
        }
        if (b->used > b->sent) {
            iov[n].iov_base = (void *)(b->data + b->sent);
            iov[n].iov_len = b->used - b->sent;
            n++;
        }
    }
    return n;
}

void resp_out_consume(struct resp_out *o, size_t n) {
    if (n > o->pending) {
        fprintf(stderr, "proto: resp_out_consume(%zu) with %zu pending\n", n, o->pending);
        abort();
    }
    o->pending -= n;
    size_t inbuf = o->len - o->sent;
    size_t take = n < inbuf ? n : inbuf;
    o->sent += take;
    n -= take;
    if (o->sent == o->len) {
        o->len = 0; /* rewind: blocks, if any, still come after buf */
        o->sent = 0;
    }
    while (o->head != NULL && !o->head->unset) {
        struct resp_block *b = o->head;
        size_t avail = b->used - b->sent;
        take = n < avail ? n : avail;
        b->sent += take;
        n -= take;
        if (b->sent < b->used) {
            break;
        }
        block_unlink_free(o, b);
    }
    if (n > 0) {
        fprintf(stderr, "proto: resp_out_consume past an unset deferred length\n");
        abort();
    }
}

/* ---- replies -------------------------------------------------------------- */

void resp_write_raw(struct resp_out *o, const void *p, size_t len) {
    append(o, p, len);
}

void resp_write_simple(struct resp_out *o, const char *s, size_t len) {
    write_line(o, '+', s, len);
}

void resp_write_error(struct resp_out *o, const char *msg, size_t len) {
    char chunk[256];
    append(o, "-", 1);
    while (len > 0) {
        size_t n = len < sizeof(chunk) ? len : sizeof(chunk);
        memcpy(chunk, msg, n);
        for (size_t i = 0; i < n; i++) {
            if (chunk[i] == '\r' || chunk[i] == '\n') {
                chunk[i] = ' ';
            }
        }
        append(o, chunk, n);
        msg += n;
        len -= n;
    }
    append(o, "\r\n", 2);
}

void resp_write_int(struct resp_out *o, long long v) {
    write_header(o, ':', v);
}

void resp_write_bulk(struct resp_out *o, const void *p, size_t len) {
    if (len <= RESP_SMALL_COPY) {
        char *d = reserve(o, RESP_HDR_MAX + len + 2);
        size_t k = format_header(d, '$', (long long)len);
        memcpy(d + k, p, len);
        d[k + len] = '\r';
        d[k + len + 1] = '\n';
        commit(o, k + len + 2);
        return;
    }
    write_header(o, '$', (long long)len);
    append(o, p, len);
    append(o, "\r\n", 2);
}

void resp_write_null(struct resp_out *o) {
    if (o->proto == 3) {
        append(o, "_\r\n", 3);
    } else {
        append(o, "$-1\r\n", 5);
    }
}

void resp_write_null_array(struct resp_out *o) {
    if (o->proto == 3) {
        append(o, "_\r\n", 3);
    } else {
        append(o, "*-1\r\n", 5);
    }
}

/* The header of an aggregate in o's protocol: RESP2 has only arrays, and a map
 * of n pairs is an array of 2n elements there. */
static size_t format_aggregate(const struct resp_out *o, char *dst, enum resp_agg type,
                               long long n) {
    if (o->proto == 3) {
        static const char types[] = {'*', '%', '~', '>'}; /* by enum resp_agg */
        return format_header(dst, types[type], n);
    }
    return format_header(dst, '*', type == RESP_AGG_MAP ? n * 2 : n);
}

static void write_aggregate(struct resp_out *o, enum resp_agg type, long long n) {
    char *d = reserve(o, RESP_HDR_MAX);
    commit(o, format_aggregate(o, d, type, n));
}

void resp_write_array(struct resp_out *o, long long n) {
    write_header(o, '*', n);
}

void resp_write_map(struct resp_out *o, long long npairs) {
    write_aggregate(o, RESP_AGG_MAP, npairs);
}

void resp_write_set(struct resp_out *o, long long n) {
    write_aggregate(o, RESP_AGG_SET, n);
}

void resp_write_push(struct resp_out *o, long long n) {
    write_aggregate(o, RESP_AGG_PUSH, n);
}

void resp_write_double(struct resp_out *o, double d) {
    char s[64];
    int n = resp_d2str(s, sizeof(s), d);
    if (o->proto == 3) {
        write_line(o, ',', s, (size_t)n);
    } else {
        resp_write_bulk(o, s, (size_t)n);
    }
}

void resp_write_bool(struct resp_out *o, int b) {
    if (o->proto == 3) {
        append(o, b ? "#t\r\n" : "#f\r\n", 4);
    } else {
        append(o, b ? ":1\r\n" : ":0\r\n", 4);
    }
}

void resp_write_verbatim(struct resp_out *o, const char *fmt, const void *p, size_t len) {
    if (o->proto != 3) {
        resp_write_bulk(o, p, len);
        return;
    }
    char *d = reserve(o, RESP_HDR_MAX + 4);
    size_t k = format_header(d, '=', (long long)len + 4);
    memcpy(d + k, fmt, 3);
    d[k + 3] = ':';
    commit(o, k + 4);
    append(o, p, len);
    append(o, "\r\n", 2);
}

void resp_write_bignum(struct resp_out *o, const char *digits, size_t len) {
    if (o->proto == 3) {
        write_line(o, '(', digits, len);
    } else {
        resp_write_bulk(o, digits, len);
    }
}

/* ---- deferred aggregate lengths ------------------------------------------- */

resp_defer_t resp_defer(struct resp_out *o) {
    struct resp_block *b = block_append(o, RESP_HDR_MAX);
    b->unset = 1;
    return (resp_defer_t)(void *)b;
}

void resp_defer_set(struct resp_out *o, resp_defer_t h, enum resp_agg type, long long n) {
    struct resp_block *b = (struct resp_block *)(void *)h;
    char hdr[RESP_HDR_MAX];
    size_t hl = format_aggregate(o, hdr, type, n);
    struct resp_block *prev = b->prev, *next = b->next;
    b->unset = 0;
    o->pending += hl;

    /* 1. At the end of what precedes the placeholder, then pull the next block
     *    in too if it fits; the placeholder goes away. */
    char *dst = NULL;
    size_t room = 0;
    if (prev == NULL) {
        dst = o->buf + o->len;
        room = RESP_OUT_INLINE - o->len;
    } else if (!prev->unset) {
        dst = prev->data + prev->used;
        room = prev->cap - prev->used;
    }
    if (dst != NULL && room >= hl) {
        size_t moved = hl;
        memcpy(dst, hdr, hl);
        if (next != NULL && !next->unset && room - hl >= next->used) {
            memcpy(dst + hl, next->data, next->used); /* next->sent is 0 */
            moved += next->used;
            block_unlink_free(o, next);
        }
        if (prev == NULL) {
            o->len += moved;
        } else {
            prev->used += moved;
        }
        block_unlink_free(o, b);
        return;
    }
    /* 2. In front of a small next block. */
    if (next != NULL && !next->unset && next->cap - next->used >= hl &&
        next->used <= RESP_PREPEND_MAX) {
        memmove(next->data + hl, next->data, next->used);
        memcpy(next->data, hdr, hl);
        next->used += hl;
        block_unlink_free(o, b);
        return;
    }
    /* 3. In the placeholder itself. */
    memcpy(b->data, hdr, hl);
    b->used = hl;
}
