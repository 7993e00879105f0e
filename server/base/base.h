/* server/util.h: small pure helpers shared by server families. No server state.
 *
 * kv_glob_match implements Redis's glob (stringmatchlen) semantics for KEYS, SCAN
 * MATCH, HSCAN MATCH and later PSUBSCRIBE:
 *   *        any sequence, including empty
 *   ?        any one byte
 *   [abc]    one of the bytes; [^abc] none of them; [a-z] a range (either order)
 *   \x       the byte x literally (inside brackets too); a lone trailing \ is literal
 * Binary safe (lengths, not NUL), never reads outside the two ranges, and runs in
 * O(plen * slen) whatever the number of stars.
 */
#ifndef KVD_UTIL_H
#define KVD_UTIL_H

#include <limits.h>
#include <stddef.h>

/* Returns 1 when s[0..slen) matches pat[0..plen), 0 otherwise. nocase compares
 * ASCII letters case-insensitively. */
int kv_glob_match(const char *pat, size_t plen, const char *s, size_t slen, int nocase);

/* Would a + b overflow a long long? (INCRBY, HINCRBY: Redis's check and error.) */
static inline int kv_add_overflows(long long a, long long b) {
    return (b < 0 && a < 0 && b < LLONG_MIN - a) || (b > 0 && a > 0 && b > LLONG_MAX - a);
}

#endif
