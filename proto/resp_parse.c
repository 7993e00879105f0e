/* proto/resp_parse.c: the incremental RESP2 request parser.
 *
 * Turns the bytes a client sent into commands (argc/argv), one resp_parse call per
 * command, accepting Redis's two request forms:
 *   multibulk  *<n>\r\n then n times $<len>\r\n<len bytes>\r\n   (what clients send)
 *   inline     words separated by blanks, ending with \n           (telnet, redis-cli)
 * A request is multibulk when its first byte is '*', inline otherwise, as in Redis.
 *
 * It leaves to the caller: reading from the socket, keeping the query buffer,
 * the client-query-buffer-limit, and what to do with a command or an error.
 *
 * HOW IT WORKS. The caller passes buf = the first byte of the command not yet
 * returned, and len = everything it has after it. Progress between calls is kept
 * as offsets from that first byte (never pointers), so the caller may append to or
 * move its buffer between calls:
 *   pos      end of what is fully parsed (headers and whole bulks);
 *   scan     how far a line end has been searched for, so a header or inline line
 *            that arrives one byte at a time is still scanned once;
 *   mb_len   the declared argument count, -1 until the *<n> header is parsed;
 *   bulk_len the length of the bulk being read, -1 until its $<len> header is.
 * Argument i is remembered as (arg_off[i], argv[i].len); the argv pointers are
 * filled in only when the command is complete, from the buffer of the last call.
 * Example, "*1\r\n$4\r\nPING\r\n" fed in two calls:
 *   call 1 "*1\r\n$4\r\nPI"    -> mb_len 1, pos 8, bulk_len 4: RESP_AGAIN, want 4
 *   call 2 all 14 bytes        -> argv[0] = buf+8 len 4, consumed 14: RESP_OK
 *
 * Allocation follows the bytes that arrived, never a declared length: argv starts
 * at RESP_ARGV_INIT slots and doubles when an argument arrives that does not fit,
 * so "*1048576\r\n" alone costs nothing more. Nothing is allocated on the hot path
 * once argv has grown to the connection's usual command size.
 *
 * Line ends: Redis looks for the '\r' of a header and then skips two bytes without
 * looking at the second one, and skips the two bytes after a bulk unread. kvd is
 * stricter: a header's '\r' must be followed by '\n' (else the header is not a
 * valid number, with Redis's message for that), and a bulk must be followed by
 * "\r\n" ("Protocol error: expected CRLF after bulk"). Real clients never notice.
 */
#include "proto/resp.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "proto/resp_int.h"

#define RESP_ARGV_INIT 8          /* argv slots of a fresh parser */
#define RESP_ARGV_KEEP 1024       /* argv larger than this shrinks after use */
#define RESP_SCRATCH_KEEP 4096    /* same for the inline unescaping scratch */
#define RESP_HDR_LINE_MAX (64 * 1024) /* Redis's PROTO_INLINE_MAX_SIZE */

enum { KIND_NONE = 0, KIND_MULTIBULK = 1, KIND_INLINE = 2, KIND_FAILED = 3 };

static void set_argv_cap(struct resp_parser *p, int cap) {
    p->argv = resp_xrealloc(p->argv, (size_t)cap * sizeof(*p->argv));
    p->arg_off = resp_xrealloc(p->arg_off, (size_t)cap * sizeof(*p->arg_off));
    p->argv_cap = cap;
}

void resp_parser_init(struct resp_parser *p, const struct resp_limits *lim) {
    memset(p, 0, sizeof(*p));
    p->lim = *lim;
    set_argv_cap(p, RESP_ARGV_INIT);
    p->mb_len = -1;
    p->bulk_len = -1;
}

void resp_parser_deinit(struct resp_parser *p) {
    free(p->argv);
    free(p->arg_off);
    free(p->scratch);
    p->argv = NULL;
    p->arg_off = NULL;
    p->scratch = NULL;
    p->argv_cap = 0;
    p->scratch_cap = 0;
    p->argc = 0;
}

void resp_parser_reset(struct resp_parser *p) {
    p->argc = 0;
    p->mb_len = -1;
    p->bulk_len = -1;
    p->pos = 0;
    p->scan = 0;
    p->want = 0;
    p->kind = KIND_NONE;
    p->err[0] = '\0';
}

size_t resp_parser_want(const struct resp_parser *p) {
    return p->want;
}

static int fail(struct resp_parser *p, const char *what) {
    snprintf(p->err, sizeof(p->err), "Protocol error: %s", what);
    p->kind = KIND_FAILED;
    p->want = 0;
    return RESP_ERR_PROTO;
}

/* Makes room for one more argument. Called only when an argument has arrived, so
 * the doubling is paid for by bytes received; never beyond what the header
 * declared (inline commands pass INT_MAX). */
static void grow_argv(struct resp_parser *p, long long declared) {
    long long cap = (long long)p->argv_cap * 2;
    if (cap > declared) {
        cap = declared;
    }
    if (cap <= p->argv_cap) {
        cap = (long long)p->argv_cap + 1;
    }
    set_argv_cap(p, (int)cap);
}

static int done(struct resp_parser *p, const char *buf, size_t consumed_len,
                size_t *consumed) {
    for (int i = 0; i < p->argc; i++) {
        p->argv[i].p = buf + p->arg_off[i];
    }
    *consumed = consumed_len;
    p->kind = KIND_NONE;
    p->mb_len = -1;
    p->bulk_len = -1;
    p->pos = 0;
    p->scan = 0;
    p->want = 0;
    return RESP_OK;
}

/* Finds the '\r' ending the header line that starts at buf+from. Returns its
 * offset, or (size_t)-1 when the line is not complete yet (the '\r' or the byte
 * after it has not arrived). p->scan remembers how far the search got. */
static size_t find_header_end(struct resp_parser *p, const char *buf, size_t len,
                              size_t from) {
    size_t start = p->scan > from ? p->scan : from;
    const char *cr = start < len ? memchr(buf + start, '\r', len - start) : NULL;
    if (cr == NULL) {
        p->scan = len;
        return (size_t)-1;
    }
    size_t off = (size_t)(cr - buf);
    p->scan = off; /* resume at the '\r' until the byte after it arrives */
    if (off + 1 >= len) {
        return (size_t)-1;
    }
    return off;
}

static int parse_multibulk(struct resp_parser *p, const char *buf, size_t len,
                           size_t *consumed) {
    long long ll;
    if (p->mb_len < 0) {
        size_t cr = find_header_end(p, buf, len, 0);
        if (cr == (size_t)-1 ? p->scan > RESP_HDR_LINE_MAX : cr > RESP_HDR_LINE_MAX) {
            return fail(p, "too big mbulk count string");
        }
        if (cr == (size_t)-1) {
            return RESP_AGAIN;
        }
        if (buf[cr + 1] != '\n' || resp_parse_ll(buf + 1, cr - 1, &ll) != 0 ||
            ll > p->lim.max_multibulk_len || ll > INT_MAX) {
            return fail(p, "invalid multibulk length");
        }
        p->pos = cr + 2;
        if (ll <= 0) {
            return done(p, buf, p->pos, consumed); /* Redis skips *0 and *-1 */
        }
        p->mb_len = ll;
    }
    while (p->argc < p->mb_len) {
        if (p->bulk_len < 0) {
            size_t cr = find_header_end(p, buf, len, p->pos);
            if ((cr == (size_t)-1 ? p->scan : cr) - p->pos > RESP_HDR_LINE_MAX) {
                return fail(p, "too big bulk count string");
            }
            if (cr == (size_t)-1) {
                p->want = 0;
                return RESP_AGAIN;
            }
            const char *h = buf + p->pos;
            if (h[0] != '$') {
                char msg[40];
                /* Redis prints the byte as it is; a NUL would end our C string. */
                snprintf(msg, sizeof(msg), "expected '$', got '%c'", h[0] ? h[0] : ' ');
                return fail(p, msg);
            }
            if (buf[cr + 1] != '\n' ||
                resp_parse_ll(h + 1, cr - p->pos - 1, &ll) != 0 || ll < 0 ||
                ll > p->lim.max_bulk_len) {
                return fail(p, "invalid bulk length");
            }
            p->pos = cr + 2;
            p->bulk_len = ll;
        }
        size_t need = (size_t)p->bulk_len + 2;
        if (len - p->pos < need) {
            p->want = need - (len - p->pos);
            return RESP_AGAIN;
        }
        size_t end = p->pos + (size_t)p->bulk_len;
        if (buf[end] != '\r' || buf[end + 1] != '\n') {
            return fail(p, "expected CRLF after bulk");
        }
        if (p->argc == p->argv_cap) {
            grow_argv(p, p->mb_len);
        }
        p->arg_off[p->argc] = p->pos;
        p->argv[p->argc].len = (size_t)p->bulk_len;
        p->argc++;
        p->pos = end + 2;
        p->bulk_len = -1;
    }
    return done(p, buf, p->pos, consumed);
}

/* ---- inline commands ------------------------------------------------------ */

/* Blank bytes skipped between words: C's isspace in the "C" locale. */
static inline int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Bytes that end an unquoted word (Redis sdssplitargs): note \v and \f do not. */
static inline int ends_word(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}


static void add_inline_arg(struct resp_parser *p, size_t off, size_t len) {
    if (p->argc == p->argv_cap) {
        grow_argv(p, INT_MAX);
    }
    p->arg_off[p->argc] = off;
    p->argv[p->argc].len = len;
    p->argc++;
}

/* A line without quotes: words are runs of bytes between blanks, pointing into
 * the caller's buffer (the common telnet case, no copy). */
static void split_plain(struct resp_parser *p, const char *line, size_t n) {
    size_t i = 0;
    for (;;) {
        while (i < n && is_blank(line[i])) {
            i++;
        }
        if (i == n) {
            return;
        }
        size_t start = i;
        while (i < n && !ends_word(line[i])) {
            i++;
        }
        add_inline_arg(p, start, i - start);
    }
}

int resp_split_args(const char *line, size_t n, char *out,
                    void (*emit)(void *arg, size_t off, size_t len), void *arg) {
    size_t o = 0, i = 0;
    int words = 0;
    for (;;) {
        while (i < n && is_blank(line[i])) {
            i++;
        }
        if (i == n) {
            return words;
        }
        size_t start = o;
        int inq = 0, insq = 0;
        for (;;) {
            if (inq) {
                if (i == n) {
                    return -1;
                }
                char c = line[i];
                if (c == '\\' && i + 3 < n && line[i + 1] == 'x' &&
                    resp_hex_digit(line[i + 2]) >= 0 && resp_hex_digit(line[i + 3]) >= 0) {
                    out[o++] = (char)(resp_hex_digit(line[i + 2]) * 16 + resp_hex_digit(line[i + 3]));
                    i += 4;
                } else if (c == '\\' && i + 1 < n) {
                    char e = line[i + 1];
                    switch (e) {
                    case 'n': e = '\n'; break;
                    case 'r': e = '\r'; break;
                    case 't': e = '\t'; break;
                    case 'b': e = '\b'; break;
                    case 'a': e = '\a'; break;
                    default: break;
                    }
                    out[o++] = e;
                    i += 2;
                } else if (c == '"') {
                    if (i + 1 < n && !is_blank(line[i + 1])) {
                        return -1;
                    }
                    i++;
                    break;
                } else {
                    out[o++] = c;
                    i++;
                }
            } else if (insq) {
                if (i == n) {
                    return -1;
                }
                char c = line[i];
                if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
                    out[o++] = '\'';
                    i += 2;
                } else if (c == '\'') {
                    if (i + 1 < n && !is_blank(line[i + 1])) {
                        return -1;
                    }
                    i++;
                    break;
                } else {
                    out[o++] = c;
                    i++;
                }
            } else {
                if (i == n || ends_word(line[i])) {
                    break;
                }
                char c = line[i++];
                if (c == '"') {
                    inq = 1;
                } else if (c == '\'') {
                    insq = 1;
                } else {
                    out[o++] = c;
                }
            }
        }
        emit(arg, start, o - start);
        words++;
    }
}

static void emit_inline_arg(void *arg, size_t off, size_t len) {
    add_inline_arg(arg, off, len);
}

/* A line with quotes: words are unescaped into p->scratch (offsets relative to
 * it). Returns 0, or -1 on unbalanced quotes. */
static int split_quoted(struct resp_parser *p, const char *line, size_t n) {
    if (p->scratch_cap < n) {
        p->scratch = resp_xrealloc(p->scratch, n);
        p->scratch_cap = n;
    }
    return resp_split_args(line, n, p->scratch, emit_inline_arg, p) < 0 ? -1 : 0;
}

static int parse_inline(struct resp_parser *p, const char *buf, size_t len,
                        size_t *consumed) {
    size_t from = p->scan;
    const char *nl = from < len ? memchr(buf + from, '\n', len - from) : NULL;
    /* The line is too long when more than max_inline_len bytes precede its '\n',
     * whether or not the '\n' has arrived yet: the verdict never depends on how
     * the bytes were split into reads (Redis checks only while waiting). */
    size_t before_nl = nl == NULL ? len : (size_t)(nl - buf);
    if (before_nl > p->lim.max_inline_len) {
        return fail(p, "too big inline request");
    }
    if (nl == NULL) {
        p->scan = len;
        return RESP_AGAIN;
    }
    size_t total = (size_t)(nl - buf) + 1;
    size_t n = total - 1;
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    /* Redis splits the line as a C string: a NUL byte ends it. */
    const char *nul = memchr(buf, '\0', n);
    if (nul != NULL) {
        n = (size_t)(nul - buf);
    }
    if (memchr(buf, '"', n) == NULL && memchr(buf, '\'', n) == NULL) {
        split_plain(p, buf, n);
        return done(p, buf, total, consumed);
    }
    if (split_quoted(p, buf, n) != 0) {
        return fail(p, "unbalanced quotes in request");
    }
    done(p, p->scratch, total, consumed);
    return RESP_OK;
}

int resp_parse(struct resp_parser *p, const char *buf, size_t len, size_t *consumed) {
    if (p->kind == KIND_FAILED) {
        return RESP_ERR_PROTO;
    }
    if (p->kind == KIND_NONE) {
        if (len == 0) {
            p->want = 0;
            return RESP_AGAIN;
        }
        /* A new command: give back what an unusually large previous one took. */
        if (p->argv_cap > RESP_ARGV_KEEP) {
            set_argv_cap(p, RESP_ARGV_INIT);
        }
        if (p->scratch_cap > RESP_SCRATCH_KEEP) {
            free(p->scratch);
            p->scratch = NULL;
            p->scratch_cap = 0;
        }
        p->argc = 0;
        p->pos = 0;
        p->scan = 0;
        p->want = 0;
        p->kind = buf[0] == '*' ? KIND_MULTIBULK : KIND_INLINE;
    }
    if (len < p->pos || len < p->scan) {
        /* Fewer bytes than last time: the caller broke the contract. Never read
         * out of bounds; wait for the bytes it gave before. */
        return RESP_AGAIN;
    }
    if (p->kind == KIND_MULTIBULK) {
        return parse_multibulk(p, buf, len, consumed);
    }
    return parse_inline(p, buf, len, consumed);
}
