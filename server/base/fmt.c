/* server/base/fmt.c: small text helpers of the server core: Redis's memory units,
 * human-readable byte counts, Redis's quoted rendering of binary strings (MONITOR,
 * CONFIG REWRITE) and the redis.conf argument splitter. Pure: no server state.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/base/base.h"

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

struct split_ctx {
    char **argv;   /* argument pointers, then the NUL-terminated words */
    char *words;   /* proto's unescaped words, back to back */
    char *copy;    /* where the next NUL-terminated copy goes */
    int argc;
};

static void split_emit(void *arg, size_t off, size_t len) {
    struct split_ctx *x = arg;
    memcpy(x->copy, x->words + off, len);
    x->argv[x->argc++] = x->copy;
    x->copy[len] = '\0';
    x->copy += len + 1;
}

/* redis.conf argument splitting: proto's resp_split_args (the inline command
 * splitter), with each word copied out NUL-terminated. */
int kv_split_args(const char *line, char ***out) {
    size_t len = strlen(line);
    /* at most one word per two bytes (a word and its separator), plus one */
    size_t maxargs = len / 2 + 2;
    /* pointers, the unescaped words (<= len bytes), their NUL-terminated copies */
    char **argv = kv_malloc(sizeof(char *) * maxargs + len + (len + maxargs) + 1);
    struct split_ctx x = {argv, (char *)(argv + maxargs), NULL, 0};
    x.copy = x.words + len;
    if (resp_split_args(line, len, x.words, split_emit, &x) < 0) {
        kv_free(argv);
        *out = NULL;
        return -1;
    }
    *out = argv;
    return x.argc;
}
