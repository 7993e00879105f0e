/* engine/sst.h: sorted string tables (engine/FORMAT.md "SST file"): the builder that
 * writes one from internal keys in order, and the reader that answers point lookups
 * and iterates over it.
 *
 * A table is immutable once finished. The reader keeps the index block, the bloom
 * filter and the properties in memory while it is open; data blocks come through the
 * block cache (or, without a cache, are read per use). Every block read verifies its
 * checksum; damage is LSM_CORRUPT with a message naming the file and block offset.
 *
 * Threading: a builder belongs to one thread. A reader is immutable after open and
 * may serve get and any number of iterators from many threads at once (pread).
 * Which tables exist and when a reader may be closed is the DB layer's business: a
 * reader must outlive its iterators and the sst_found results it handed out.
 */
#ifndef KVD_ENGINE_SST_H
#define KVD_ENGINE_SST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/cache.h"
#include "engine/dbformat.h"
#include "engine/env.h"
#include "engine/status.h"

#define SST_MAGIC UINT64_C(0x31545353445656b6) /* on disk: never change */
#define SST_FORMAT_VERSION 1                   /* on disk: never renumber */
#define SST_FOOTER_SIZE 64

/* Table properties, written at build time and read back at open. Keys are internal
 * keys; they are owned (sst_props_free releases them). */
struct sst_props {
    uint64_t num_entries;   /* all entries, tombstones included */
    uint64_t num_deletions; /* tombstones */
    uint64_t num_expiring;  /* entries with an expire-at */
    uint64_t num_data_blocks;
    uint64_t raw_key_bytes;   /* sum of internal key lengths */
    uint64_t raw_value_bytes; /* sum of entry value lengths */
    uint64_t min_seqno;
    uint64_t max_seqno;
    uint64_t oldest_expire_at; /* smallest non-zero expire-at, 0 = none */
    uint64_t min_write_ts;     /* smallest non-zero write timestamp, 0 = none */
    uint64_t max_write_ts;
    uint64_t file_size;      /* whole file, footer included */
    struct lsm_buf smallest; /* first internal key (empty when no entries) */
    struct lsm_buf largest;  /* last internal key */
};
void sst_props_free(struct sst_props *p);
/* Copies src into dst (dst must be zeroed or freed); free dst with sst_props_free. */
void sst_props_copy(struct sst_props *dst, const struct sst_props *src);

/* ------------------------------------------------------------------------------
 * Builder
 * ------------------------------------------------------------------------------ */
struct sst_options {
    size_t block_size;      /* target data block size, default 4096 */
    int restart_interval;   /* keys per restart point, default 16 */
    int bloom_bits_per_key; /* default 10; 0 writes no filter */
};
/* Fills in the defaults. */
void sst_options_default(struct sst_options *o);

struct sst_builder;

/* Creates (truncating) the file at path. */
int sst_builder_create(const char *path, const struct sst_options *opt,
                       struct sst_builder **out, struct lsm_err *err);
/* Adds an entry. ikey must sort after every key added before (ikey_compare) — the
 * caller's promise; value is an entry value (dbformat.h), read for the properties.
 * Writes a data block when one is full. Errors are sticky. */
int sst_builder_add(struct sst_builder *b, const char *ikey, size_t ikey_len,
                    const char *value, size_t value_len);
/* Bytes the file would have if finished now (approximately). */
uint64_t sst_builder_file_size(const struct sst_builder *b);
/* Writes the last data block, filter, properties, index and footer; fsyncs the file
 * when sync is true; closes and frees the builder (*b = NULL) whatever the result.
 * On LSM_OK and props not NULL, *props is the table's properties (free them with
 * sst_props_free). On error the caller should unlink the file. */
int sst_builder_finish(struct sst_builder **b, bool sync, struct sst_props *props,
                       struct lsm_err *err);
/* Closes and frees without finishing (the file stays, incomplete). */
void sst_builder_abandon(struct sst_builder **b);

/* ------------------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------------------ */
struct sst_reader;

/* Opens a table: reads and checks the footer, index, filter and properties.
 * file_number keys its blocks in cache (NULL: no caching). */
int sst_reader_open(const char *path, uint64_t file_number, struct block_cache *cache,
                    struct sst_reader **out, struct lsm_err *err);
/* The same over an open file (e.g. env_create_memory); takes ownership of f, also on
 * failure. */
int sst_reader_open_file(struct env_file *f, uint64_t file_number,
                         struct block_cache *cache, struct sst_reader **out,
                         struct lsm_err *err);
void sst_reader_close(struct sst_reader **r);
const struct sst_props *sst_reader_props(const struct sst_reader *r);

/* False when the bloom filter proves the user key with this bloom_hash is absent. */
bool sst_reader_may_contain(const struct sst_reader *r, uint64_t hash);

/* A point-lookup result: the entry's internal key and entry value, pinned (in the
 * block cache or a private copy) until sst_found_release. ikey may point inside the
 * struct itself: use it where sst_reader_get filled it, never a copy of the struct. */
struct sst_found {
    const char *ikey; /* the entry's internal key (a copy held by this struct) */
    size_t ikey_len;
    const char *value; /* its entry value, in the pinned block */
    size_t value_len;
    uint64_t seqno; /* decoded from ikey's trailer */
    unsigned kind;  /* LSM_KIND_VALUE or LSM_KIND_DELETE */
    /* private */
    struct block_cache *cache;
    struct cache_handle *pin;
    void *owned;
    char *key_heap;
    char key_inline[48];
};
void sst_found_release(struct sst_found *f);

/* Point lookup. lkey is a lookup key (lookup_key_init) or any internal key; hash is
 * bloom_hash of its user key (the filter is checked here too, so calling
 * sst_reader_may_contain first only saves a call). Finds the first entry >= lkey; when that entry has the
 * same user key, returns LSM_OK and fills *out (it may be a tombstone: check the
 * kind of out->ikey), else LSM_NOTFOUND (*out untouched). LSM_CORRUPT / LSM_IOERR
 * with a message on damage. Checks the bloom filter first, then reads at most one
 * data block (two when the key sits exactly on a block boundary). */
int sst_reader_get(struct sst_reader *r, const char *lkey, size_t lkey_len, uint64_t hash,
                   struct sst_found *out, struct lsm_err *err);

/* ------------------------------------------------------------------------------
 * Iterator over a whole table, forward.
 * ------------------------------------------------------------------------------ */
struct sst_iter;

struct sst_iter_options {
    bool fill_cache;  /* put blocks read into the block cache (false for compaction) */
    size_t readahead; /* bytes to read at once when not filling the cache; 0: 256 KiB */
    /* Exclusive upper bound on user keys (NULL = none), borrowed for the iterator's
     * life: the iterator never loads a data block whose keys all are >= it (it stops
     * after the block whose index separator reaches the bound). Keys >= the bound in
     * a block already loaded are still returned: the caller stops at them. */
    const char *upper;
    size_t upper_len;
};

struct sst_iter *sst_iter_create(struct sst_reader *r,
                                 const struct sst_iter_options *opt);
void sst_iter_destroy(struct sst_iter **it);
void sst_iter_seek_to_first(struct sst_iter *it);
/* Positions at the first entry >= ikey (internal key order). */
void sst_iter_seek(struct sst_iter *it, const char *ikey, size_t ikey_len);
void sst_iter_next(struct sst_iter *it);
bool sst_iter_valid(const struct sst_iter *it);
/* Current entry; valid until the iterator moves. */
const char *sst_iter_key(const struct sst_iter *it, size_t *len);
const char *sst_iter_value(const struct sst_iter *it, size_t *len);
/* LSM_OK, or the first error met (the iterator is then invalid); err gets the
 * message. */
int sst_iter_status(const struct sst_iter *it, struct lsm_err *err);

#endif
