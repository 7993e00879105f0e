/* engine/iterator.c: memtable, table, level and merging iterators (iterator.h).
 *
 * HOW THE MERGE WORKS
 * The merging iterator keeps the valid children in a binary min-heap ordered by
 * their current internal key (ties cannot happen: sequence numbers are unique).
 * The top is the current entry. next() advances the top child and sifts it down:
 * O(log n) per step, with the children's keys read straight from their struct
 * fields. Example with children A = [a@5, c@2] and B = [a@3, b@4]: the heap yields
 * a@5, a@3, b@4, c@2: every version, newest first within a key.
 */
#include "engine/iterator.h"

#include <string.h>

void iiter_destroy(struct iiter **it)
{
    if (*it != NULL) {
        (*it)->ops->destroy(*it);
        *it = NULL;
    }
}

static int ok_status(const struct iiter *it, struct lsm_err *err)
{
    return LSM_OK;
}

/* ---- memtable ------------------------------------------------------------------------- */

struct mem_iiter {
    struct iiter base;
    struct memtable *mt;
    struct memtable_iter it;
};

static void mem_load(struct mem_iiter *m)
{
    if (!memtable_iter_valid(&m->it)) {
        m->base.key = NULL;
        return;
    }
    m->base.key = memtable_iter_ikey(&m->it, &m->base.key_len);
    m->base.val = memtable_iter_value(&m->it, &m->base.val_len);
}

static void mem_seek_first(struct iiter *it)
{
    struct mem_iiter *m = (struct mem_iiter *)it;
    memtable_iter_seek_first(&m->it);
    mem_load(m);
}

static void mem_seek(struct iiter *it, const char *k, size_t n)
{
    struct mem_iiter *m = (struct mem_iiter *)it;
    uint64_t tr = ikey_trailer_of(k, n);
    /* memtable_iter_seek takes (key, seq) and uses kind 0xff; an exact trailer with
     * a smaller kind sorts after that, which only matters for kinds 0/1 of one
     * seqno, never both present */
    memtable_iter_seek(&m->it, k, n - IKEY_TRAILER_LEN, tr >> 8);
    mem_load(m);
}

static void mem_next(struct iiter *it)
{
    struct mem_iiter *m = (struct mem_iiter *)it;
    memtable_iter_next(&m->it);
    mem_load(m);
}

static void mem_destroy(struct iiter *it)
{
    struct mem_iiter *m = (struct mem_iiter *)it;
    memtable_unref(m->mt);
    lsm_free(m);
}

static const struct iiter_ops mem_ops = {mem_seek_first, mem_seek, mem_next, mem_destroy,
                                         ok_status};

struct iiter *iiter_memtable(struct memtable *mt)
{
    struct mem_iiter *m = lsm_calloc(1, sizeof(*m));
    m->base.ops = &mem_ops;
    memtable_ref(mt);
    m->mt = mt;
    memtable_iter_init(&m->it, mt);
    return &m->base;
}

/* ---- files (one table, or a level's disjoint tables) -------------------------------------- */

struct files_iiter {
    struct iiter base;
    struct file_meta **files; /* referenced */
    int n;
    int idx; /* file the table iterator is on, n when none */
    struct sst_iter *cur;
    struct sst_iter_options opt;
    int status;
    struct lsm_err err;
};

/* Whether file idx holds only keys at or past the upper bound (never opened then). */
static bool files_past_bound(const struct files_iiter *f, int idx)
{
    if (f->opt.upper == NULL) {
        return false;
    }
    size_t sl;
    const char *s = file_smallest_user(f->files[idx], &sl);
    return user_key_compare(s, sl, f->opt.upper, f->opt.upper_len) >= 0;
}

static void files_load(struct files_iiter *f)
{
    for (;;) {
        if (f->cur != NULL && sst_iter_valid(f->cur)) {
            f->base.key = sst_iter_key(f->cur, &f->base.key_len);
            f->base.val = sst_iter_value(f->cur, &f->base.val_len);
            return;
        }
        if (f->cur != NULL) {
            int rc = sst_iter_status(f->cur, &f->err);
            if (rc != LSM_OK) {
                f->status = rc;
                f->base.key = NULL;
                return;
            }
        }
        /* this file is done: move on to the next one */
        if (f->idx + 1 >= f->n || files_past_bound(f, f->idx + 1)) {
            f->idx = f->n;
            f->base.key = NULL;
            return;
        }
        f->idx++;
        sst_iter_destroy(&f->cur);
        f->cur = sst_iter_create(f->files[f->idx]->table, &f->opt);
        sst_iter_seek_to_first(f->cur);
    }
}

static void files_open(struct files_iiter *f, int idx)
{
    if (f->cur == NULL || f->idx != idx) {
        sst_iter_destroy(&f->cur);
        f->cur = sst_iter_create(f->files[idx]->table, &f->opt);
    }
    f->idx = idx;
}

static void files_seek_first(struct iiter *it)
{
    struct files_iiter *f = (struct files_iiter *)it;
    if (f->n == 0 || files_past_bound(f, 0)) {
        f->base.key = NULL;
        f->idx = f->n;
        return;
    }
    files_open(f, 0);
    sst_iter_seek_to_first(f->cur);
    files_load(f);
}

static void files_seek(struct iiter *it, const char *k, size_t n)
{
    struct files_iiter *f = (struct files_iiter *)it;
    int lo = 0, hi = f->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        const struct file_meta *fm = f->files[mid];
        if (ikey_compare(fm->largest.p, fm->largest.len, k, n) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == f->n || files_past_bound(f, lo)) {
        f->base.key = NULL;
        f->idx = f->n;
        return;
    }
    files_open(f, lo);
    sst_iter_seek(f->cur, k, n);
    files_load(f);
}

static void files_next(struct iiter *it)
{
    struct files_iiter *f = (struct files_iiter *)it;
    sst_iter_next(f->cur);
    files_load(f);
}

static void files_destroy(struct iiter *it)
{
    struct files_iiter *f = (struct files_iiter *)it;
    sst_iter_destroy(&f->cur);
    for (int i = 0; i < f->n; i++) {
        file_meta_unref(f->files[i]);
    }
    lsm_free(f->files);
    lsm_free(f);
}

static int files_status(const struct iiter *it, struct lsm_err *err)
{
    const struct files_iiter *f = (const struct files_iiter *)it;
    if (f->status != LSM_OK && err != NULL) {
        *err = f->err;
    }
    return f->status;
}

static const struct iiter_ops files_ops = {files_seek_first, files_seek, files_next,
                                           files_destroy, files_status};

struct iiter *iiter_files(struct file_meta **files, int n,
                          const struct sst_iter_options *opt)
{
    struct files_iiter *f = lsm_calloc(1, sizeof(*f));
    f->base.ops = &files_ops;
    f->files = n ? lsm_malloc((size_t)n * sizeof(*files)) : NULL;
    for (int i = 0; i < n; i++) {
        file_meta_ref(files[i]);
        f->files[i] = files[i];
    }
    f->n = n;
    f->idx = n;
    f->opt = *opt;
    return &f->base;
}

struct iiter *iiter_table(struct file_meta *file, const struct sst_iter_options *opt)
{
    return iiter_files(&file, 1, opt);
}

struct iiter *iiter_level(struct version *v, int level,
                          const struct sst_iter_options *opt)
{
    return iiter_files(v->files[level], v->nfiles[level], opt);
}

/* ---- merge ------------------------------------------------------------------------------ */

struct merge_iiter {
    struct iiter base;
    struct iiter **children; /* owned */
    int n;
    struct iiter **heap; /* valid children, heap[0] smallest */
    int nheap;
    int status; /* a child's error: the merge stops there */
    struct lsm_err err;
};

static inline bool child_less(const struct iiter *a, const struct iiter *b)
{
    return ikey_compare(a->key, a->key_len, b->key, b->key_len) < 0;
}

static void sift_down(struct merge_iiter *m, int i)
{
    struct iiter **h = m->heap;
    int n = m->nheap;
    struct iiter *x = h[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && child_less(h[c + 1], h[c])) {
            c++;
        }
        if (!child_less(h[c], x)) {
            break;
        }
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

static void merge_set_current(struct merge_iiter *m)
{
    if (m->nheap == 0) {
        m->base.key = NULL;
        return;
    }
    struct iiter *top = m->heap[0];
    m->base.key = top->key;
    m->base.key_len = top->key_len;
    m->base.val = top->val;
    m->base.val_len = top->val_len;
}

/* A child that stopped on an error stops the merge: going on without it could
 * surface an older version of a key whose newer version sat in the damaged part. */
static bool child_failed(struct merge_iiter *m, struct iiter *c)
{
    int rc = iiter_status(c, &m->err);
    if (rc != LSM_OK) {
        m->status = rc;
        m->nheap = 0;
        m->base.key = NULL;
        return true;
    }
    return false;
}

static void merge_rebuild(struct merge_iiter *m)
{
    m->nheap = 0;
    m->status = LSM_OK;
    for (int i = 0; i < m->n; i++) {
        if (iiter_valid(m->children[i])) {
            m->heap[m->nheap++] = m->children[i];
        } else if (child_failed(m, m->children[i])) {
            return;
        }
    }
    for (int i = m->nheap / 2 - 1; i >= 0; i--) {
        sift_down(m, i);
    }
    merge_set_current(m);
}

static void merge_seek_first(struct iiter *it)
{
    struct merge_iiter *m = (struct merge_iiter *)it;
    for (int i = 0; i < m->n; i++) {
        iiter_seek_first(m->children[i]);
    }
    merge_rebuild(m);
}

static void merge_seek(struct iiter *it, const char *k, size_t n)
{
    struct merge_iiter *m = (struct merge_iiter *)it;
    for (int i = 0; i < m->n; i++) {
        iiter_seek(m->children[i], k, n);
    }
    merge_rebuild(m);
}

static void merge_next(struct iiter *it)
{
    struct merge_iiter *m = (struct merge_iiter *)it;
    struct iiter *top = m->heap[0];
    iiter_next(top);
    if (!iiter_valid(top)) {
        if (child_failed(m, top)) {
            return;
        }
        m->heap[0] = m->heap[--m->nheap];
    }
    if (m->nheap > 0) {
        sift_down(m, 0);
    }
    merge_set_current(m);
}

static void merge_destroy(struct iiter *it)
{
    struct merge_iiter *m = (struct merge_iiter *)it;
    for (int i = 0; i < m->n; i++) {
        iiter_destroy(&m->children[i]);
    }
    lsm_free(m->children);
    lsm_free(m->heap);
    lsm_free(m);
}

static int merge_status(const struct iiter *it, struct lsm_err *err)
{
    const struct merge_iiter *m = (const struct merge_iiter *)it;
    if (m->status != LSM_OK) {
        if (err != NULL) {
            *err = m->err;
        }
        return m->status;
    }
    for (int i = 0; i < m->n; i++) {
        int rc = iiter_status(m->children[i], err);
        if (rc != LSM_OK) {
            return rc;
        }
    }
    return LSM_OK;
}

static const struct iiter_ops merge_ops = {merge_seek_first, merge_seek, merge_next,
                                           merge_destroy, merge_status};

struct iiter *iiter_merge(struct iiter **children, int n)
{
    struct merge_iiter *m = lsm_calloc(1, sizeof(*m));
    m->base.ops = &merge_ops;
    m->children = lsm_malloc((size_t)(n ? n : 1) * sizeof(*children));
    if (n > 0) {
        memcpy(m->children, children, (size_t)n * sizeof(*children));
    }
    m->heap = lsm_malloc((size_t)(n ? n : 1) * sizeof(*children));
    m->n = n;
    return &m->base;
}
