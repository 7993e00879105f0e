/* proto/resp_int.h: helpers shared by the files of proto/ and nobody else.
 *
 * Allocation wrappers that abort on out-of-memory (the module's contract in resp.h),
 * and the fast unsigned-to-decimal conversion used on the reply writer's hot path.
 * Everything here is static inline: proto/ has no globals and no hidden state.
 */
#ifndef KVD_RESP_INT_H
#define KVD_RESP_INT_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest aggregate or bulk header: type byte, "-9223372036854775808", CRLF. */
#define RESP_HDR_MAX 24

static inline void *resp_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n == 0 ? 1 : n);
    if (q == NULL) {
        fprintf(stderr, "proto: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return q;
}

static inline void *resp_xmalloc(size_t n) {
    return resp_xrealloc(NULL, n);
}

/* Writes the decimal digits of v to dst (no NUL) and returns how many; dst needs
 * room for 20 bytes.
 *
 * How it works: digits are produced two at a time from a 200-byte table of the
 * pairs "00".."99", filling from the right end of a local buffer, so a number of
 * n digits costs n/2 divisions by 100 instead of n divisions by 10, then one
 * memcpy. Example: 1234 -> pair "34", then pair "12" -> "1234". */
static inline int resp_u2digits(char *dst, uint64_t v) {
    static const char pairs[201] =
        "0001020304050607080910111213141516171819"
        "2021222324252627282930313233343536373839"
        "4041424344454647484950515253545556575859"
        "6061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char tmp[20];
    int i = 20;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100) * 2;
        v /= 100;
        tmp[--i] = pairs[r + 1];
        tmp[--i] = pairs[r];
    }
    if (v >= 10) {
        unsigned r = (unsigned)v * 2;
        tmp[--i] = pairs[r + 1];
        tmp[--i] = pairs[r];
    } else {
        tmp[--i] = (char)('0' + v);
    }
    memcpy(dst, tmp + i, (size_t)(20 - i));
    return 20 - i;
}

/* Signed variant of resp_u2digits: writes an optional '-' then the digits (no NUL);
 * dst needs room for 21 bytes. LLONG_MIN is handled through unsigned negation. */
static inline int resp_i2digits(char *dst, long long v) {
    if (v < 0) {
        dst[0] = '-';
        return 1 + resp_u2digits(dst + 1, (uint64_t)0 - (uint64_t)v);
    }
    return resp_u2digits(dst, (uint64_t)v);
}

/* resp_str2ll, inline so the parser's header loop pays no call.
 * How it works: the digits accumulate as an unsigned magnitude; before each step
 * we check that magnitude*10 + digit stays within ULLONG_MAX, and at the end that
 * it fits the sign's range (LLONG_MAX, or LLONG_MAX+1 for a negative number). */
static inline int resp_parse_ll(const char *s, size_t len, long long *out) {
    if (len == 0 || len > 20) {
        return -1; /* "-9223372036854775808" is the longest valid input */
    }
    if (len == 1 && s[0] == '0') {
        *out = 0;
        return 0;
    }
    size_t i = 0;
    int neg = 0;
    if (s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == len || s[i] < '1' || s[i] > '9') {
        return -1; /* a lone '-', a leading zero, '+', a space, anything else */
    }
    unsigned long long v = 0;
    for (; i < len; i++) {
        unsigned d = (unsigned)(unsigned char)s[i] - '0';
        if (d > 9) {
            return -1;
        }
        if (v > (ULLONG_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1) {
            return -1;
        }
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
    } else {
        if (v > (unsigned long long)LLONG_MAX) {
            return -1;
        }
        *out = (long long)v;
    }
    return 0;
}

#endif
