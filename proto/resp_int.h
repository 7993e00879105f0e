/* proto/resp_int.h: helpers shared by the files of proto/ and nobody else.
 *
 * Allocation wrappers that abort on out-of-memory (the module's contract in resp.h),
 * and the fast unsigned-to-decimal conversion used on the reply writer's hot path.
 * Everything here is static inline: proto/ has no globals and no hidden state.
 */
#ifndef KVD_RESP_INT_H
#define KVD_RESP_INT_H

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

#endif
