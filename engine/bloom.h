/* engine/bloom.h: the table's bloom filter over user keys (engine/FORMAT.md "Filter
 * block"). One filter per table, cache-line blocked: a key's probes all fall in one
 * 64-byte line chosen by its hash, so a query costs one cache miss. About 1% false
 * positives at 10 bits per key.
 *
 * Hashing: one XXH3_64bits of the user key per add and per query (bloom_hash), so a
 * caller checking several tables hashes once.
 */
#ifndef KVD_ENGINE_BLOOM_H
#define KVD_ENGINE_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/dbformat.h"

#define BLOOM_DEFAULT_BITS_PER_KEY 10

/* The 64-bit hash the filter uses for a user key. */
uint64_t bloom_hash(const char *user_key, size_t len);

/* Collects key hashes, then writes a filter sized for them. */
struct bloom_builder {
    int bits_per_key; /* >= 1 */
    uint64_t *hashes; /* one per added key */
    size_t count;
    size_t cap;
};

void bloom_builder_init(struct bloom_builder *b, int bits_per_key);
/* Adds a key by its bloom_hash. Adding the same key twice is harmless (wasteful). */
void bloom_builder_add_hash(struct bloom_builder *b, uint64_t h);
/* Appends the encoded filter for all added hashes to out and forgets them. */
void bloom_builder_finish(struct bloom_builder *b, struct lsm_buf *out);
void bloom_builder_free(struct bloom_builder *b);

/* A filter read back: borrowed bytes. An empty or malformed filter answers "may
 * contain" to everything (it can only cost a read, never lose a key). */
struct bloom_filter {
    const uint8_t *bits; /* num_lines * 64 bytes */
    uint32_t num_lines;  /* 0: matches everything */
    uint32_t num_probes;
};

/* Parses an encoded filter (bytes are borrowed); returns false when it is malformed
 * (the filter then matches everything). */
bool bloom_filter_parse(const char *data, size_t len, struct bloom_filter *f);
/* False: the key is certainly absent. True: it may be present. */
bool bloom_may_contain(const struct bloom_filter *f, uint64_t h);

#endif
