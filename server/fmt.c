/* server/fmt.c: small text helpers of the server core: Redis's memory units,
 * human-readable byte counts, Redis's quoted rendering of binary strings (MONITOR,
 * CONFIG REWRITE) and the redis.conf argument splitter. Pure: no server state.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/server.h"
#include "server/server_int.h"

int kv_parse_memory(const char *s, long long *out) {
    const char *p = s;
    if (*p < '0' || *p > '9') {
        return -1;
    }
    unsigned long long v = 0;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (unsigned long long)(9223372036854775807LL - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
        p++;
    }
    unsigned long long mul;
    if (*p == '\0' || strcasecmp(p, "b") == 0) mul = 1;
    else if (strcasecmp(p, "k") == 0) mul = 1000ULL;
    else if (strcasecmp(p, "kb") == 0) mul = 1024ULL;
    else if (strcasecmp(p, "m") == 0) mul = 1000ULL * 1000;
    else if (strcasecmp(p, "mb") == 0) mul = 1024ULL * 1024;
    else if (strcasecmp(p, "g") == 0) mul = 1000ULL * 1000 * 1000;
    else if (strcasecmp(p, "gb") == 0) mul = 1024ULL * 1024 * 1024;
    else return -1;
    if (v != 0 && mul > 9223372036854775807ULL / v) {
        return -1;
    }
    *out = (long long)(v * mul);
    return 0;
}

void kv_bytes_human(char *buf, size_t cap, unsigned long long n) {
    double d = (double)n;
    if (n < 1024) {
        snprintf(buf, cap, "%lluB", n);
    } else if (n < 1024ULL * 1024) {
        snprintf(buf, cap, "%.2fK", d / 1024);
    } else if (n < 1024ULL * 1024 * 1024) {
        snprintf(buf, cap, "%.2fM", d / (1024.0 * 1024));
    } else if (n < 1024ULL * 1024 * 1024 * 1024) {
        snprintf(buf, cap, "%.2fG", d / (1024.0 * 1024 * 1024));
    } else if (n < 1024ULL * 1024 * 1024 * 1024 * 1024) {
        snprintf(buf, cap, "%.2fT", d / (1024.0 * 1024 * 1024 * 1024));
    } else {
        snprintf(buf, cap, "%.2fP", d / (1024.0 * 1024 * 1024 * 1024 * 1024));
    }
}

size_t kv_repr(char *dst, size_t cap, const char *s, size_t len) {
    size_t n = 0;
#define PUT(ch)                                                                  \
    do {                                                                         \
        if (n + 1 < cap) dst[n++] = (ch);                                        \
    } while (0)
    static const char hex[] = "0123456789abcdef";
    PUT('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '\\': PUT('\\'); PUT('\\'); break;
        case '"': PUT('\\'); PUT('"'); break;
        case '\n': PUT('\\'); PUT('n'); break;
        case '\r': PUT('\\'); PUT('r'); break;
        case '\t': PUT('\\'); PUT('t'); break;
        case '\a': PUT('\\'); PUT('a'); break;
        case '\b': PUT('\\'); PUT('b'); break;
        default:
            if (isprint(ch)) {
                PUT((char)ch);
            } else {
                PUT('\\'); PUT('x'); PUT(hex[ch >> 4]); PUT(hex[ch & 15]);
            }
        }
    }
    PUT('"');
#undef PUT
    if (cap > 0) {
        dst[n] = '\0';
    }
    return n;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* redis.conf argument splitting (sdssplitargs semantics): arguments separated by
 * blanks; "..." with \n \r \t \b \a \\ \" \xHH escapes; '...' with \' only; a
 * closing quote must be followed by a blank or the end. */
int kv_split_args(const char *line, char ***out) {
    size_t len = strlen(line);
    /* worst case: every byte its own argument */
    size_t maxargs = len / 2 + 2;
    char **argv = kv_malloc(sizeof(char *) * maxargs + len + maxargs + 1);
    char *buf = (char *)(argv + maxargs);
    int argc = 0;
    const char *p = line;
    for (;;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (*p == '\0') break;
        char *start = buf;
        int inq = 0, insq = 0, done = 0;
        while (!done) {
            if (inq) {
                if (*p == '\0') goto bad;
                if (*p == '\\' && p[1] == 'x' && hexval(p[2]) >= 0 && hexval(p[3]) >= 0) {
                    *buf++ = (char)(hexval(p[2]) * 16 + hexval(p[3]));
                    p += 3;
                } else if (*p == '\\' && p[1]) {
                    p++;
                    switch (*p) {
                    case 'n': *buf++ = '\n'; break;
                    case 'r': *buf++ = '\r'; break;
                    case 't': *buf++ = '\t'; break;
                    case 'b': *buf++ = '\b'; break;
                    case 'a': *buf++ = '\a'; break;
                    default: *buf++ = *p; break;
                    }
                } else if (*p == '"') {
                    if (p[1] && !isspace((unsigned char)p[1])) goto bad;
                    done = 1;
                } else {
                    *buf++ = *p;
                }
            } else if (insq) {
                if (*p == '\0') goto bad;
                if (*p == '\\' && p[1] == '\'') {
                    p++;
                    *buf++ = '\'';
                } else if (*p == '\'') {
                    if (p[1] && !isspace((unsigned char)p[1])) goto bad;
                    done = 1;
                } else {
                    *buf++ = *p;
                }
            } else {
                switch (*p) {
                case ' ': case '\n': case '\r': case '\t': case '\0':
                    done = 1;
                    break;
                case '"': inq = 1; break;
                case '\'': insq = 1; break;
                default: *buf++ = *p; break;
                }
            }
            if (*p) p++;
        }
        *buf++ = '\0';
        argv[argc++] = start;
    }
    *out = argv;
    return argc;
bad:
    kv_free(argv);
    *out = NULL;
    return -1;
}
