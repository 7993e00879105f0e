/* server/base/util.c: glob matching with Redis's stringmatchlen semantics (see base.h).
 *
 * HOW IT WORKS: instead of recursing at every '*' (exponential on patterns like
 * "*a*a*a*b"), we remember only the most recent star and the string position it was
 * tried at. On a mismatch we let that star swallow one more byte and retry. This is
 * correct because every other token matches exactly one byte: a later star can
 * absorb anything an earlier star's alternative choice would have absorbed.
 * Example: pattern "a*c", string "abcbc": a=a, star at s=1; 'c'!='b' -> star takes
 * "b", 'c'=='c' at s=2, pattern ends but string has "bc" left -> star takes "bcb",
 * 'c'=='c' at s=4, both end: match.
 */
#include "server/base/base.h"

#include <ctype.h>

static int byte_eq(unsigned char a, unsigned char b, int nocase) {
    if (nocase) {
        return tolower(a) == tolower(b);
    }
    return a == b;
}

/* Tries the single-byte token at pat[*pp] against byte c. Advances *pp past the
 * token and returns 1 on a match; returns 0 otherwise. */
static int match_token(const char *pat, size_t plen, size_t *pp, unsigned char c, int nocase) {
    size_t p = *pp;
    unsigned char t = (unsigned char)pat[p];

    if (t == '?') {
        *pp = p + 1;
        return 1;
    }
    if (t == '\\' && p + 1 < plen) {
        *pp = p + 2;
        return byte_eq((unsigned char)pat[p + 1], c, nocase);
    }
    if (t != '[') {
        *pp = p + 1;
        return byte_eq(t, c, nocase);
    }
    /* a character class; an unterminated one ends at the end of the pattern */
    p++;
    int negate = 0, match = 0;
    if (p < plen && pat[p] == '^') {
        negate = 1;
        p++;
    }
    while (p < plen && pat[p] != ']') {
        if (pat[p] == '\\' && p + 1 < plen) {
            p++;
            if (byte_eq((unsigned char)pat[p], c, nocase)) {
                match = 1;
            }
        } else if (p + 2 < plen && pat[p + 1] == '-') {
            unsigned char lo = (unsigned char)pat[p], hi = (unsigned char)pat[p + 2];
            unsigned char x = c;
            if (lo > hi) {
                unsigned char tmp = lo;
                lo = hi;
                hi = tmp;
            }
            if (nocase) {
                lo = (unsigned char)tolower(lo);
                hi = (unsigned char)tolower(hi);
                x = (unsigned char)tolower(x);
            }
            if (x >= lo && x <= hi) {
                match = 1;
            }
            p += 2;
        } else if (byte_eq((unsigned char)pat[p], c, nocase)) {
            match = 1;
        }
        p++;
    }
    if (p < plen) {
        p++; /* the closing ']' */
    }
    *pp = p;
    return negate ? !match : match;
}

int kv_glob_match(const char *pat, size_t plen, const char *s, size_t slen, int nocase) {
    size_t p = 0, i = 0;
    size_t star_p = (size_t)-1, star_i = 0;

    while (i < slen) {
        if (p < plen && pat[p] == '*') {
            while (p < plen && pat[p] == '*') {
                p++;
            }
            if (p == plen) {
                return 1;
            }
            star_p = p;
            star_i = i;
            continue;
        }
        size_t np = p;
        if (p < plen && match_token(pat, plen, &np, (unsigned char)s[i], nocase)) {
            p = np;
            i++;
            continue;
        }
        if (star_p == (size_t)-1) {
            return 0;
        }
        p = star_p;
        i = ++star_i;
    }
    while (p < plen && pat[p] == '*') {
        p++;
    }
    return p == plen;
}
