/* engine/wal.c: WAL segment writer and reader (see engine/wal.h and engine/FORMAT.md
 * "WAL segment"). The writer fragments records into 32 KiB blocks in a memory buffer
 * and writes the buffer with one call; the reader reassembles them and decides, at
 * the first damaged fragment, between a torn tail (truncate) and corruption (fail).
 */
#include "engine/wal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "engine/crc32c.h"
#include "engine/dbformat.h"

#define WAL_MAGIC 0x4C41574Bu /* "KWAL" in file order. On disk: never change */
#define WAL_VERSION 1         /* on disk: never renumber */

/* Fragment types. On disk: never renumber. */
enum {
    WAL_ZERO = 0, /* preallocated space, never written */
    WAL_FULL = 1,
    WAL_FIRST = 2,
    WAL_MIDDLE = 3,
    WAL_LAST = 4,
};

static uint32_t log_seed(uint64_t log_number)
{
    char b[8];
    enc_fixed64(b, log_number);
    return crc32c_value(b, 8);
}

/* crc of a fragment: seed (the log number) extended by length, type and payload */
static uint32_t fragment_crc(uint32_t seed, const char *hdr_len_type, const char *payload,
                             size_t len)
{
    uint32_t c = crc32c_extend(seed, hdr_len_type, 3);
    return crc32c_mask(crc32c_extend(c, payload, len));
}

/* ------------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------------ */

struct wal_writer {
    struct env_file *f;
    uint32_t seed;            /* crc of the log number */
    uint64_t prealloc_bytes;  /* chunk size, 0 = no preallocation */
    uint64_t prealloc_end;    /* file space reserved up to here */
    struct lsm_buf pending;   /* encoded fragments not yet written */
    size_t block_offset;      /* where the end of pending falls within its block */
    _Atomic uint64_t flushed; /* bytes of the file written */
    atomic_int failed;        /* sticky: a write or sync failed */
};

int wal_writer_create(const char *path, const struct wal_writer_options *opt,
                      struct wal_writer **out, struct lsm_err *err)
{
    struct env_file *f;
    int rc = env_create(path, &f, err);
    if (rc != LSM_OK) {
        return rc;
    }
    struct wal_writer *w = lsm_calloc(1, sizeof(*w));
    w->f = f;
    w->seed = log_seed(opt->log_number);
    w->prealloc_bytes = opt->prealloc_bytes;
    char hdr[WAL_HEADER_SIZE];
    enc_fixed32(hdr, WAL_MAGIC);
    enc_fixed16(hdr + 4, WAL_VERSION);
    enc_fixed16(hdr + 6, 0);
    enc_fixed64(hdr + 8, opt->log_number);
    lsm_buf_append(&w->pending, hdr, sizeof(hdr));
    w->block_offset = WAL_HEADER_SIZE;
    rc = wal_writer_flush(w, err);
    if (rc != LSM_OK) {
        wal_writer_close(&w, false, NULL);
        return rc;
    }
    *out = w;
    return LSM_OK;
}

static void emit_fragment(struct wal_writer *w, int type, const char *p, size_t n)
{
    char hdr[WAL_FRAGMENT_HEADER];
    enc_fixed16(hdr + 4, (uint16_t)n);
    hdr[6] = (char)type;
    enc_fixed32(hdr, fragment_crc(w->seed, hdr + 4, p, n));
    lsm_buf_append(&w->pending, hdr, sizeof(hdr));
    lsm_buf_append(&w->pending, p, n);
    w->block_offset += WAL_FRAGMENT_HEADER + n;
}

void wal_writer_add(struct wal_writer *w, const void *payload, size_t len)
{
    static const char zeros[WAL_FRAGMENT_HEADER];
    const char *p = payload;
    bool begin = true;
    lsm_buf_reserve(&w->pending,
                    len + (len / (WAL_BLOCK_SIZE - WAL_FRAGMENT_HEADER) + 2) *
                              (2 * WAL_FRAGMENT_HEADER));
    do {
        size_t leftover = WAL_BLOCK_SIZE - w->block_offset;
        if (leftover < WAL_FRAGMENT_HEADER) {
            lsm_buf_append(&w->pending, zeros, leftover); /* block padding */
            w->block_offset = 0;
        }
        size_t avail = WAL_BLOCK_SIZE - w->block_offset - WAL_FRAGMENT_HEADER;
        size_t n = len < avail ? len : avail;
        bool end = n == len;
        int type = begin && end ? WAL_FULL
                   : begin      ? WAL_FIRST
                   : end        ? WAL_LAST
                                : WAL_MIDDLE;
        emit_fragment(w, type, p, n);
        p += n;
        len -= n;
        begin = false;
    } while (len > 0);
}

size_t wal_writer_pending(const struct wal_writer *w)
{
    return w->pending.len;
}

int wal_writer_flush(struct wal_writer *w, struct lsm_err *err)
{
    if (atomic_load(&w->failed)) {
        return lsm_err_set(err, LSM_IOERR, "wal %s: an earlier write or sync failed",
                           w->f->path);
    }
    if (w->pending.len == 0) {
        return LSM_OK;
    }
    uint64_t end = w->f->size + w->pending.len;
    int rc = LSM_OK;
    if (w->prealloc_bytes && end > w->prealloc_end) {
        uint64_t new_end =
            (end + w->prealloc_bytes - 1) / w->prealloc_bytes * w->prealloc_bytes;
        rc = env_preallocate(w->f, w->prealloc_end, new_end - w->prealloc_end, err);
        if (rc == LSM_OK) {
            w->prealloc_end = new_end;
        }
    }
    if (rc == LSM_OK) {
        rc = env_append(w->f, w->pending.p, w->pending.len, err);
    }
    if (rc != LSM_OK) {
        atomic_store(&w->failed, 1);
        return rc;
    }
    lsm_buf_clear(&w->pending);
    atomic_store_explicit(&w->flushed, w->f->size, memory_order_release);
    return LSM_OK;
}

int wal_writer_append(struct wal_writer *w, const void *payload, size_t len,
                      struct lsm_err *err)
{
    wal_writer_add(w, payload, len);
    return wal_writer_flush(w, err);
}

int wal_writer_sync(struct wal_writer *w, struct lsm_err *err)
{
    if (atomic_load(&w->failed)) {
        return lsm_err_set(err, LSM_IOERR, "wal %s: an earlier write or sync failed",
                           w->f->path);
    }
    int rc = env_datasync(w->f, err);
    if (rc != LSM_OK) {
        atomic_store(&w->failed, 1); /* the kernel may have dropped the dirty pages */
    }
    return rc;
}

uint64_t wal_writer_flushed_offset(const struct wal_writer *w)
{
    return atomic_load_explicit(&w->flushed, memory_order_acquire);
}

int wal_writer_close(struct wal_writer **wp, bool sync, struct lsm_err *err)
{
    struct wal_writer *w = *wp;
    if (w == NULL) {
        return LSM_OK;
    }
    int rc = LSM_OK;
    if (!atomic_load(&w->failed)) {
        rc = wal_writer_flush(w, err);
        if (rc == LSM_OK && w->prealloc_end > w->f->size) {
            rc = env_truncate(w->f, w->f->size, err);
        }
        if (rc == LSM_OK && sync) {
            rc = env_datasync(w->f, err);
        }
    }
    env_close(&w->f);
    lsm_buf_free(&w->pending);
    lsm_free(w);
    *wp = NULL;
    return rc;
}

/* ------------------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------------------ */

struct wal_reader {
    struct env_file *f;
    uint64_t file_size;
    uint64_t log_number;
    uint32_t seed;
    char *block;          /* WAL_BLOCK_SIZE bytes: the block being parsed */
    char *scratch;        /* WAL_BLOCK_SIZE bytes for looking ahead after damage */
    uint64_t block_start; /* file offset of block[0] */
    size_t block_len;     /* bytes of the block present in the file */
    size_t pos;           /* next fragment within the block */
    struct lsm_buf rec;   /* the record being reassembled */
    uint64_t rec_off;     /* offset of its first fragment */
    uint64_t last_off;    /* offset of the record last returned */
    uint64_t valid_end;   /* end of the last whole record */
    bool torn;
    char tail_reason[96]; /* why the log ended torn */
    bool at_end;
    int status; /* sticky error */
    struct lsm_err err;
};

static int load_block(struct wal_reader *r, uint64_t start)
{
    r->block_start = start;
    r->pos = start == 0 ? WAL_HEADER_SIZE : 0;
    size_t want = WAL_BLOCK_SIZE;
    if (start >= r->file_size) {
        r->block_len = 0;
        return LSM_OK;
    }
    if (r->file_size - start < want) {
        want = (size_t)(r->file_size - start);
    }
    return env_pread(r->f, r->block, want, start, &r->block_len, &r->err);
}

int wal_reader_open_file(struct env_file *f, struct wal_reader **out, struct lsm_err *err)
{
    struct wal_reader *r = lsm_calloc(1, sizeof(*r));
    r->f = f;
    r->block = lsm_malloc(WAL_BLOCK_SIZE);
    int rc = env_file_size(f, &r->file_size, err);
    if (rc != LSM_OK) {
        wal_reader_close(&r);
        return rc;
    }
    rc = load_block(r, 0);
    if (rc != LSM_OK) {
        lsm_err_set(err, rc, "%s", r->err.msg);
        wal_reader_close(&r);
        return rc;
    }
    static const char zero_header[WAL_HEADER_SIZE];
    if (r->block_len < WAL_HEADER_SIZE ||
        memcmp(r->block, zero_header, WAL_HEADER_SIZE) == 0) {
        /* created but the header never reached the disk: an empty log */
        r->at_end = true;
        r->torn = r->block_len > 0;
        snprintf(r->tail_reason, sizeof(r->tail_reason), "segment header incomplete");
        *out = r;
        return LSM_OK;
    }
    if (dec_fixed32(r->block) != WAL_MAGIC || dec_fixed16(r->block + 4) != WAL_VERSION) {
        lsm_err_set(err, LSM_CORRUPT, "wal %s: bad magic or version in header", f->path);
        wal_reader_close(&r);
        return LSM_CORRUPT;
    }
    r->log_number = dec_fixed64(r->block + 8);
    r->seed = log_seed(r->log_number);
    r->valid_end = WAL_HEADER_SIZE;
    *out = r;
    return LSM_OK;
}

int wal_reader_open(const char *path, struct wal_reader **out, struct lsm_err *err)
{
    struct env_file *f;
    int rc = env_open_read(path, &f, err);
    if (rc != LSM_OK) {
        return rc;
    }
    return wal_reader_open_file(f, out, err);
}

/* Whether avail bytes at p (within one block) start with a valid fragment. */
static bool fragment_valid(const struct wal_reader *r, const char *p, size_t avail)
{
    if (avail < WAL_FRAGMENT_HEADER) {
        return false;
    }
    size_t len = dec_fixed16(p + 4);
    int type = (unsigned char)p[6];
    if (type < WAL_FULL || type > WAL_LAST || WAL_FRAGMENT_HEADER + len > avail) {
        return false;
    }
    return dec_fixed32(p) == fragment_crc(r->seed, p + 4, p + WAL_FRAGMENT_HEADER, len);
}

/* After damage at offset x (in the current block): the offset of a valid fragment
 * anywhere after it, or 0 when there is none (a torn tail). */
static uint64_t find_valid_after(struct wal_reader *r, uint64_t x)
{
    /* the rest of the current block, byte by byte (the damage may hide lengths) */
    for (size_t p = (size_t)(x - r->block_start) + 1;
         p + WAL_FRAGMENT_HEADER <= r->block_len; p++) {
        if (fragment_valid(r, r->block + p, r->block_len - p)) {
            return r->block_start + p;
        }
    }
    /* the first fragment of every later block */
    if (r->scratch == NULL) {
        r->scratch = lsm_malloc(WAL_BLOCK_SIZE);
    }
    for (uint64_t b = r->block_start + WAL_BLOCK_SIZE; b < r->file_size;
         b += WAL_BLOCK_SIZE) {
        size_t got;
        if (env_pread(r->f, r->scratch, WAL_FRAGMENT_HEADER, b, &got, NULL) != LSM_OK ||
            got < WAL_FRAGMENT_HEADER) {
            break;
        }
        int type = (unsigned char)r->scratch[6];
        size_t len = dec_fixed16(r->scratch + 4);
        if (type < WAL_FULL || type > WAL_LAST ||
            WAL_FRAGMENT_HEADER + len > WAL_BLOCK_SIZE) {
            continue;
        }
        if (env_pread(r->f, r->scratch, WAL_FRAGMENT_HEADER + len, b, &got, NULL) !=
            LSM_OK) {
            break;
        }
        if (fragment_valid(r, r->scratch, got)) {
            return b;
        }
    }
    return 0;
}

/* Damage at offset x: a torn tail (end of log) or corruption (sticky error). */
static int damage(struct wal_reader *r, uint64_t x, bool in_record, const char *what)
{
    uint64_t y = find_valid_after(r, x);
    if (y != 0) {
        r->status = lsm_err_set(
            &r->err, LSM_CORRUPT, "wal %s: %s at offset %llu (valid fragment at %llu)",
            r->f->path, what, (unsigned long long)x, (unsigned long long)y);
        return r->status;
    }
    r->at_end = true;
    r->torn = true;
    r->valid_end = in_record ? r->rec_off : x;
    snprintf(r->tail_reason, sizeof(r->tail_reason), "%s at offset %llu", what,
             (unsigned long long)x);
    return LSM_NOTFOUND;
}

static bool all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static int reader_step(struct wal_reader *r, const char **payload, size_t *len)
{
    bool in_record = false;
    lsm_buf_clear(&r->rec);
    for (;;) {
        uint64_t x = r->block_start + r->pos;
        size_t avail = r->block_len - r->pos;
        if (avail < WAL_FRAGMENT_HEADER) {
            if (r->block_len == WAL_BLOCK_SIZE) { /* padding: on to the next block */
                int rc = load_block(r, r->block_start + WAL_BLOCK_SIZE);
                if (rc != LSM_OK) {
                    return r->status = rc;
                }
                continue;
            }
            if (!all_zero(r->block + r->pos, avail)) {
                return damage(r, x, in_record, "truncated fragment header");
            }
            r->at_end = true; /* end of file */
            r->torn = in_record;
            r->valid_end = in_record ? r->rec_off : x;
            if (in_record) {
                snprintf(r->tail_reason, sizeof(r->tail_reason),
                         "record at offset %llu cut short at end of file",
                         (unsigned long long)r->rec_off);
            }
            return LSM_NOTFOUND;
        }
        const char *h = r->block + r->pos;
        size_t n = dec_fixed16(h + 4);
        int type = (unsigned char)h[6];
        if (type == WAL_ZERO && n == 0 && dec_fixed32(h) == 0) {
            uint64_t y = find_valid_after(r, x);
            if (y != 0) {
                return r->status = lsm_err_set(
                           &r->err, LSM_CORRUPT,
                           "wal %s: zeroed bytes at offset %llu (valid fragment at %llu)",
                           r->f->path, (unsigned long long)x, (unsigned long long)y);
            }
            r->at_end = true; /* preallocated space never written */
            r->torn = in_record || !all_zero(h, avail);
            r->valid_end = in_record ? r->rec_off : x;
            if (r->torn) {
                snprintf(r->tail_reason, sizeof(r->tail_reason),
                         "record at offset %llu cut short by zeros at %llu",
                         (unsigned long long)(in_record ? r->rec_off : x),
                         (unsigned long long)x);
            }
            return LSM_NOTFOUND;
        }
        if (type < WAL_FULL || type > WAL_LAST) {
            return damage(r, x, in_record, "bad fragment type");
        }
        if (WAL_FRAGMENT_HEADER + n > avail) {
            return damage(r, x, in_record, "fragment runs past its block or the file");
        }
        if (dec_fixed32(h) != fragment_crc(r->seed, h + 4, h + WAL_FRAGMENT_HEADER, n)) {
            return damage(r, x, in_record, "bad checksum");
        }
        bool starts = type == WAL_FULL || type == WAL_FIRST;
        if (starts == in_record) {
            /* a record that never ended, or a continuation with no start */
            r->status = lsm_err_set(&r->err, LSM_CORRUPT,
                                    "wal %s: fragment out of sequence at offset %llu",
                                    r->f->path, (unsigned long long)x);
            return r->status;
        }
        r->pos += WAL_FRAGMENT_HEADER + n;
        if (starts) {
            r->rec_off = x;
            in_record = true;
        }
        if (type == WAL_FULL) {
            r->last_off = x;
            r->valid_end = r->block_start + r->pos;
            *payload = h + WAL_FRAGMENT_HEADER; /* in place: no copy */
            *len = n;
            return LSM_OK;
        }
        lsm_buf_append(&r->rec, h + WAL_FRAGMENT_HEADER, n);
        if (type == WAL_LAST) {
            r->last_off = r->rec_off;
            r->valid_end = r->block_start + r->pos;
            *payload = r->rec.p;
            *len = r->rec.len;
            return LSM_OK;
        }
    }
}

int wal_reader_next(struct wal_reader *r, const char **payload, size_t *len,
                    struct lsm_err *err)
{
    if (r->status != LSM_OK) {
        return lsm_err_set(err, r->status, "%s", r->err.msg);
    }
    if (r->at_end) {
        return LSM_NOTFOUND;
    }
    int rc = reader_step(r, payload, len);
    if (rc != LSM_OK && rc != LSM_NOTFOUND) {
        lsm_err_set(err, rc, "%s", r->err.msg);
    }
    return rc;
}

void wal_reader_end(const struct wal_reader *r, uint64_t *valid_end, bool *torn)
{
    *valid_end = r->valid_end;
    *torn = r->torn;
}

const char *wal_reader_tail_reason(const struct wal_reader *r)
{
    return r->torn ? r->tail_reason : "";
}

uint64_t wal_reader_record_offset(const struct wal_reader *r)
{
    return r->last_off;
}

void wal_reader_close(struct wal_reader **rp)
{
    struct wal_reader *r = *rp;
    if (r == NULL) {
        return;
    }
    env_close(&r->f);
    lsm_free(r->block);
    lsm_free(r->scratch);
    lsm_buf_free(&r->rec);
    lsm_free(r);
    *rp = NULL;
}
