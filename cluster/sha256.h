/* cluster/sha256.h: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), written here so
 * the cluster's peer authentication needs no OpenSSL. Pure: no I/O, no allocation,
 * no globals; a context may live on the stack. Not hardened against timing of the
 * hashed data itself (it hashes a secret only through HMAC's padded key, whose
 * processing does not branch on the key); comparing MACs in constant time is left to
 * the caller (cluster/auth.c: auth_equal_ct).
 */
#ifndef KVD_CLUSTER_SHA256_H
#define KVD_CLUSTER_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_BLOCK_LEN 64

struct sha256_ctx {
    uint32_t h[8];                    /* chaining state */
    uint64_t total;                   /* bytes hashed so far */
    size_t fill;                      /* bytes waiting in buf */
    uint8_t buf[SHA256_BLOCK_LEN];    /* partial block */
};

/* Starts a new hash. */
void sha256_init(struct sha256_ctx *c);

/* Hashes n more bytes at p (p may be NULL when n is 0). */
void sha256_update(struct sha256_ctx *c, const void *p, size_t n);

/* Writes the digest to out and wipes the context (init it again to reuse). */
void sha256_final(struct sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);

/* One-shot SHA-256 of n bytes at p. */
void sha256(const void *p, size_t n, uint8_t out[SHA256_DIGEST_LEN]);

/* HMAC-SHA256 in steps: init with the key, update with the message, final. A key
 * longer than the block is hashed first, as RFC 2104 says. The context holds the
 * padded key; final wipes it. */
struct hmac_sha256_ctx {
    struct sha256_ctx inner;               /* H(K ^ ipad || ...) in progress */
    uint8_t okey[SHA256_BLOCK_LEN];        /* K ^ opad */
};

void hmac_sha256_init(struct hmac_sha256_ctx *c, const void *key, size_t keylen);
void hmac_sha256_update(struct hmac_sha256_ctx *c, const void *p, size_t n);
void hmac_sha256_final(struct hmac_sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);

/* One-shot HMAC-SHA256(key, msg). */
void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n,
                 uint8_t out[SHA256_DIGEST_LEN]);

#endif
