/* engine/compaction.c: picking and running compactions (see compaction.h). Runs on
 * the background thread; the DB mutex is held only while picking and releasing. */
#include "engine/compaction.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STCS_SMALL_RUN (50ull << 20) /* runs below this all count as one size class */

/* ---- the drop rules ---------------------------------------------------------------------- */

/* Whether a tombstone with this entry value may go at now_ms: timestamp 0 always
 * (no age to keep it for); else once since = max(expire_at, LSM_HLC_MS(write_ts))
 * is both grace_ms behind now_ms (no overflow for any inputs, so gc_grace_ms =
 * UINT64_MAX keeps tombstones forever) and below the horizon (lsm_set_gc_horizon:
 * the caller vouches that every copy of what is older is gone elsewhere). */
static bool tombstone_droppable(const struct entry_value *ev, const struct entry_filter *f)
{
    if (ev->write_ts == 0) {
        return true; /* no age to keep it for (old files, filtered values) */
    }
    uint64_t since = LSM_HLC_MS(ev->write_ts);
    if (ev->expire_at > since) {
        since = ev->expire_at;
    }
    return since <= f->now_ms && f->now_ms - since >= f->grace_ms && since < f->horizon_ms;
}

enum filter_verdict
entry_filter_apply(struct entry_filter *f, const char **ikey, size_t *ikey_len,
                   const char **val, size_t *val_len,
                   bool (*base_level)(void *ctx, const char *k, size_t klen), void *ctx)
{
    const char *uk = *ikey;
    size_t ulen = *ikey_len - IKEY_TRAILER_LEN;
    uint64_t tr = ikey_trailer_of(*ikey, *ikey_len);
    uint64_t seq = tr >> 8;
    unsigned kind = (unsigned)(tr & 0xff);
    if (!f->has_cur || user_key_compare(uk, ulen, f->cur_key.p, f->cur_key.len) != 0) {
        lsm_buf_clear(&f->cur_key);
        lsm_buf_append(&f->cur_key, uk, ulen);
        f->has_cur = true;
        f->has_prev_version = false;
    }
    enum filter_verdict verdict = FILTER_KEEP;
    if (f->has_prev_version && f->last_seq_for_key <= f->smallest_snapshot) {
        verdict = FILTER_DROP; /* hidden by a newer version everyone sees */
    } else if (f->gc) {
        struct entry_value ev;
        if (entry_decode(*val, *val_len, &ev) == LSM_OK) {
            bool tomb = kind == LSM_KIND_DELETE;
            bool filtered = dropset_drops(f->drop, uk, ulen, seq);
            if (!filtered && kind == LSM_KIND_VALUE && f->user_filter != NULL &&
                !(ev.expire_at != 0 && ev.expire_at <= f->now_ms)) {
                struct lsm_meta m = {ev.expire_at, ev.write_ts, ev.node};
                filtered = f->user_filter(f->user_arg, uk, ulen, &m) != 0;
            }
            if ((kind == LSM_KIND_VALUE || filtered) &&
                (filtered || (ev.expire_at != 0 && ev.expire_at <= f->now_ms))) {
                /* expired, or dropped by the caller's filter or the drop set (a
                 * tombstone too, which loses its date): the same as a tombstone
                 * to every reader. An expired one keeps the value's expire-at,
                 * timestamp and node (include_tombstones readers see the same
                 * before and after), so its grace runs from its expiry; a filtered
                 * one loses them: no grace */
                lsm_buf_clear(&f->scratch);
                ikey_append(&f->scratch, uk, ulen, seq, LSM_KIND_DELETE);
                size_t klen = f->scratch.len;
                if (filtered) {
                    ev.expire_at = 0;
                    ev.write_ts = 0;
                    ev.node = 0;
                }
                entry_append(&f->scratch, ev.expire_at, ev.write_ts, ev.node, NULL, 0);
                *ikey = f->scratch.p;
                *ikey_len = klen;
                *val = f->scratch.p + klen;
                *val_len = f->scratch.len - klen;
                verdict = FILTER_REWRITE;
                tomb = true;
            }
            if (tomb && seq <= f->smallest_snapshot) {
                if (tombstone_droppable(&ev, f) && base_level(ctx, uk, ulen)) {
                    verdict = FILTER_DROP;
                }
            }
        }
    }
    f->last_seq_for_key = seq;
    f->has_prev_version = true;
    return verdict;
}

void entry_filter_free(struct entry_filter *f)
{
    lsm_buf_free(&f->cur_key);
    lsm_buf_free(&f->scratch);
}

/* ---- picking ------------------------------------------------------------------------------- */

static uint64_t level_target(const struct lsm_options *o, int level)
{
    uint64_t t = o->l1_target_bytes;
    for (int l = 1; l < level; l++) {
        t *= (uint64_t)o->level_size_multiplier;
    }
    return t;
}

uint64_t compaction_pending_bytes(const struct lsm_options *o, const struct version *v)
{
    uint64_t pending = 0;
    if (o->compaction_style == LSM_COMPACTION_SIZE_TIERED) {
        return v->nfiles[0] >= o->stcs_min_threshold ? v->level_bytes[0] : 0;
    }
    if (v->nfiles[0] >= o->l0_compaction_trigger) {
        pending += v->level_bytes[0];
    }
    for (int l = 1; l < LSM_MAX_LEVELS - 1; l++) {
        uint64_t t = level_target(o, l);
        if (v->level_bytes[l] > t) {
            pending += v->level_bytes[l] - t;
        }
    }
    return pending;
}

static struct compaction *compaction_new(struct version *v, int output_level)
{
    struct compaction *c = lsm_calloc(1, sizeof(*c));
    version_ref(v);
    c->version = v;
    c->output_level = output_level;
    return c;
}

static void add_input(struct compaction *c, int level, struct file_meta *f)
{
    c->inputs[level] =
        lsm_realloc(c->inputs[level], (size_t)(c->ninputs[level] + 1) * sizeof(f));
    c->inputs[level][c->ninputs[level]++] = f;
    file_meta_ref(f);
    f->compacting = true;
}

/* Widens [*lo, *hi] (user keys) to cover f. */
static void widen(struct lsm_buf *lo, struct lsm_buf *hi, bool *set,
                  const struct file_meta *f)
{
    size_t sl, ll;
    const char *s = file_smallest_user(f, &sl);
    const char *l = file_largest_user(f, &ll);
    if (!*set || user_key_compare(s, sl, lo->p, lo->len) < 0) {
        lsm_buf_clear(lo);
        lsm_buf_append(lo, s, sl);
    }
    if (!*set || user_key_compare(l, ll, hi->p, hi->len) > 0) {
        lsm_buf_clear(hi);
        lsm_buf_append(hi, l, ll);
    }
    *set = true;
}

static bool overlaps(const struct file_meta *f, const char *lo, size_t lol, bool has_lo,
                     const char *hi, size_t hil, bool has_hi)
{
    size_t sl, ll;
    const char *s = file_smallest_user(f, &sl);
    const char *l = file_largest_user(f, &ll);
    if (has_lo && user_key_compare(l, ll, lo, lol) < 0) {
        return false;
    }
    if (has_hi && user_key_compare(s, sl, hi, hil) > 0) {
        return false;
    }
    return true;
}

static int cmp_smallest(const void *a, const void *b)
{
    const struct file_meta *x = *(struct file_meta *const *)a;
    const struct file_meta *y = *(struct file_meta *const *)b;
    return ikey_compare(x->smallest.p, x->smallest.len, y->smallest.p, y->smallest.len);
}

/* True when c's L0 inputs do not overlap each other (a sequential load): they can
 * all move to L1 as they are. Sorts them by key (their L0 order no longer matters). */
static bool l0_disjoint(struct compaction *c)
{
    struct file_meta **fs = c->inputs[0];
    int n = c->ninputs[0];
    qsort(fs, (size_t)n, sizeof(*fs), cmp_smallest);
    for (int i = 1; i < n; i++) {
        size_t pl, sl;
        const char *p = file_largest_user(fs[i - 1], &pl);
        const char *s = file_smallest_user(fs[i], &sl);
        if (user_key_compare(p, pl, s, sl) >= 0) {
            return false;
        }
    }
    return true;
}

static struct compaction *pick_leveled(struct lsm_db *db, struct version *v)
{
    const struct lsm_options *o = &db->opt;
    double best = 0;
    int level = -1;
    if (o->l0_compaction_trigger > 0) {
        best = (double)v->nfiles[0] / o->l0_compaction_trigger;
        level = 0;
    }
    for (int l = 1; l < LSM_MAX_LEVELS - 1; l++) {
        double s = (double)v->level_bytes[l] / (double)level_target(o, l);
        if (s > best) {
            best = s;
            level = l;
        }
    }
    if (best < 1.0 || level < 0) {
        return NULL;
    }
    struct compaction *c = compaction_new(v, level + 1);
    c->max_output_file_size = o->target_file_size;
    struct lsm_buf lo = {0}, hi = {0};
    bool set = false;
    if (level == 0) {
        for (int i = 0; i < v->nfiles[0]; i++) {
            add_input(c, 0, v->files[0][i]);
            widen(&lo, &hi, &set, v->files[0][i]);
        }
    } else {
        /* round robin: the first file after the last compacted key */
        struct lsm_buf *ptr = &db->vs.compact_ptr[level];
        int idx = 0;
        if (ptr->len > 0) {
            idx = version_find_file(v, level, ptr->p, ptr->len);
            while (idx < v->nfiles[level] &&
                   ikey_compare(v->files[level][idx]->largest.p,
                                v->files[level][idx]->largest.len, ptr->p,
                                ptr->len) <= 0) {
                idx++;
            }
            if (idx >= v->nfiles[level]) {
                idx = 0;
            }
        }
        struct file_meta *f = v->files[level][idx];
        add_input(c, level, f);
        widen(&lo, &hi, &set, f);
        lsm_buf_clear(ptr);
        lsm_buf_append(ptr, f->largest.p, f->largest.len);
    }
    int out = level + 1;
    for (int i = 0; i < v->nfiles[out]; i++) {
        struct file_meta *f = v->files[out][i];
        if (overlaps(f, lo.p, lo.len, true, hi.p, hi.len, true)) {
            add_input(c, out, f);
        }
    }
    lsm_buf_free(&lo);
    lsm_buf_free(&hi);
    c->trivial_move = c->ninputs[out] == 0 &&
                      (c->ninputs[level] == 1 || (level == 0 && l0_disjoint(c)));
    return c;
}

static struct compaction *pick_size_tiered(struct lsm_db *db, struct version *v)
{
    const struct lsm_options *o = &db->opt;
    int n = v->nfiles[0];
    if (n < o->stcs_min_threshold || o->stcs_min_threshold < 2) {
        return NULL;
    }
    /* runs oldest first: L0 is newest first */
    int best_i = -1, best_len = 0;
    double best_avg = 0;
    for (int i = 0; i < n; i++) {
        const struct file_meta *first = v->files[0][n - 1 - i];
        double sum = (double)first->size;
        int len = 1;
        while (i + len < n && len < o->stcs_max_threshold) {
            double avg = sum / len;
            double sz = (double)v->files[0][n - 1 - (i + len)]->size;
            bool small = sz < STCS_SMALL_RUN && avg < STCS_SMALL_RUN;
            if (!small && (sz < avg * 0.5 || sz > avg * 1.5)) {
                break;
            }
            sum += sz;
            len++;
        }
        if (len >= o->stcs_min_threshold && (best_i < 0 || sum / len < best_avg)) {
            best_i = i;
            best_len = len;
            best_avg = sum / len;
        }
    }
    if (best_i < 0) {
        return NULL;
    }
    struct compaction *c = compaction_new(v, 0);
    /* inputs newest first, like L0 */
    for (int k = best_i + best_len - 1; k >= best_i; k--) {
        add_input(c, 0, v->files[0][n - 1 - k]);
    }
    for (int k = 0; k < best_i; k++) {
        struct file_meta *f = v->files[0][n - 1 - k];
        c->older = lsm_realloc(c->older, (size_t)(c->nolder + 1) * sizeof(f));
        c->older[c->nolder++] = f;
        file_meta_ref(f);
    }
    return c;
}

struct compaction *compaction_pick(struct lsm_db *db)
{
    struct version *v = db->vs.current;
    if (db->opt.compaction_style == LSM_COMPACTION_SIZE_TIERED) {
        return pick_size_tiered(db, v);
    }
    return pick_leveled(db, v);
}

struct compaction *compaction_pick_range(struct lsm_db *db, const char *begin,
                                         size_t blen, const char *end, size_t elen)
{
    struct version *v = db->vs.current;
    bool stcs = db->opt.compaction_style == LSM_COMPACTION_SIZE_TIERED;
    struct lsm_buf lo = {0}, hi = {0};
    bool has_lo = begin != NULL, has_hi = end != NULL;
    if (has_lo) {
        lsm_buf_append(&lo, begin, blen);
    }
    if (has_hi) {
        lsm_buf_append(&hi, end, elen);
    }
    /* widen the range until it covers every file it overlaps, on every level, so
     * that no newer version is left above the output level */
    int deepest = -1;
    bool changed = true;
    while (changed) {
        changed = false;
        for (int l = 0; l < LSM_MAX_LEVELS; l++) {
            for (int i = 0; i < v->nfiles[l]; i++) {
                struct file_meta *f = v->files[l][i];
                if (!overlaps(f, lo.p, lo.len, has_lo, hi.p, hi.len, has_hi)) {
                    continue;
                }
                size_t sl, ll;
                const char *s = file_smallest_user(f, &sl);
                const char *e = file_largest_user(f, &ll);
                if (has_lo && user_key_compare(s, sl, lo.p, lo.len) < 0) {
                    lsm_buf_clear(&lo);
                    lsm_buf_append(&lo, s, sl);
                    changed = true;
                }
                if (has_hi && user_key_compare(e, ll, hi.p, hi.len) > 0) {
                    lsm_buf_clear(&hi);
                    lsm_buf_append(&hi, e, ll);
                    changed = true;
                }
                if (l > deepest) {
                    deepest = l;
                }
            }
        }
    }
    if (deepest < 0) {
        lsm_buf_free(&lo);
        lsm_buf_free(&hi);
        return NULL;
    }
    int out = stcs ? 0 : (deepest < 1 ? 1 : deepest);
    struct compaction *c = compaction_new(v, out);
    c->manual = true;
    c->max_output_file_size = stcs ? 0 : db->opt.target_file_size;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        for (int i = 0; i < v->nfiles[l]; i++) {
            struct file_meta *f = v->files[l][i];
            /* size-tiered: a window must be contiguous in age, so take every run */
            if (stcs || overlaps(f, lo.p, lo.len, has_lo, hi.p, hi.len, has_hi)) {
                add_input(c, l, f);
            }
        }
    }
    lsm_buf_free(&lo);
    lsm_buf_free(&hi);
    return c;
}

void compaction_release(struct compaction *c)
{
    if (c == NULL) {
        return;
    }
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        for (int i = 0; i < c->ninputs[l]; i++) {
            c->inputs[l][i]->compacting = false;
            file_meta_unref(c->inputs[l][i]);
        }
        lsm_free(c->inputs[l]);
    }
    for (int i = 0; i < c->nolder; i++) {
        file_meta_unref(c->older[i]);
    }
    lsm_free(c->older);
    version_unref(c->version);
    lsm_free(c);
}

/* ---- running --------------------------------------------------------------------------- */

/* True when no data for user key k can exist outside the compaction, below it. */
static bool is_base_level(void *ctx, const char *k, size_t klen)
{
    const struct compaction *c = ctx;
    for (int i = 0; i < c->nolder; i++) {
        if (file_covers(c->older[i], k, klen)) {
            return false;
        }
    }
    for (int l = c->output_level + 1; l < LSM_MAX_LEVELS; l++) {
        if (version_level_may_hold(c->version, l, k, klen)) {
            return false;
        }
    }
    /* L0 files that are not inputs are newer (flushed meanwhile), and every file
     * of the output level that overlaps the inputs is an input */
    return true;
}

struct outputs {
    struct file_meta **files;
    int n;
    struct sst_builder *b;
    uint64_t number;
    char path[PATH_MAX];
};

static int output_open(struct lsm_db *db, struct outputs *o, struct lsm_err *err)
{
    pthread_mutex_lock(&db->mu);
    o->number = db_new_file_number(db);
    pthread_mutex_unlock(&db->mu);
    db_file_name(o->path, sizeof(o->path), db->dir, o->number, "sst");
    struct sst_options so;
    sst_options_default(&so);
    so.block_size = db->opt.block_size;
    so.bloom_bits_per_key = db->opt.bloom_bits_per_key;
    return sst_builder_create(o->path, &so, &o->b, err);
}

static int output_finish(struct lsm_db *db, struct outputs *o, struct lsm_err *err)
{
    int rc = sst_builder_finish(&o->b, true, NULL, err);
    struct sst_reader *t = NULL;
    if (rc == LSM_OK) {
        rc = sst_reader_open(o->path, o->number, db->cache, &t, err);
    }
    if (rc != LSM_OK) {
        env_unlink(o->path, NULL);
        return rc;
    }
    struct file_meta *f = file_meta_create(db->dir, o->number, t);
    o->files = lsm_realloc(o->files, (size_t)(o->n + 1) * sizeof(f));
    o->files[o->n++] = f;
    atomic_fetch_add(&db->st.compaction_written, f->size);
    return LSM_OK;
}

static void outputs_abandon(struct outputs *o)
{
    if (o->b != NULL) {
        sst_builder_abandon(&o->b);
        env_unlink(o->path, NULL);
    }
    for (int i = 0; i < o->n; i++) {
        atomic_store(&o->files[i]->obsolete, true);
        file_meta_unref(o->files[i]);
    }
    lsm_free(o->files);
    o->files = NULL;
    o->n = 0;
}

static int run_trivial_move(struct lsm_db *db, struct compaction *c, struct lsm_err *err)
{
    struct version_edit e;
    edit_init(&e);
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        for (int i = 0; i < c->ninputs[l]; i++) {
            struct file_meta *f = c->inputs[l][i];
            edit_delete_file(&e, l, f->number);
            file_meta_ref(f);
            edit_add_file(&e, c->output_level, f);
        }
    }
    /* log_and_apply leaves a file it also adds live */
    int rc = version_set_log_and_apply(&db->vs, &e, &db->mu, err);
    edit_free(&e);
    return rc;
}

int compaction_run(struct lsm_db *db, struct compaction *c, struct lsm_err *err)
{
    if (c->trivial_move) {
        return run_trivial_move(db, c, err);
    }
    int nk = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        nk += l == 0 ? c->ninputs[0] : 1;
    }
    struct iiter **kids = lsm_malloc((size_t)nk * sizeof(*kids));
    const struct sst_iter_options io = {.fill_cache = false};
    nk = 0;
    uint64_t bytes_in = 0;
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        for (int i = 0; i < c->ninputs[l]; i++) {
            bytes_in += c->inputs[l][i]->size;
        }
        if (c->ninputs[l] == 0) {
            continue;
        }
        if (l == 0) {
            for (int i = 0; i < c->ninputs[0]; i++) {
                kids[nk++] = iiter_table(c->inputs[0][i], &io);
            }
        } else {
            kids[nk++] = iiter_files(c->inputs[l], c->ninputs[l], &io);
        }
    }
    struct iiter *it = iiter_merge(kids, nk);
    lsm_free(kids);
    struct entry_filter f = {0};
    pthread_mutex_lock(&db->mu);
    f.smallest_snapshot = db_smallest_snapshot(db);
    struct dropset *drop = dropset_ref(db->drop);
    pthread_mutex_unlock(&db->mu);
    f.drop = drop;
    f.now_ms = db_now_ms(db);
    f.grace_ms = db->opt.gc_grace_ms;
    f.horizon_ms = atomic_load_explicit(&db->gc_horizon_ms, memory_order_relaxed);
    f.gc = true;
    f.user_filter = db->opt.compaction_filter;
    f.user_arg = db->opt.compaction_filter_arg;
    struct outputs out = {0};
    struct lsm_buf last_key = {0};
    int rc = LSM_OK;
    uint64_t n = 0;
    for (iiter_seek_first(it); iiter_valid(it); iiter_next(it)) {
        if ((++n & 255) == 0) {
            if (atomic_load_explicit(&db->shutting_down, memory_order_relaxed)) {
                rc = lsm_err_set(err, LSM_IOERR, "compaction: shutting down");
                break;
            }
            if (atomic_load_explicit(&db->has_imm, memory_order_relaxed)) {
                rc = db_flush_imm(db); /* writers wait on it: it goes first */
                if (rc != LSM_OK) {
                    rc = lsm_err_set(err, rc, "compaction: a flush failed meanwhile");
                    break;
                }
            }
        }
        const char *k = it->key, *v = it->val;
        size_t kl = it->key_len, vl = it->val_len;
        if (entry_filter_apply(&f, &k, &kl, &v, &vl, is_base_level, c) == FILTER_DROP) {
            continue;
        }
        size_t ul = kl - IKEY_TRAILER_LEN;
        if (out.b != NULL && c->max_output_file_size > 0 &&
            sst_builder_file_size(out.b) >= c->max_output_file_size &&
            user_key_compare(k, ul, last_key.p, last_key.len) != 0) {
            rc = output_finish(db, &out, err);
            if (rc != LSM_OK) {
                break;
            }
        }
        if (out.b == NULL) {
            rc = output_open(db, &out, err);
            if (rc != LSM_OK) {
                break;
            }
        }
        rc = sst_builder_add(out.b, k, kl, v, vl);
        if (rc != LSM_OK) {
            rc = lsm_err_set(err, rc, "compaction: writing %s failed", out.path);
            break;
        }
        lsm_buf_clear(&last_key);
        lsm_buf_append(&last_key, k, ul);
    }
    if (rc == LSM_OK) {
        rc = iiter_status(it, err);
    }
    iiter_destroy(&it);
    if (rc == LSM_OK && out.b != NULL) {
        rc = output_finish(db, &out, err);
    }
    entry_filter_free(&f);
    dropset_unref(drop);
    lsm_buf_free(&last_key);
    if (rc != LSM_OK) {
        outputs_abandon(&out);
        return rc;
    }
    struct version_edit e;
    edit_init(&e);
    for (int l = 0; l < LSM_MAX_LEVELS; l++) {
        for (int i = 0; i < c->ninputs[l]; i++) {
            edit_delete_file(&e, l, c->inputs[l][i]->number);
        }
    }
    for (int i = 0; i < out.n; i++) {
        edit_add_file(&e, c->output_level, out.files[i]); /* takes our reference */
    }
    lsm_free(out.files);
    rc = version_set_log_and_apply(&db->vs, &e, &db->mu, err);
    if (rc != LSM_OK) {
        for (int i = 0; i < e.nadded; i++) {
            atomic_store(&e.added[i].f->obsolete, true);
        }
    }
    edit_free(&e);
    atomic_fetch_add(&db->st.compaction_read, bytes_in);
    atomic_fetch_add(&db->st.compactions, 1);
    return rc;
}
