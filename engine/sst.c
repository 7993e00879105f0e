/* engine/sst.c: table builder, reader and iterator (see engine/sst.h and
 * engine/FORMAT.md "SST file").
 *
 * Builder: entries go into a data block builder; a full block is framed (type byte +
 * masked crc) and appended to an output buffer that goes to the file in writes of
 * about SST_WRITE_BUFFER bytes (one system call per 4 KiB block cost the background
 * thread more than the copy). Its index entry waits for the next key, so the
 * separator can be shortened between the two blocks. finish() writes the filter,
 * properties, index and footer, then whatever is buffered.
 *
 * Reader: open reads the footer, then index, filter and props frames, and keeps them.
 * Data blocks are read with pread into one allocation that also holds the parsed
 * struct block, so a cached block is ready to iterate with no further work. An
 * iterator that does not fill the cache reads into its own buffer and, once it sees
 * sequential block reads, reads ahead in growing chunks (8 KiB doubling to
 * opt.readahead), so a full scan costs few system calls.
 */
#include "engine/sst.h"

#include <stdio.h>
#include <string.h>

#include "engine/block.h"
#include "engine/bloom.h"
#include "engine/crc32c.h"

#define BLOCK_TRAILER 5 /* compression:u8 crc:u32le */
#define BLOCK_RAW 0     /* compression byte: none. On disk: never renumber */
#define INDEX_RESTART_INTERVAL 1
#define DEFAULT_READAHEAD (256 * 1024)
#define SST_WRITE_BUFFER (256 * 1024) /* a builder writes once this much is buffered */

struct handle {
    uint64_t offset;
    uint64_t size;
};

/* The internal key order, safe for keys shorter than a trailer (damaged blocks). */
static int ikey_cmp_safe(const char *a, size_t alen, const char *b, size_t blen)
{
    if (__builtin_expect(alen < IKEY_TRAILER_LEN || blen < IKEY_TRAILER_LEN, 0)) {
        return user_key_compare(a, alen, b, blen);
    }
    return ikey_compare(a, alen, b, blen);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

void sst_options_default(struct sst_options *o)
{
    o->block_size = 4096;
    o->restart_interval = 16;
    o->bloom_bits_per_key = BLOOM_DEFAULT_BITS_PER_KEY;
}

void sst_props_free(struct sst_props *p)
{
    lsm_buf_free(&p->smallest);
    lsm_buf_free(&p->largest);
}

void sst_props_copy(struct sst_props *dst, const struct sst_props *src)
{
    *dst = *src;
    memset(&dst->smallest, 0, sizeof(dst->smallest));
    memset(&dst->largest, 0, sizeof(dst->largest));
    lsm_buf_append(&dst->smallest, src->smallest.p, src->smallest.len);
    lsm_buf_append(&dst->largest, src->largest.p, src->largest.len);
}

/* ------------------------------------------------------------------------------
 * Builder
 * ------------------------------------------------------------------------------ */

struct sst_builder {
    struct env_file *f;
    struct sst_options opt;
    struct block_builder data;
    struct block_builder index;
    struct bloom_builder bloom;
    struct lsm_buf last_key; /* last internal key added */
    struct lsm_buf sep;      /* scratch for separators */
    struct lsm_buf out;      /* framed bytes not yet written, from f->size on */
    bool index_pending;      /* a data block was written; its index entry waits */
    struct handle pending;   /* ... for this handle */
    struct sst_props props;
    int status; /* sticky */
    struct lsm_err err;
};

int sst_builder_create(const char *path, const struct sst_options *opt,
                       struct sst_builder **out, struct lsm_err *err)
{
    struct env_file *f;
    int rc = env_create(path, &f, err);
    if (rc != LSM_OK) {
        return rc;
    }
    struct sst_builder *b = lsm_calloc(1, sizeof(*b));
    b->f = f;
    if (opt != NULL) {
        b->opt = *opt;
    } else {
        sst_options_default(&b->opt);
    }
    if (b->opt.block_size == 0) {
        b->opt.block_size = 4096;
    }
    block_builder_init(&b->data,
                       b->opt.restart_interval > 0 ? b->opt.restart_interval : 16);
    block_builder_init(&b->index, INDEX_RESTART_INTERVAL);
    bloom_builder_init(&b->bloom, b->opt.bloom_bits_per_key);
    b->props.min_seqno = UINT64_MAX;
    *out = b;
    return LSM_OK;
}

/* Writes the buffered bytes to the file (one write system call). */
static int write_out(struct sst_builder *b)
{
    if (b->out.len == 0) {
        return LSM_OK;
    }
    uint64_t off = b->f->size;
    int rc = env_append(b->f, b->out.p, b->out.len, &b->err);
    if (rc == LSM_OK) {
        env_start_writeback(b->f, off, b->out.len);
    }
    b->out.len = 0;
    return rc;
}

/* Appends bytes to the table; they reach the file once SST_WRITE_BUFFER bytes wait. */
static int append_out(struct sst_builder *b, const void *p, size_t n)
{
    lsm_buf_append(&b->out, p, n);
    return b->out.len >= SST_WRITE_BUFFER ? write_out(b) : LSM_OK;
}

/* Appends buf's contents as one frame; buf is unchanged. */
static int write_frame(struct sst_builder *b, struct lsm_buf *buf, struct handle *h)
{
    size_t len = buf->len;
    char trailer[BLOCK_TRAILER];
    trailer[0] = BLOCK_RAW;
    uint32_t crc = crc32c_extend(crc32c_value(buf->p, len), trailer, 1);
    enc_fixed32(trailer + 1, crc32c_mask(crc));
    h->offset = b->f->size + b->out.len;
    h->size = len;
    lsm_buf_append(&b->out, buf->p, len);
    return append_out(b, trailer, sizeof(trailer));
}

/* Writes the current data block; its index entry is added by the next key or finish. */
static int flush_data_block(struct sst_builder *b)
{
    if (block_builder_empty(&b->data)) {
        return LSM_OK;
    }
    size_t len;
    block_builder_finish(&b->data, &len);
    int rc = write_frame(b, &b->data.buf, &b->pending);
    block_builder_reset(&b->data);
    if (rc == LSM_OK) {
        b->index_pending = true;
        b->props.num_data_blocks++;
    }
    return rc;
}

static void add_index_entry(struct sst_builder *b, const char *sep, size_t sep_len)
{
    char v[2 * VARINT64_MAX_LEN];
    char *p = enc_varint64(v, b->pending.offset);
    p = enc_varint64(p, b->pending.size);
    block_builder_add(&b->index, sep, sep_len, v, (size_t)(p - v));
    b->index_pending = false;
}

/* Shortest internal key k with last <= k < next (FORMAT.md "Index frame"). */
static void make_separator(struct sst_builder *b, const char *next, size_t next_len)
{
    const char *last = b->last_key.p;
    size_t lu = b->last_key.len - IKEY_TRAILER_LEN, nu = next_len - IKEY_TRAILER_LEN;
    size_t n = lu < nu ? lu : nu, i = 0;
    lsm_buf_clear(&b->sep);
    while (i < n && last[i] == next[i]) {
        i++;
    }
    if (i < n) {
        unsigned char c = (unsigned char)last[i];
        if (c < 0xff && c + 1 < (unsigned char)next[i]) {
            ikey_append(&b->sep, last, i + 1, LSM_MAX_SEQNO, LSM_KIND_SEEK);
            b->sep.p[i]++;
            return;
        }
    }
    lsm_buf_append(&b->sep, last, b->last_key.len);
}

int sst_builder_add(struct sst_builder *b, const char *ikey, size_t ikey_len,
                    const char *value, size_t value_len)
{
    if (b->status != LSM_OK) {
        return b->status;
    }
    if (ikey_len < IKEY_TRAILER_LEN) {
        return b->status = lsm_err_set(&b->err, LSM_INVALID, "sst %s: key shorter than 8",
                                       base_name(b->f->path));
    }
    struct sst_props *p = &b->props;
    size_t user_len = ikey_len - IKEY_TRAILER_LEN;
    bool new_user_key =
        p->num_entries == 0 ||
        user_key_compare(b->last_key.p, b->last_key.len - IKEY_TRAILER_LEN, ikey,
                         user_len) != 0;
    if (b->index_pending) {
        make_separator(b, ikey, ikey_len);
        add_index_entry(b, b->sep.p, b->sep.len);
    }
    if (new_user_key && b->opt.bloom_bits_per_key > 0) {
        bloom_builder_add_hash(&b->bloom, bloom_hash(ikey, user_len));
    }
    uint64_t t = ikey_trailer_of(ikey, ikey_len);
    uint64_t seqno = t >> 8;
    p->num_entries++;
    p->num_deletions += (t & 0xff) == LSM_KIND_DELETE;
    p->raw_key_bytes += ikey_len;
    p->raw_value_bytes += value_len;
    p->min_seqno = seqno < p->min_seqno ? seqno : p->min_seqno;
    p->max_seqno = seqno > p->max_seqno ? seqno : p->max_seqno;
    struct entry_value ev;
    if (entry_decode(value, value_len, &ev) == LSM_OK) {
        if (ev.expire_at) {
            p->num_expiring++;
            if (p->oldest_expire_at == 0 || ev.expire_at < p->oldest_expire_at) {
                p->oldest_expire_at = ev.expire_at;
            }
        }
        if (ev.write_ts) {
            if (p->min_write_ts == 0 || ev.write_ts < p->min_write_ts) {
                p->min_write_ts = ev.write_ts;
            }
            if (ev.write_ts > p->max_write_ts) {
                p->max_write_ts = ev.write_ts;
            }
        }
    }
    if (p->num_entries == 1) {
        lsm_buf_append(&p->smallest, ikey, ikey_len);
    }
    lsm_buf_clear(&b->last_key);
    lsm_buf_append(&b->last_key, ikey, ikey_len);
    block_builder_add(&b->data, ikey, ikey_len, value, value_len);
    if (block_builder_estimate(&b->data) >= b->opt.block_size) {
        b->status = flush_data_block(b);
    }
    return b->status;
}

uint64_t sst_builder_file_size(const struct sst_builder *b)
{
    return b->f->size + b->out.len + block_builder_estimate(&b->data) +
           block_builder_estimate(&b->index) +
           b->bloom.count * (size_t)b->opt.bloom_bits_per_key / 8 + SST_FOOTER_SIZE;
}

static void encode_props(const struct sst_props *p, struct lsm_buf *out)
{
    uint64_t v[] = {p->num_entries,
                    p->num_deletions,
                    p->num_expiring,
                    p->num_data_blocks,
                    p->raw_key_bytes,
                    p->raw_value_bytes,
                    p->num_entries ? p->min_seqno : 0,
                    p->max_seqno,
                    p->oldest_expire_at,
                    p->min_write_ts,
                    p->max_write_ts};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        lsm_buf_append_varint64(out, v[i]);
    }
    lsm_buf_append_varint32(out, (uint32_t)p->smallest.len);
    lsm_buf_append(out, p->smallest.p, p->smallest.len);
    lsm_buf_append_varint32(out, (uint32_t)p->largest.len);
    lsm_buf_append(out, p->largest.p, p->largest.len);
}

static void put_handle(char *p, const struct handle *h)
{
    enc_fixed64(p, h->offset);
    enc_fixed64(p + 8, h->size);
}

static int finish_table(struct sst_builder *b, bool sync)
{
    struct sst_props *p = &b->props;
    int rc = flush_data_block(b);
    if (rc != LSM_OK) {
        return rc;
    }
    if (b->index_pending) {
        add_index_entry(b, b->last_key.p, b->last_key.len);
    }
    lsm_buf_append(&p->largest, b->last_key.p, b->last_key.len);
    if (p->num_entries == 0) {
        p->min_seqno = 0;
    }
    struct handle filter_h = {b->f->size + b->out.len, 0}, props_h, index_h;
    struct lsm_buf tmp = {0};
    if (b->opt.bloom_bits_per_key > 0 && p->num_entries > 0) {
        bloom_builder_finish(&b->bloom, &tmp);
        rc = write_frame(b, &tmp, &filter_h);
    }
    if (rc == LSM_OK) {
        lsm_buf_clear(&tmp);
        encode_props(p, &tmp);
        rc = write_frame(b, &tmp, &props_h);
    }
    if (rc == LSM_OK) {
        size_t len;
        block_builder_finish(&b->index, &len);
        rc = write_frame(b, &b->index.buf, &index_h);
    }
    lsm_buf_free(&tmp);
    if (rc == LSM_OK) {
        char footer[SST_FOOTER_SIZE];
        put_handle(footer, &index_h);
        put_handle(footer + 16, &filter_h);
        put_handle(footer + 32, &props_h);
        enc_fixed32(footer + 48, SST_FORMAT_VERSION);
        enc_fixed32(footer + 52, crc32c_mask(crc32c_value(footer, 52)));
        enc_fixed64(footer + 56, SST_MAGIC);
        lsm_buf_append(&b->out, footer, sizeof(footer));
        rc = write_out(b);
    }
    if (rc == LSM_OK && sync) {
        rc = env_sync(b->f, &b->err);
    }
    p->file_size = b->f->size;
    return rc;
}

static void builder_free(struct sst_builder *b)
{
    env_close(&b->f);
    block_builder_free(&b->data);
    block_builder_free(&b->index);
    bloom_builder_free(&b->bloom);
    lsm_buf_free(&b->last_key);
    lsm_buf_free(&b->sep);
    lsm_buf_free(&b->out);
    sst_props_free(&b->props);
    lsm_free(b);
}

int sst_builder_finish(struct sst_builder **bp, bool sync, struct sst_props *props,
                       struct lsm_err *err)
{
    struct sst_builder *b = *bp;
    int rc = b->status != LSM_OK ? b->status : finish_table(b, sync);
    if (rc != LSM_OK) {
        lsm_err_set(err, rc, "%s", b->err.msg);
    } else if (props != NULL) {
        *props = b->props;
        memset(&b->props.smallest, 0, sizeof(b->props.smallest)); /* moved out */
        memset(&b->props.largest, 0, sizeof(b->props.largest));
    }
    builder_free(b);
    *bp = NULL;
    return rc;
}

void sst_builder_abandon(struct sst_builder **bp)
{
    if (*bp != NULL) {
        builder_free(*bp);
        *bp = NULL;
    }
}

/* ------------------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------------------ */

/* A data block read from disk: the parsed block followed by its bytes. */
struct loaded_block {
    struct block blk;
    char data[]; /* contents, then the frame trailer */
};

struct sst_reader {
    struct env_file *f;
    const char *name; /* base name, for messages */
    uint64_t file_number;
    struct block_cache *cache;
    uint64_t data_end; /* blocks live in [0, data_end) */
    char *index_data;
    struct block index;
    char *filter_data;
    struct bloom_filter filter; /* num_lines 0: no filter */
    struct sst_props props;
};

static int corrupt(const struct sst_reader *r, struct lsm_err *err, uint64_t off,
                   const char *what)
{
    return lsm_err_set(err, LSM_CORRUPT, "sst %s: block at %llu: %s", r->name,
                       (unsigned long long)off, what);
}

/* Checks a frame that was read into buf (contents then trailer). */
static int check_frame(const struct sst_reader *r, const char *buf,
                       const struct handle *h, struct lsm_err *err)
{
    const char *t = buf + h->size;
    uint32_t crc = crc32c_extend(crc32c_value(buf, h->size), t, 1);
    if (crc32c_mask(crc) != dec_fixed32(t + 1)) {
        return corrupt(r, err, h->offset, "bad checksum");
    }
    if (t[0] != BLOCK_RAW) {
        return corrupt(r, err, h->offset, "unknown compression type");
    }
    return LSM_OK;
}

static int check_handle(const struct sst_reader *r, const struct handle *h,
                        struct lsm_err *err)
{
    if (h->offset > r->data_end || h->size > r->data_end - h->offset ||
        r->data_end - h->offset - h->size < BLOCK_TRAILER) {
        return corrupt(r, err, h->offset, "block handle out of range");
    }
    return LSM_OK;
}

/* Reads and checks a whole frame into a new buffer (lsm_free it). */
static int read_frame(const struct sst_reader *r, const struct handle *h, char **out,
                      struct lsm_err *err)
{
    int rc = check_handle(r, h, err);
    if (rc != LSM_OK) {
        return rc;
    }
    char *buf = lsm_malloc(h->size + BLOCK_TRAILER);
    size_t got;
    rc = env_pread(r->f, buf, h->size + BLOCK_TRAILER, h->offset, &got, err);
    if (rc == LSM_OK && got != h->size + BLOCK_TRAILER) {
        rc = corrupt(r, err, h->offset, "file shorter than the block");
    }
    if (rc == LSM_OK) {
        rc = check_frame(r, buf, h, err);
    }
    if (rc != LSM_OK) {
        lsm_free(buf);
        return rc;
    }
    *out = buf;
    return LSM_OK;
}

static int decode_props(struct sst_reader *r, const char *p, size_t len,
                        struct lsm_err *err, uint64_t off)
{
    const char *limit = p + len;
    struct sst_props *pr = &r->props;
    uint64_t *fields[] = {&pr->num_entries,     &pr->num_deletions, &pr->num_expiring,
                          &pr->num_data_blocks, &pr->raw_key_bytes, &pr->raw_value_bytes,
                          &pr->min_seqno,       &pr->max_seqno,     &pr->oldest_expire_at,
                          &pr->min_write_ts,    &pr->max_write_ts};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if ((p = dec_varint64(p, limit, fields[i])) == NULL) {
            return corrupt(r, err, off, "bad properties");
        }
    }
    struct lsm_buf *keys[] = {&pr->smallest, &pr->largest};
    for (int i = 0; i < 2; i++) {
        uint32_t n;
        if ((p = dec_varint32(p, limit, &n)) == NULL || n > (size_t)(limit - p)) {
            return corrupt(r, err, off, "bad properties");
        }
        lsm_buf_append(keys[i], p, n);
        p += n;
    }
    return LSM_OK;
}

static void get_handle(const char *p, struct handle *h)
{
    h->offset = dec_fixed64(p);
    h->size = dec_fixed64(p + 8);
}

static int open_table(struct sst_reader *r, struct lsm_err *err)
{
    uint64_t size;
    int rc = env_file_size(r->f, &size, err);
    if (rc != LSM_OK) {
        return rc;
    }
    if (size < SST_FOOTER_SIZE) {
        return lsm_err_set(err, LSM_CORRUPT, "sst %s: file too short (%llu bytes)",
                           r->name, (unsigned long long)size);
    }
    char footer[SST_FOOTER_SIZE];
    size_t got;
    rc = env_pread(r->f, footer, sizeof(footer), size - SST_FOOTER_SIZE, &got, err);
    if (rc != LSM_OK) {
        return rc;
    }
    if (got != SST_FOOTER_SIZE || dec_fixed64(footer + 56) != SST_MAGIC) {
        return lsm_err_set(err, LSM_CORRUPT, "sst %s: footer: bad magic", r->name);
    }
    if (crc32c_mask(crc32c_value(footer, 52)) != dec_fixed32(footer + 52)) {
        return lsm_err_set(err, LSM_CORRUPT, "sst %s: footer: bad checksum", r->name);
    }
    if (dec_fixed32(footer + 48) != SST_FORMAT_VERSION) {
        return lsm_err_set(err, LSM_CORRUPT, "sst %s: footer: unknown version %u",
                           r->name, dec_fixed32(footer + 48));
    }
    r->data_end = size - SST_FOOTER_SIZE;
    struct handle index_h, filter_h, props_h;
    get_handle(footer, &index_h);
    get_handle(footer + 16, &filter_h);
    get_handle(footer + 32, &props_h);

    char *props_data;
    rc = read_frame(r, &props_h, &props_data, err);
    if (rc != LSM_OK) {
        return rc;
    }
    rc = decode_props(r, props_data, props_h.size, err, props_h.offset);
    lsm_free(props_data);
    if (rc != LSM_OK) {
        return rc;
    }
    r->props.file_size = size;
    rc = read_frame(r, &index_h, &r->index_data, err);
    if (rc != LSM_OK) {
        return rc;
    }
    if (block_parse(r->index_data, index_h.size, &r->index) != LSM_OK) {
        return corrupt(r, err, index_h.offset, "bad index block");
    }
    if (filter_h.size > 0) {
        rc = read_frame(r, &filter_h, &r->filter_data, err);
        if (rc != LSM_OK) {
            return rc;
        }
        /* a malformed filter matches everything: it can cost reads, never keys */
        bloom_filter_parse(r->filter_data, filter_h.size, &r->filter);
    }
    return LSM_OK;
}

int sst_reader_open_file(struct env_file *f, uint64_t file_number,
                         struct block_cache *cache, struct sst_reader **out,
                         struct lsm_err *err)
{
    struct sst_reader *r = lsm_calloc(1, sizeof(*r));
    r->f = f;
    r->name = base_name(f->path);
    r->file_number = file_number;
    r->cache = cache;
    int rc = open_table(r, err);
    if (rc != LSM_OK) {
        sst_reader_close(&r);
        return rc;
    }
    *out = r;
    return LSM_OK;
}

int sst_reader_open(const char *path, uint64_t file_number, struct block_cache *cache,
                    struct sst_reader **out, struct lsm_err *err)
{
    struct env_file *f;
    int rc = env_open_read(path, &f, err);
    if (rc != LSM_OK) {
        return rc;
    }
    return sst_reader_open_file(f, file_number, cache, out, err);
}

void sst_reader_close(struct sst_reader **rp)
{
    struct sst_reader *r = *rp;
    if (r == NULL) {
        return;
    }
    env_close(&r->f);
    lsm_free(r->index_data);
    lsm_free(r->filter_data);
    sst_props_free(&r->props);
    lsm_free(r);
    *rp = NULL;
}

const struct sst_props *sst_reader_props(const struct sst_reader *r)
{
    return &r->props;
}

bool sst_reader_may_contain(const struct sst_reader *r, uint64_t hash)
{
    return bloom_may_contain(&r->filter, hash);
}

static int decode_index_value(const struct sst_reader *r, const struct block_iter *it,
                              struct handle *h, struct lsm_err *err)
{
    const char *p = block_iter_value(it), *limit = p + block_iter_value_len(it);
    if ((p = dec_varint64(p, limit, &h->offset)) == NULL ||
        dec_varint64(p, limit, &h->size) == NULL) {
        return lsm_err_set(err, LSM_CORRUPT, "sst %s: index: bad block handle", r->name);
    }
    return check_handle(r, h, err);
}

static void loaded_block_free(void *v)
{
    lsm_free(v);
}

/* Reads, checks and parses the data block at h into a new loaded_block. */
static int load_block(const struct sst_reader *r, const struct handle *h,
                      struct loaded_block **out, struct lsm_err *err)
{
    struct loaded_block *lb = lsm_malloc(sizeof(*lb) + h->size + BLOCK_TRAILER);
    size_t got;
    int rc = env_pread(r->f, lb->data, h->size + BLOCK_TRAILER, h->offset, &got, err);
    if (rc == LSM_OK && got != h->size + BLOCK_TRAILER) {
        rc = corrupt(r, err, h->offset, "file shorter than the block");
    }
    if (rc == LSM_OK) {
        rc = check_frame(r, lb->data, h, err);
    }
    if (rc == LSM_OK && block_parse(lb->data, h->size, &lb->blk) != LSM_OK) {
        rc = corrupt(r, err, h->offset, "bad block trailer");
    }
    if (rc != LSM_OK) {
        lsm_free(lb);
        return rc;
    }
    *out = lb;
    return LSM_OK;
}

/* A data block in use: pinned in the cache or owned. */
struct block_ref {
    const struct block *blk;
    struct cache_handle *pin;
    struct loaded_block *owned;
};

static int get_block(const struct sst_reader *r, const struct handle *h, bool fill_cache,
                     struct block_ref *ref, struct lsm_err *err)
{
    ref->pin = NULL;
    ref->owned = NULL;
    if (r->cache != NULL) {
        ref->pin = block_cache_lookup(r->cache, r->file_number, h->offset);
        if (ref->pin != NULL) {
            ref->blk = &((struct loaded_block *)cache_handle_value(ref->pin))->blk;
            return LSM_OK;
        }
    }
    struct loaded_block *lb;
    int rc = load_block(r, h, &lb, err);
    if (rc != LSM_OK) {
        return rc;
    }
    if (r->cache != NULL && fill_cache) {
        ref->pin =
            block_cache_insert(r->cache, r->file_number, h->offset, lb,
                               sizeof(*lb) + h->size + BLOCK_TRAILER, loaded_block_free);
    } else {
        ref->owned = lb;
    }
    ref->blk = &lb->blk;
    return LSM_OK;
}

static void put_block(const struct sst_reader *r, struct block_ref *ref)
{
    if (ref->pin != NULL) {
        block_cache_release(r->cache, ref->pin);
    }
    lsm_free(ref->owned);
    ref->pin = NULL;
    ref->owned = NULL;
}

void sst_found_release(struct sst_found *f)
{
    if (f->pin != NULL) {
        block_cache_release(f->cache, f->pin);
    }
    lsm_free(f->owned);
    lsm_free(f->key_heap);
    f->pin = NULL;
    f->owned = NULL;
    f->key_heap = NULL;
}

int sst_reader_get(struct sst_reader *r, const char *lkey, size_t lkey_len, uint64_t hash,
                   struct sst_found *out, struct lsm_err *err)
{
    if (lkey_len < IKEY_TRAILER_LEN) {
        return lsm_err_set(err, LSM_INVALID, "sst %s: lookup key shorter than 8",
                           r->name);
    }
    if (!bloom_may_contain(&r->filter, hash)) {
        return LSM_NOTFOUND;
    }
    struct block_iter ii;
    block_iter_init(&ii, &r->index, ikey_cmp_safe);
    block_iter_seek(&ii, lkey, lkey_len);
    int rc = LSM_NOTFOUND;
    /* at most two blocks: the key may sit just past the end of the first one */
    for (int round = 0; round < 2 && block_iter_valid(&ii);
         round++, block_iter_next(&ii)) {
        struct handle h;
        rc = decode_index_value(r, &ii, &h, err);
        if (rc != LSM_OK) {
            break;
        }
        struct block_ref ref;
        rc = get_block(r, &h, true, &ref, err);
        if (rc != LSM_OK) {
            break;
        }
        struct block_iter di;
        block_iter_init(&di, ref.blk, ikey_cmp_safe);
        block_iter_seek(&di, lkey, lkey_len);
        if (block_iter_status(&di) != LSM_OK) {
            rc = corrupt(r, err, h.offset, "bad entry");
        } else if (!block_iter_valid(&di)) {
            rc = LSM_NOTFOUND; /* past this block: try the next */
        } else {
            size_t klen = block_iter_key_len(&di);
            const char *k = block_iter_key(&di);
            rc = LSM_NOTFOUND;
            if (klen >= IKEY_TRAILER_LEN &&
                user_key_compare(k, klen - IKEY_TRAILER_LEN, lkey,
                                 lkey_len - IKEY_TRAILER_LEN) == 0) {
                char *kb =
                    klen <= sizeof(out->key_inline) ? out->key_inline : lsm_malloc(klen);
                memcpy(kb, k, klen);
                uint64_t t = ikey_trailer_of(k, klen);
                out->ikey = kb;
                out->ikey_len = klen;
                out->value = block_iter_value(&di);
                out->value_len = block_iter_value_len(&di);
                out->seqno = t >> 8;
                out->kind = (unsigned)(t & 0xff);
                out->cache = r->cache;
                out->pin = ref.pin;
                out->owned = ref.owned;
                out->key_heap = kb == out->key_inline ? NULL : kb;
                block_iter_free(&di);
                block_iter_free(&ii);
                return LSM_OK;
            }
            round = 2; /* found a different key: no need for the next block */
        }
        block_iter_free(&di);
        put_block(r, &ref);
        if (rc != LSM_NOTFOUND) {
            break;
        }
    }
    if (rc == LSM_NOTFOUND && block_iter_status(&ii) != LSM_OK) {
        rc = lsm_err_set(err, LSM_CORRUPT, "sst %s: index: bad entry", r->name);
    }
    block_iter_free(&ii);
    return rc;
}

/* ------------------------------------------------------------------------------
 * Iterator
 * ------------------------------------------------------------------------------ */

struct sst_iter {
    struct sst_reader *r;
    bool fill_cache;
    size_t readahead_max;
    const char *upper; /* exclusive upper bound on user keys, NULL = none */
    size_t upper_len;
    struct block_iter index_it;
    struct block_iter data_it;
    bool data_loaded;     /* data_it is on a block */
    struct block_ref ref; /* the block data_it walks (when from the cache or owned) */
    struct block own_blk; /* the block, when it lives in buf */
    char *buf;            /* read-ahead buffer */
    size_t buf_cap;
    uint64_t buf_off;  /* file offset of buf[0] */
    size_t buf_len;    /* bytes valid in buf */
    uint64_t last_end; /* end of the last block read, for detecting sequence */
    int seq_reads;     /* consecutive sequential block reads */
    int status;
    struct lsm_err err;
};

struct sst_iter *sst_iter_create(struct sst_reader *r, const struct sst_iter_options *opt)
{
    struct sst_iter *it = lsm_calloc(1, sizeof(*it));
    it->r = r;
    it->fill_cache = opt ? opt->fill_cache : true;
    it->readahead_max = opt && opt->readahead ? opt->readahead : DEFAULT_READAHEAD;
    it->upper = opt ? opt->upper : NULL;
    it->upper_len = opt ? opt->upper_len : 0;
    block_iter_init(&it->index_it, &r->index, ikey_cmp_safe);
    return it;
}

static void drop_block(struct sst_iter *it)
{
    if (it->data_loaded) {
        block_iter_free(&it->data_it);
        put_block(it->r, &it->ref);
        it->data_loaded = false;
    }
}

void sst_iter_destroy(struct sst_iter **itp)
{
    struct sst_iter *it = *itp;
    if (it == NULL) {
        return;
    }
    drop_block(it);
    block_iter_free(&it->index_it);
    lsm_free(it->buf);
    lsm_free(it);
    *itp = NULL;
}

static void set_error(struct sst_iter *it, int rc)
{
    if (it->status == LSM_OK) {
        it->status = rc;
    }
    drop_block(it);
}

/* Reads block h through the read-ahead buffer; the block stays valid until the next
 * read into buf. */
static int read_via_buffer(struct sst_iter *it, const struct handle *h)
{
    uint64_t need = h->size + BLOCK_TRAILER;
    if (h->offset < it->buf_off || h->offset + need > it->buf_off + it->buf_len) {
        size_t want = (size_t)need;
        if (it->seq_reads >= 2) {
            size_t ra = (size_t)8192 << (it->seq_reads - 2 < 6 ? it->seq_reads - 2 : 6);
            ra = ra < it->readahead_max ? ra : it->readahead_max;
            want = want > ra ? want : ra;
        }
        if (h->offset + want > it->r->data_end) {
            want = (size_t)(it->r->data_end - h->offset);
        }
        if (want > it->buf_cap) {
            lsm_free(it->buf);
            it->buf = lsm_malloc(want);
            it->buf_cap = want;
        }
        int rc = env_pread(it->r->f, it->buf, want, h->offset, &it->buf_len, &it->err);
        it->buf_off = h->offset;
        if (rc != LSM_OK) {
            it->buf_len = 0;
            return rc;
        }
        if (it->buf_len < need) {
            it->buf_len = 0;
            return corrupt(it->r, &it->err, h->offset, "file shorter than the block");
        }
    }
    const char *p = it->buf + (h->offset - it->buf_off);
    int rc = check_frame(it->r, p, h, &it->err);
    if (rc == LSM_OK && block_parse(p, h->size, &it->own_blk) != LSM_OK) {
        rc = corrupt(it->r, &it->err, h->offset, "bad block trailer");
    }
    return rc;
}

/* Opens the data block the index iterator points at. */
static bool load_data_block(struct sst_iter *it)
{
    drop_block(it);
    if (!block_iter_valid(&it->index_it)) {
        if (block_iter_status(&it->index_it) != LSM_OK) {
            lsm_err_set(&it->err, LSM_CORRUPT, "sst %s: index: bad entry", it->r->name);
            set_error(it, LSM_CORRUPT);
        }
        return false;
    }
    struct handle h;
    int rc = decode_index_value(it->r, &it->index_it, &h, &it->err);
    if (rc != LSM_OK) {
        set_error(it, rc);
        return false;
    }
    it->seq_reads = h.offset == it->last_end ? it->seq_reads + 1 : 0;
    it->last_end = h.offset + h.size + BLOCK_TRAILER;
    const struct block *blk;
    it->ref.pin = NULL;
    it->ref.owned = NULL;
    struct cache_handle *pin =
        it->r->cache ? block_cache_lookup(it->r->cache, it->r->file_number, h.offset)
                     : NULL;
    if (pin != NULL) {
        it->ref.pin = pin;
        blk = &((struct loaded_block *)cache_handle_value(pin))->blk;
    } else if (it->fill_cache && it->r->cache != NULL) {
        rc = get_block(it->r, &h, true, &it->ref, &it->err);
        blk = it->ref.blk;
    } else {
        rc = read_via_buffer(it, &h);
        blk = &it->own_blk;
    }
    if (rc != LSM_OK) {
        set_error(it, rc);
        return false;
    }
    block_iter_init(&it->data_it, blk, ikey_cmp_safe);
    it->data_loaded = true;
    return true;
}

/* Moves forward over empty or exhausted blocks until an entry or the end. */
static void skip_empty_blocks(struct sst_iter *it)
{
    while (it->status == LSM_OK && it->data_loaded && !block_iter_valid(&it->data_it)) {
        if (block_iter_status(&it->data_it) != LSM_OK) {
            lsm_err_set(&it->err, LSM_CORRUPT, "sst %s: data block: bad entry",
                        it->r->name);
            set_error(it, LSM_CORRUPT);
            return;
        }
        if (it->upper != NULL && block_iter_valid(&it->index_it)) {
            /* the next block's keys all sort after this block's separator */
            size_t sl = block_iter_key_len(&it->index_it);
            if (sl >= IKEY_TRAILER_LEN &&
                user_key_compare(block_iter_key(&it->index_it), sl - IKEY_TRAILER_LEN,
                                 it->upper, it->upper_len) >= 0) {
                drop_block(it);
                return;
            }
        }
        block_iter_next(&it->index_it);
        if (!load_data_block(it)) {
            return;
        }
        block_iter_seek_to_first(&it->data_it);
    }
}

void sst_iter_seek_to_first(struct sst_iter *it)
{
    if (it->status != LSM_OK) {
        return;
    }
    block_iter_seek_to_first(&it->index_it);
    if (load_data_block(it)) {
        block_iter_seek_to_first(&it->data_it);
        skip_empty_blocks(it);
    }
}

void sst_iter_seek(struct sst_iter *it, const char *ikey, size_t ikey_len)
{
    if (it->status != LSM_OK) {
        return;
    }
    block_iter_seek(&it->index_it, ikey, ikey_len);
    if (load_data_block(it)) {
        block_iter_seek(&it->data_it, ikey, ikey_len);
        skip_empty_blocks(it);
    }
}

void sst_iter_next(struct sst_iter *it)
{
    if (!sst_iter_valid(it)) {
        return;
    }
    block_iter_next(&it->data_it);
    skip_empty_blocks(it);
}

bool sst_iter_valid(const struct sst_iter *it)
{
    return it->status == LSM_OK && it->data_loaded && block_iter_valid(&it->data_it);
}

const char *sst_iter_key(const struct sst_iter *it, size_t *len)
{
    *len = block_iter_key_len(&it->data_it);
    return block_iter_key(&it->data_it);
}

const char *sst_iter_value(const struct sst_iter *it, size_t *len)
{
    *len = block_iter_value_len(&it->data_it);
    return block_iter_value(&it->data_it);
}

int sst_iter_status(const struct sst_iter *it, struct lsm_err *err)
{
    if (it->status != LSM_OK) {
        lsm_err_set(err, it->status, "%s", it->err.msg);
    }
    return it->status;
}
