/* proto/resp_num.c: number formatting and strict number parsing, with Redis's rules.
 *
 * Used by the reply writer (integers, doubles), by the request parser (multibulk and
 * bulk headers go through resp_str2ll) and by the server's commands (INCRBY,
 * INCRBYFLOAT, ...). The exact accepted syntax of each function is in resp.h; the
 * reasons for the odd cases are here. What the server does with a rejected number
 * (which error text it replies) is left to the server.
 */
#include "proto/resp.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "proto/resp_int.h"

int resp_ll2str(char *dst, long long v) {
    int n = resp_i2digits(dst, v);
    dst[n] = '\0';
    return n;
}

/* %.17g is what Redis 7.0 sends for a double: enough digits that the client reads
 * back the very same double. Infinities are spelled by hand as Redis does (libcs
 * disagree on "inf" versus "Infinity"), and glibc's "-nan" becomes "nan": RESP3
 * has one NaN. */
int resp_d2str(char *dst, size_t cap, double d) {
    const char *fixed = NULL;
    if (isnan(d)) {
        fixed = "nan";
    } else if (isinf(d)) {
        fixed = d > 0 ? "inf" : "-inf";
    }
    if (fixed != NULL) {
        size_t n = strlen(fixed);
        if (cap <= n) {
            if (cap > 0) {
                dst[0] = '\0';
            }
            return 0;
        }
        memcpy(dst, fixed, n + 1);
        return (int)n;
    }
    int n = snprintf(dst, cap, "%.17g", d);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) {
            dst[0] = '\0';
        }
        return 0;
    }
    return n;
}

/* INCRBYFLOAT's rendering (Redis ld2string in its "human" mode): %.17Lf, so never
 * an exponent, then the trailing zeros of the fraction and a bare trailing dot are
 * cut: 3000.00000000000000000 -> "3000", 1.50000000000000000 -> "1.5". A result
 * of "-0" becomes "0". When the fixed notation does not fit in cap (|v| of about
 * 1e110 and more with 128 bytes), %.17Lg is written instead: still a number that
 * reads back the same, where Redis (with its 5 KiB buffer) prints every digit. */
int resp_ld2str(char *dst, size_t cap, long double v) {
    if (cap == 0) {
        return 0;
    }
    if (isnan(v) || isinf(v)) {
        const char *fixed = isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
        size_t n = strlen(fixed);
        if (cap <= n) {
            dst[0] = '\0';
            return 0;
        }
        memcpy(dst, fixed, n + 1);
        return (int)n;
    }
    int n = snprintf(dst, cap, "%.17Lf", v);
    if (n < 0 || (size_t)n >= cap) {
        n = snprintf(dst, cap, "%.17Lg", v);
        if (n < 0 || (size_t)n >= cap) {
            dst[0] = '\0';
            return 0;
        }
        return n;
    }
    if (memchr(dst, '.', (size_t)n) != NULL) {
        while (dst[n - 1] == '0') {
            n--;
        }
        if (dst[n - 1] == '.') {
            n--;
        }
    }
    if (n == 2 && dst[0] == '-' && dst[1] == '0') {
        dst[0] = '0';
        n = 1;
    }
    dst[n] = '\0';
    return n;
}

int resp_str2ll(const char *s, size_t len, long long *out) {
    return resp_parse_ll(s, len, out);
}

/* strtod and strtold need a NUL-terminated string; ours are slices, so they are
 * copied to the stack first (bounded by RESP_LDSTR_MAX, as Redis bounds them). */
static int copy_cstr(char *buf, const char *s, size_t len) {
    if (len == 0 || len >= RESP_LDSTR_MAX) {
        return -1;
    }
    /* strto* skip leading white space; Redis refuses it (isspace on byte 0). */
    switch (s[0]) {
    case ' ': case '\t': case '\n': case '\v': case '\f': case '\r':
        return -1;
    default:
        break;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

int resp_str2ld(const char *s, size_t len, long double *out) {
    char buf[RESP_LDSTR_MAX];
    char *end;
    if (copy_cstr(buf, s, len) != 0) {
        return -1;
    }
    errno = 0;
    long double v = strtold(buf, &end);
    if ((size_t)(end - buf) != len || isnan(v)) {
        return -1; /* an embedded NUL also stops strtold short of len */
    }
    if (errno == ERANGE && (isinf(v) || v == 0.0L)) {
        return -1;
    }
    *out = v;
    return 0;
}

int resp_str2d(const char *s, size_t len, double *out) {
    char buf[RESP_LDSTR_MAX];
    char *end;
    if (copy_cstr(buf, s, len) != 0) {
        return -1;
    }
    errno = 0;
    double v = strtod(buf, &end);
    if ((size_t)(end - buf) != len || isnan(v)) {
        return -1;
    }
    if (errno == ERANGE && (isinf(v) || v == 0.0)) {
        return -1;
    }
    *out = v;
    return 0;
}
