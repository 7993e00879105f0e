/* proto/resp.h: the RESP wire protocol, pure. An incremental request parser (RESP2
 * multibulk and inline commands), the sdssplitargs word splitter that inline
 * commands and kv.conf lines share, a reply writer for every RESP3 type with RESP2
 * down-conversion, and the number conversions replies and arguments need
 * (resp_ll2str, resp_str2ll, resp_d2str, ...: Redis's exact formats).
 *
 * This module does no I/O, holds no globals and includes no server or libevent
 * header: bytes go in, parsed commands come out; replies go into a struct resp_out
 * that the caller drains to its socket (resp_out_iov / resp_out_consume).
 * Memory comes from malloc (jemalloc in kvd); allocation failure aborts.
 */
#ifndef KVD_RESP_H
#define KVD_RESP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* A borrowed byte range; valid as long as its owner says. */
struct kv_slice {
    const char *p;
    size_t len;
};

/* ------------------------------------------------------------------------------
 * Request parser
 * ------------------------------------------------------------------------------ */

enum resp_status {
    RESP_OK = 0,         /* one whole command parsed */
    RESP_AGAIN = 1,      /* need more bytes: not an error */
    RESP_ERR_PROTO = -1, /* protocol error: reply once with p->err, then close */
};

struct resp_limits {
    long long max_bulk_len;      /* proto-max-bulk-len (Redis: 512 MB) */
    long long max_multibulk_len; /* most arguments in one command (Redis: 1024*1024) */
    size_t max_inline_len;       /* longest inline command line (Redis: 64 KiB) */
};

/* Parser state for one connection. Fields are private to proto/resp_parse.c except
 * argc/argv after RESP_OK and err after RESP_ERR_PROTO. */
struct resp_parser {
    struct resp_limits lim;
    /* results */
    int argc;              /* after RESP_OK: number of arguments */
    struct kv_slice *argv; /* after RESP_OK: arguments, pointing into the buffer
                              given to resp_parse; valid until that buffer changes.
                              Exception: an inline command with quotes has its
                              unescaped arguments in the parser's own scratch
                              memory, valid until the next resp_parse/reset. */
    char err[128];         /* after RESP_ERR_PROTO: "Protocol error: ..." (no "ERR ") */
    /* private progress state, kept between RESP_AGAIN calls */
    int argv_cap;
    size_t *arg_off;       /* offsets of arguments from the command start */
    long long mb_len;      /* declared multibulk length, -1 before the header */
    long long bulk_len;    /* declared length of the current bulk, -1 before it */
    size_t pos;            /* offset from the command start parsed so far */
    int kind;              /* 0 unknown, 1 multibulk, 2 inline, 3 failed (sticky) */
    /* Added by the implementation (proto/resp_parse.c), private as well: */
    size_t scan;           /* offset already searched for a line end, so a header or
                              inline line arriving byte by byte is scanned once */
    size_t want;           /* after RESP_AGAIN: bytes still missing from a bulk */
    char *scratch;         /* unescaped inline arguments written with quotes */
    size_t scratch_cap;
};

/* Initialises a parser with the given limits. */
void resp_parser_init(struct resp_parser *p, const struct resp_limits *lim);

/* Frees the parser's arrays; the parser may be re-initialised afterwards. */
void resp_parser_deinit(struct resp_parser *p);

/* Parses the next command from buf[0..len), where buf starts at the first byte of a
 * command not yet returned. Returns:
 *   RESP_OK:        p->argc/p->argv hold the command; *consumed is its total length in
 *                   bytes. An empty command (a blank inline line or "*0\r\n", which
 *                   Redis skips) is returned as RESP_OK with argc == 0.
 *   RESP_AGAIN:     the command is incomplete; call again with the same start and more
 *                   bytes (the buffer may have moved: progress is kept as offsets).
 *   RESP_ERR_PROTO: p->err says why, in Redis's words, e.g. "Protocol error: invalid
 *                   bulk length". The connection should be answered once and closed.
 * Never reads past buf[len-1]; allocation is bounded by what has arrived, never by a
 * declared length. */
int resp_parse(struct resp_parser *p, const char *buf, size_t len, size_t *consumed);

/* How many more bytes the command in progress needs at least (0 when unknown): lets
 * the caller size its read buffer once for a large bulk. */
size_t resp_parser_want(const struct resp_parser *p);

/* Resets progress (e.g. after the caller discarded its buffer); limits are kept. */
void resp_parser_reset(struct resp_parser *p);

/* Splits line[0..n) into words as Redis's sdssplitargs does (inline commands,
 * redis.conf lines): blanks separate words; "..." understands \n \r \t \b \a
 * \xHH and \<any> (that byte itself), '...' understands only \'; a closing quote
 * must be followed by a blank or the end; a quote may open inside a word (a"b c" is
 * the one word "ab c"). The unescaped words are written back to back into out
 * (room for n bytes: never longer than the line), and emit(arg, off, len) is called
 * for each, off being relative to out. Returns the number of words, or -1 on
 * unbalanced quotes (words emitted before the error stay emitted). Pure: no
 * allocation. */
int resp_split_args(const char *line, size_t n, char *out,
                    void (*emit)(void *arg, size_t off, size_t len), void *arg);

/* ------------------------------------------------------------------------------
 * Reply writer
 *
 * A struct resp_out is an append-only byte queue: a fixed inline buffer, then a list
 * of larger blocks. Writers append encoded replies; the owner drains it with
 * resp_out_iov + resp_out_consume. `proto` (2 or 3) chooses the encoding of the
 * RESP3-only types; RESP2 down-conversion follows Redis:
 *   null -> $-1 (resp_write_null) or *-1 (resp_write_null_array)
 *   map of n pairs -> array of 2n; set and push -> array; double -> bulk string;
 *   boolean -> integer 1/0; verbatim -> bulk string (without the "txt:" prefix);
 *   big number -> bulk string.
 * ------------------------------------------------------------------------------ */

#define RESP_OUT_INLINE 16384

struct resp_block; /* private */

struct resp_out {
    int proto;                 /* 2 or 3 */
    size_t len;                /* bytes used in buf */
    size_t sent;               /* bytes of buf already consumed */
    size_t pending;            /* total bytes queued and not consumed */
    struct resp_block *head;   /* overflow blocks, in order */
    struct resp_block *tail;
    char buf[RESP_OUT_INLINE];
};

void resp_out_init(struct resp_out *o, int proto);
void resp_out_deinit(struct resp_out *o); /* frees blocks; o may be re-initialised */

/* Bytes queued and not yet consumed. */
static inline size_t resp_out_pending(const struct resp_out *o) {
    return o->pending;
}

/* Fills at most max iovecs with the queued bytes in order; returns how many. */
int resp_out_iov(const struct resp_out *o, struct iovec *iov, int max);

/* Marks n bytes (n <= pending) as written to the socket; frees drained blocks. */
void resp_out_consume(struct resp_out *o, size_t n);

/* Appends raw, already encoded bytes. */
void resp_write_raw(struct resp_out *o, const void *p, size_t len);

void resp_write_simple(struct resp_out *o, const char *s, size_t len);  /* +s */
/* -msg: msg starts with its code ("ERR ...", "WRONGTYPE ..."); CR/LF in msg are
 * replaced by spaces so the reply stays one line. */
void resp_write_error(struct resp_out *o, const char *msg, size_t len);
void resp_write_int(struct resp_out *o, long long v);                   /* :v */
void resp_write_bulk(struct resp_out *o, const void *p, size_t len);    /* $len */
void resp_write_null(struct resp_out *o);        /* RESP3 _   RESP2 $-1 */
void resp_write_null_array(struct resp_out *o);  /* RESP3 _   RESP2 *-1 */
void resp_write_array(struct resp_out *o, long long n);
void resp_write_map(struct resp_out *o, long long npairs);
void resp_write_set(struct resp_out *o, long long n);
void resp_write_push(struct resp_out *o, long long n);
void resp_write_double(struct resp_out *o, double d);   /* inf/-inf/nan as Redis */
void resp_write_bool(struct resp_out *o, int b);
/* RESP3 =len\r\nfmt:text; fmt is three characters such as "txt" or "mkd". */
void resp_write_verbatim(struct resp_out *o, const char *fmt, const void *p, size_t len);
void resp_write_bignum(struct resp_out *o, const char *digits, size_t len);

/* Deferred aggregate length, for replies whose element count is known only after
 * the elements are written. resp_defer reserves a place and returns a handle;
 * resp_defer_set fills it with the header of the given type and count. Every handle
 * must be set before the bytes after it are drained (resp_out_iov stops at an unset
 * handle). */
enum resp_agg { RESP_AGG_ARRAY, RESP_AGG_MAP, RESP_AGG_SET, RESP_AGG_PUSH };
typedef struct resp_defer_handle *resp_defer_t;
resp_defer_t resp_defer(struct resp_out *o);
void resp_defer_set(struct resp_out *o, resp_defer_t h, enum resp_agg type, long long n);

/* Number formatting helpers shared by the reply writer and the server. Each writes
 * a NUL-terminated string into dst and returns its length (0 and "" only when cap
 * is below 32). resp_ll2str needs 32 bytes; resp_d2str never needs more than 32
 * (128 is a comfortable size). resp_ld2str writes fixed notation as Redis does,
 * so a large value such as 1e300 has hundreds of digits: with RESP_LDSTR_MAX bytes
 * it always matches Redis; with less (128 is enough for everything else) a value
 * whose fixed notation does not fit comes out as %.17Lg ("1e+300"). */
#define RESP_LDSTR_MAX 5120
int resp_ll2str(char *dst, long long v);
/* Redis's %.17g rendering for RESP doubles ("inf", "-inf", "nan" spelled as Redis). */
int resp_d2str(char *dst, size_t cap, double d);
/* Redis's long double rendering used by INCRBYFLOAT/HINCRBYFLOAT: fixed notation,
 * no exponent, trailing zeros removed ("3.0e3" -> "3000", "1.5" -> "1.5"). */
int resp_ld2str(char *dst, size_t cap, long double v);

/* Strict number parsing as Redis does it. Return 0 on success, -1 on any error
 * (*out untouched).
 * resp_str2ll (Redis string2ll): optional '-', then digits with no leading zero
 * except the whole string "0"; no '+', no spaces, no "-0", within range
 * (LLONG_MIN and LLONG_MAX are accepted).
 * resp_str2ld / resp_str2d (Redis string2ld / string2d): strtold / strtod over the
 * whole string, so "+1", "1e3", "0x10", "inf", "-inf" are accepted; rejected are
 * the empty string, a leading space, trailing bytes, nan, overflow to +-inf and
 * underflow to zero (a denormal result is kept), and strings of RESP_LDSTR_MAX
 * bytes or more. */
int resp_str2ll(const char *s, size_t len, long long *out);
int resp_str2ld(const char *s, size_t len, long double *out); /* rejects nan */
int resp_str2d(const char *s, size_t len, double *out);       /* rejects nan */

/* The value of hex digit c (0-9, a-f, A-F), or -1: inline arguments' "\xNN"
 * escapes here, the cluster's hex-encoded proofs (cluster/auth.c). */
static inline int resp_hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

#endif
