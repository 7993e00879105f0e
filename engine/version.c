/* engine/version.c: versions, version edits, and the MANIFEST (see version.h).
 *
 * Edit encoding (engine/README.md "Manifest"), one MANIFEST record per edit:
 *
 *   edit   := field*
 *   field  := 1 log_number:varint64
 *           | 2 next_file:varint64
 *           | 3 last_seq:varint64
 *           | 4 level:varint32 number:varint64                       (deleted file)
 *           | 5 level:varint32 number:varint64 size:varint64          (added file)
 *               smallest:varint32-length-prefixed largest:(same)
 *               min_seqno:varint64 max_seqno:varint64
 *   tags are varint32; on disk: never renumber.
 */
#include "engine/version.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum edit_tag { /* on disk: never renumber */
                TAG_LOG_NUMBER = 1,
                TAG_NEXT_FILE = 2,
                TAG_LAST_SEQ = 3,
                TAG_DELETED_FILE = 4,
                TAG_NEW_FILE = 5,
};

void db_file_name(char *buf, size_t n, const char *dir, uint64_t number, const char *ext)
{
    snprintf(buf, n, "%s/%06llu.%s", dir, (unsigned long long)number, ext);
}

/* ---- files ---------------------------------------------------------------------------- */

struct file_meta *file_meta_create(const char *dir, uint64_t number,
                                   struct sst_reader *table)
{
    struct file_meta *f = lsm_calloc(1, sizeof(*f));
    char path[PATH_MAX];
    db_file_name(path, sizeof(path), dir, number, "sst");
    atomic_init(&f->refs, 1);
    atomic_init(&f->obsolete, false);
    f->number = number;
    f->table = table;
    f->path = lsm_strdup(path);
    const struct sst_props *p = sst_reader_props(table);
    f->size = p->file_size;
    f->min_seqno = p->min_seqno;
    f->max_seqno = p->max_seqno;
    lsm_buf_append(&f->smallest, p->smallest.p, p->smallest.len);
    lsm_buf_append(&f->largest, p->largest.p, p->largest.len);
    return f;
}

void file_meta_ref(struct file_meta *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void file_meta_unref(struct file_meta *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    sst_reader_close(&f->table);
    if (atomic_load(&f->obsolete)) {
        env_unlink(f->path, NULL);
    }
    lsm_buf_free(&f->smallest);
    lsm_buf_free(&f->largest);
    lsm_free(f->path);
    lsm_free(f);
}

bool file_covers(const struct file_meta *f, const char *k, size_t klen)
{
    size_t sl, ll;
    const char *s = file_smallest_user(f, &sl);
    const char *l = file_largest_user(f, &ll);
    return user_key_compare(k, klen, s, sl) >= 0 && user_key_compare(k, klen, l, ll) <= 0;
}

/* ---- versions ------------------------------------------------------------------------- */

static struct version *version_new(void)
{
    struct version *v = lsm_calloc(1, sizeof(*v));
    atomic_init(&v->refs, 1);
    return v;
}

void version_ref(struct version *v)
{
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void version_unref(struct version *v)
{
    if (v == NULL || atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        for (int i = 0; i < v->nfiles[l]; i++) {
            file_meta_unref(v->files[l][i]);
        }
        lsm_free(v->files[l]);
    }
    lsm_free(v);
}

int version_find_file(const struct version *v, int level, const char *ikey, size_t len)
{
    int lo = 0, hi = v->nfiles[level];
    struct file_meta *const *fs = v->files[level];
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ikey_compare(fs[mid]->largest.p, fs[mid]->largest.len, ikey, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

bool version_level_may_hold(const struct version *v, int level, const char *k,
                            size_t klen)
{
    /* first file whose largest user key >= k */
    int lo = 0, hi = v->nfiles[level];
    struct file_meta *const *fs = v->files[level];
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        size_t ll;
        const char *l = file_largest_user(fs[mid], &ll);
        if (user_key_compare(l, ll, k, klen) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < v->nfiles[level] && file_covers(fs[lo], k, klen);
}

/* L0: newest first (largest seqno descending). Ln: by smallest key. */
static int cmp_l0(const void *a, const void *b)
{
    const struct file_meta *x = *(struct file_meta *const *)a;
    const struct file_meta *y = *(struct file_meta *const *)b;
    if (x->max_seqno != y->max_seqno) {
        return x->max_seqno > y->max_seqno ? -1 : 1;
    }
    return x->number > y->number ? -1 : x->number < y->number;
}

static int cmp_by_key(const void *a, const void *b)
{
    const struct file_meta *x = *(struct file_meta *const *)a;
    const struct file_meta *y = *(struct file_meta *const *)b;
    return ikey_compare(x->smallest.p, x->smallest.len, y->smallest.p, y->smallest.len);
}

static bool edit_deletes(const struct version_edit *e, int level, uint64_t number)
{
    for (int i = 0; i < e->ndeleted; i++) {
        if (e->deleted[i].level == level && e->deleted[i].number == number) {
            return true;
        }
    }
    return false;
}

/* base + e -> a new version (every file referenced once more). */
struct version *version_apply_edit(const struct version *base,
                                   const struct version_edit *e)
{
    struct version *v = version_new();
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        int cap = (base ? base->nfiles[l] : 0) + e->nadded;
        v->files[l] = cap ? lsm_malloc((size_t)cap * sizeof(struct file_meta *)) : NULL;
        int n = 0;
        for (int i = 0; base && i < base->nfiles[l]; i++) {
            struct file_meta *f = base->files[l][i];
            if (!edit_deletes(e, l, f->number)) {
                file_meta_ref(f);
                v->files[l][n++] = f;
            }
        }
        for (int i = 0; i < e->nadded; i++) {
            if (e->added[i].level == l) {
                file_meta_ref(e->added[i].f);
                v->files[l][n++] = e->added[i].f;
            }
        }
        v->nfiles[l] = n;
        if (n > 1) {
            qsort(v->files[l], (size_t)n, sizeof(struct file_meta *),
                  l == 0 ? cmp_l0 : cmp_by_key);
        }
        for (int i = 0; i < n; i++) {
            v->level_bytes[l] += v->files[l][i]->size;
        }
    }
    return v;
}

/* ---- edits --------------------------------------------------------------------------- */

void edit_init(struct version_edit *e)
{
    memset(e, 0, sizeof(*e));
}

void edit_free(struct version_edit *e)
{
    for (int i = 0; i < e->nadded; i++) {
        if (e->added[i].f != NULL) {
            file_meta_unref(e->added[i].f);
        }
    }
    lsm_free(e->added);
    lsm_free(e->deleted);
    memset(e, 0, sizeof(*e));
}

void edit_delete_file(struct version_edit *e, int level, uint64_t number)
{
    if (e->ndeleted == e->cap_deleted) {
        e->cap_deleted = e->cap_deleted ? 2 * e->cap_deleted : 8;
        e->deleted =
            lsm_realloc(e->deleted, (size_t)e->cap_deleted * sizeof(*e->deleted));
    }
    e->deleted[e->ndeleted++] = (struct edit_file){level, number, NULL};
}

void edit_add_file(struct version_edit *e, int level, struct file_meta *f)
{
    if (e->nadded == e->cap_added) {
        e->cap_added = e->cap_added ? 2 * e->cap_added : 8;
        e->added = lsm_realloc(e->added, (size_t)e->cap_added * sizeof(*e->added));
    }
    e->added[e->nadded++] = (struct edit_file){level, f->number, f};
}

static void put_slice(struct lsm_buf *b, const struct lsm_buf *s)
{
    lsm_buf_append_varint32(b, (uint32_t)s->len);
    lsm_buf_append(b, s->p, s->len);
}

static void edit_encode(const struct version_edit *e, struct lsm_buf *b)
{
    if (e->has_log_number) {
        lsm_buf_append_varint32(b, TAG_LOG_NUMBER);
        lsm_buf_append_varint64(b, e->log_number);
    }
    if (e->has_next_file) {
        lsm_buf_append_varint32(b, TAG_NEXT_FILE);
        lsm_buf_append_varint64(b, e->next_file);
    }
    if (e->has_last_seq) {
        lsm_buf_append_varint32(b, TAG_LAST_SEQ);
        lsm_buf_append_varint64(b, e->last_seq);
    }
    for (int i = 0; i < e->ndeleted; i++) {
        lsm_buf_append_varint32(b, TAG_DELETED_FILE);
        lsm_buf_append_varint32(b, (uint32_t)e->deleted[i].level);
        lsm_buf_append_varint64(b, e->deleted[i].number);
    }
    for (int i = 0; i < e->nadded; i++) {
        const struct file_meta *f = e->added[i].f;
        lsm_buf_append_varint32(b, TAG_NEW_FILE);
        lsm_buf_append_varint32(b, (uint32_t)e->added[i].level);
        lsm_buf_append_varint64(b, f->number);
        lsm_buf_append_varint64(b, f->size);
        put_slice(b, &f->smallest);
        put_slice(b, &f->largest);
        lsm_buf_append_varint64(b, f->min_seqno);
        lsm_buf_append_varint64(b, f->max_seqno);
    }
}

/* A new file as the MANIFEST describes it; the table is opened later. */
struct decoded_file {
    int level;
    uint64_t number, size;
};

struct decoded_edit {
    bool has_log_number, has_next_file, has_last_seq;
    uint64_t log_number, next_file, last_seq;
};

static const char *get_slice(const char *p, const char *limit)
{
    uint32_t n;
    p = dec_varint32(p, limit, &n);
    if (p == NULL || (size_t)(limit - p) < n || n < IKEY_TRAILER_LEN) {
        return NULL;
    }
    return p + n;
}

/* The live-file set being rebuilt from MANIFEST records. */
struct file_set {
    struct decoded_file *files;
    int n, cap;
};

static void file_set_remove(struct file_set *s, int level, uint64_t number)
{
    for (int i = 0; i < s->n; i++) {
        if (s->files[i].level == level && s->files[i].number == number) {
            s->files[i] = s->files[--s->n];
            return;
        }
    }
}

static void file_set_add(struct file_set *s, int level, uint64_t number, uint64_t size)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->files = lsm_realloc(s->files, (size_t)s->cap * sizeof(*s->files));
    }
    s->files[s->n++] = (struct decoded_file){level, number, size};
}

static int edit_decode_apply(const char *p, size_t len, struct decoded_edit *d,
                             struct file_set *s)
{
    const char *limit = p + len;
    while (p < limit) {
        uint32_t tag, level;
        uint64_t number, size, v;
        p = dec_varint32(p, limit, &tag);
        if (p == NULL) {
            return LSM_CORRUPT;
        }
        switch (tag) {
        case TAG_LOG_NUMBER:
        case TAG_NEXT_FILE:
        case TAG_LAST_SEQ:
            p = dec_varint64(p, limit, &v);
            if (p == NULL) {
                return LSM_CORRUPT;
            }
            if (tag == TAG_LOG_NUMBER) {
                d->has_log_number = true;
                d->log_number = v;
            } else if (tag == TAG_NEXT_FILE) {
                d->has_next_file = true;
                d->next_file = v;
            } else {
                d->has_last_seq = true;
                d->last_seq = v;
            }
            break;
        case TAG_DELETED_FILE:
            p = dec_varint32(p, limit, &level);
            p = p ? dec_varint64(p, limit, &number) : NULL;
            if (p == NULL || level >= LSM_MAX_LEVELS) {
                return LSM_CORRUPT;
            }
            file_set_remove(s, (int)level, number);
            break;
        case TAG_NEW_FILE:
            p = dec_varint32(p, limit, &level);
            p = p ? dec_varint64(p, limit, &number) : NULL;
            p = p ? dec_varint64(p, limit, &size) : NULL;
            p = p ? get_slice(p, limit) : NULL;
            p = p ? get_slice(p, limit) : NULL;
            p = p ? dec_varint64(p, limit, &v) : NULL;
            p = p ? dec_varint64(p, limit, &v) : NULL;
            if (p == NULL || level >= LSM_MAX_LEVELS) {
                return LSM_CORRUPT;
            }
            file_set_add(s, (int)level, number, size);
            break;
        default:
            return LSM_CORRUPT;
        }
    }
    return LSM_OK;
}

/* ---- version set ------------------------------------------------------------------ */

void version_set_init(struct version_set *vs, const char *dir, struct block_cache *cache)
{
    memset(vs, 0, sizeof(*vs));
    vs->dir = lsm_strdup(dir);
    vs->cache = cache;
    vs->next_file = 2;
    vs->current = version_new();
}

void version_set_deinit(struct version_set *vs)
{
    if (vs->manifest != NULL) {
        wal_writer_close(&vs->manifest, true, NULL);
    }
    version_unref(vs->current);
    vs->current = NULL;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        lsm_buf_free(&vs->compact_ptr[l]);
    }
    lsm_free(vs->dir);
}

static int read_current(const char *dir, uint64_t *manifest_number, struct lsm_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/CURRENT", dir);
    char *buf;
    size_t len;
    int rc = env_read_file(path, &buf, &len, err);
    if (rc != LSM_OK) {
        return rc;
    }
    unsigned long long n;
    char nl;
    if (sscanf(buf, "MANIFEST-%llu%c", &n, &nl) != 2 || nl != '\n') {
        rc = lsm_err_set(err, LSM_CORRUPT, "CURRENT: does not name a MANIFEST");
    } else {
        *manifest_number = n;
    }
    lsm_free(buf);
    return rc;
}

/* The MANIFEST ends in damaged bytes: a crash in the middle of an append leaves a
 * record cut short by the end of the file (harmless: that edit was never
 * installed), while a record that is all there but fails its checksum was damaged
 * after it was written, and dropping it would silently forget tables. The MANIFEST
 * is never preallocated, so the two are told apart by the fragment's length. */
static int manifest_tail_check(const char *path, struct wal_reader *r,
                               struct lsm_err *err)
{
    uint64_t valid_end;
    bool torn;
    wal_reader_end(r, &valid_end, &torn);
    if (!torn) {
        return LSM_OK;
    }
    struct env_file *f;
    int rc = env_open_read(path, &f, err);
    if (rc != LSM_OK) {
        return rc;
    }
    uint64_t size = 0;
    char hdr[WAL_FRAGMENT_HEADER];
    size_t got = 0;
    rc = env_file_size(f, &size, err);
    if (rc == LSM_OK) {
        rc = env_pread(f, hdr, sizeof(hdr), valid_end, &got, err);
    }
    env_close(&f);
    if (rc != LSM_OK) {
        return rc;
    }
    if (got == sizeof(hdr) && valid_end + sizeof(hdr) + dec_fixed16(hdr + 4) <= size) {
        return lsm_err_set(err, LSM_CORRUPT, "%s: damaged record at offset %llu", path,
                           (unsigned long long)valid_end);
    }
    return LSM_OK;
}

int version_set_recover(struct version_set *vs, struct lsm_err *err)
{
    uint64_t mnum = 0;
    int rc = read_current(vs->dir, &mnum, err);
    if (rc != LSM_OK) {
        return rc;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/MANIFEST-%06llu", vs->dir, (unsigned long long)mnum);
    struct wal_reader *r;
    rc = wal_reader_open(path, &r, err);
    if (rc == LSM_NOTFOUND) {
        return lsm_err_set(err, LSM_CORRUPT, "CURRENT names %s, which is missing", path);
    }
    if (rc != LSM_OK) {
        return rc;
    }
    struct decoded_edit d = {0};
    struct file_set s = {0};
    const char *payload;
    size_t len;
    while ((rc = wal_reader_next(r, &payload, &len, err)) == LSM_OK) {
        if (edit_decode_apply(payload, len, &d, &s) != LSM_OK) {
            rc = lsm_err_set(err, LSM_CORRUPT, "%s: bad edit record at offset %llu", path,
                             (unsigned long long)wal_reader_record_offset(r));
            break;
        }
    }
    if (rc == LSM_NOTFOUND) {
        rc = manifest_tail_check(path, r, err);
    }
    wal_reader_close(&r);
    if (rc == LSM_OK && (!d.has_next_file || !d.has_log_number || !d.has_last_seq)) {
        rc = lsm_err_set(err, LSM_CORRUPT, "%s: missing counters", path);
    }
    struct version_edit e;
    edit_init(&e);
    for (int i = 0; rc == LSM_OK && i < s.n; i++) {
        char tpath[PATH_MAX];
        db_file_name(tpath, sizeof(tpath), vs->dir, s.files[i].number, "sst");
        struct sst_reader *t;
        rc = sst_reader_open(tpath, s.files[i].number, vs->cache, &t, err);
        if (rc == LSM_NOTFOUND) {
            rc = lsm_err_set(err, LSM_CORRUPT, "live table %s is missing", tpath);
        }
        if (rc != LSM_OK) {
            break;
        }
        struct file_meta *f = file_meta_create(vs->dir, s.files[i].number, t);
        edit_add_file(&e, s.files[i].level, f);
        if (f->size != s.files[i].size) {
            rc = lsm_err_set(err, LSM_CORRUPT, "%s: size %llu, MANIFEST says %llu", tpath,
                             (unsigned long long)f->size,
                             (unsigned long long)s.files[i].size);
        }
    }
    if (rc == LSM_OK) {
        struct version *v = version_apply_edit(NULL, &e);
        version_unref(vs->current);
        vs->current = v;
        vs->next_file = d.next_file;
        vs->log_number = d.log_number;
        vs->last_seq = d.last_seq;
        vs->manifest_number = mnum;
    }
    edit_free(&e);
    lsm_free(s.files);
    return rc;
}

/* *renamed tells whether CURRENT may already name the new MANIFEST (the rename
 * happened, only the directory sync failed). */
static int set_current(const char *dir, uint64_t mnum, bool *renamed, struct lsm_err *err)
{
    *renamed = false;
    char tmp[PATH_MAX], cur[PATH_MAX], line[64];
    snprintf(tmp, sizeof(tmp), "%s/CURRENT.tmp", dir);
    snprintf(cur, sizeof(cur), "%s/CURRENT", dir);
    int n = snprintf(line, sizeof(line), "MANIFEST-%06llu\n", (unsigned long long)mnum);
    struct env_file *f;
    int rc = env_create(tmp, &f, err);
    if (rc != LSM_OK) {
        return rc;
    }
    rc = env_append(f, line, (size_t)n, err);
    if (rc == LSM_OK) {
        rc = env_sync(f, err);
    }
    env_close(&f);
    if (rc == LSM_OK) {
        rc = env_rename(tmp, cur, err);
    }
    if (rc == LSM_OK) {
        *renamed = true;
        rc = env_sync_dir(dir, err);
    } else {
        env_unlink(tmp, NULL);
    }
    return rc;
}

int version_set_write_snapshot(struct version_set *vs, pthread_mutex_t *mu,
                               struct lsm_err *err)
{
    pthread_mutex_lock(mu);
    uint64_t mnum = vs->next_file++;
    struct version *v = vs->current;
    version_ref(v);
    struct version_edit e;
    edit_init(&e);
    e.has_log_number = e.has_next_file = e.has_last_seq = true;
    e.log_number = vs->log_number;
    e.next_file = vs->next_file;
    e.last_seq = vs->last_seq;
    pthread_mutex_unlock(mu);

    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        for (int i = 0; i < v->nfiles[l]; i++) {
            file_meta_ref(v->files[l][i]);
            edit_add_file(&e, l, v->files[l][i]);
        }
    }
    struct lsm_buf rec = {0};
    edit_encode(&e, &rec);
    edit_free(&e);
    version_unref(v);

    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/MANIFEST-%06llu", vs->dir, (unsigned long long)mnum);
    struct wal_writer_options wo = {.log_number = mnum, .prealloc_bytes = 0};
    struct wal_writer *w;
    bool renamed = false;
    int rc = wal_writer_create(path, &wo, &w, err);
    if (rc == LSM_OK) {
        rc = wal_writer_append(w, rec.p, rec.len, err);
        if (rc == LSM_OK) {
            rc = wal_writer_sync(w, err);
        }
        if (rc == LSM_OK) {
            rc = set_current(vs->dir, mnum, &renamed, err);
        }
        if (rc != LSM_OK && !renamed) {
            wal_writer_close(&w, false, NULL);
            env_unlink(path, NULL);
        }
    }
    lsm_buf_free(&rec);
    if (rc != LSM_OK && !renamed) {
        return rc; /* the old MANIFEST stays current and complete */
    }
    if (rc != LSM_OK) {
        /* CURRENT may name either MANIFEST after a crash: both describe the same
         * state and the caller stops all further edits (sticky error), so keep both */
        if (vs->manifest != NULL) {
            wal_writer_close(&vs->manifest, false, NULL);
        }
        vs->manifest = w;
        vs->manifest_number = mnum;
        return rc;
    }
    uint64_t old = vs->manifest_number;
    if (vs->manifest != NULL) {
        wal_writer_close(&vs->manifest, false, NULL);
    }
    vs->manifest = w;
    vs->manifest_number = mnum;
    if (old != 0 && old != mnum) {
        snprintf(path, sizeof(path), "%s/MANIFEST-%06llu", vs->dir,
                 (unsigned long long)old);
        env_unlink(path, NULL);
    }
    return LSM_OK;
}

int version_set_log_and_apply(struct version_set *vs, struct version_edit *e,
                              pthread_mutex_t *mu, struct lsm_err *err)
{
    pthread_mutex_lock(mu);
    e->has_next_file = true;
    e->next_file = vs->next_file;
    if (!e->has_log_number) {
        e->has_log_number = true;
        e->log_number = vs->log_number;
    }
    if (!e->has_last_seq) {
        e->has_last_seq = true;
        e->last_seq = vs->last_seq;
    }
    struct version *base = vs->current;
    version_ref(base);
    pthread_mutex_unlock(mu);

    /* only this thread installs versions, so base stays current meanwhile */
    struct version *v = version_apply_edit(base, e);
    struct lsm_buf rec = {0};
    edit_encode(e, &rec);
    int rc = LSM_OK;
    if (e->nadded > 0) {
        rc = env_sync_dir(vs->dir, err); /* new tables' names survive a power cut */
    }
    if (rc == LSM_OK) {
        rc = wal_writer_append(vs->manifest, rec.p, rec.len, err);
    }
    if (rc == LSM_OK) {
        rc = wal_writer_sync(vs->manifest, err);
    }
    lsm_buf_free(&rec);
    if (rc != LSM_OK) {
        version_unref(v);
        version_unref(base);
        return rc;
    }
    for (int i = 0; i < e->ndeleted; i++) {
        int l = e->deleted[i].level;
        bool moved = false; /* a trivial move deletes and adds the same table */
        for (int j = 0; j < e->nadded; j++) {
            moved |= e->added[j].number == e->deleted[i].number;
        }
        for (int j = 0; !moved && j < base->nfiles[l]; j++) {
            if (base->files[l][j]->number == e->deleted[i].number) {
                atomic_store(&base->files[l][j]->obsolete, true);
            }
        }
    }
    pthread_mutex_lock(mu);
    vs->current = v;
    vs->log_number = e->log_number;
    if (e->last_seq > vs->last_seq) {
        vs->last_seq = e->last_seq;
    }
    pthread_mutex_unlock(mu);
    version_unref(base); /* the set's reference */
    version_unref(base); /* ours */
    if (vs->manifest_roll_bytes > 0 &&
        wal_writer_flushed_offset(vs->manifest) > vs->manifest_roll_bytes) {
        /* the edit is installed either way: a failure to roll is not the edit's
         * failure, it is kept for the DB to make sticky (version_set_roll_error) */
        struct lsm_err rerr;
        int rrc = version_set_write_snapshot(vs, mu, &rerr);
        if (rrc != LSM_OK && vs->roll_rc == LSM_OK) {
            vs->roll_rc = rrc;
            vs->roll_err = rerr;
        }
    }
    return LSM_OK;
}
