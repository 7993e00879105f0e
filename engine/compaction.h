/* engine/compaction.h: choosing and running compactions, and the rules that drop
 * entries (shared with memtable flushes).
 *
 * Leveled (default): L0 tables overlap and are merged into L1 once there are
 * l0_compaction_trigger of them; a level n >= 1 larger than its target
 * (l1_target_bytes * multiplier^(n-1)) pushes one table (round robin by key) into
 * n+1, merged with the tables it overlaps there. The level with the highest
 * size/target score goes first. A table with nothing to merge below is moved by a
 * MANIFEST edit alone.
 *
 * Size-tiered (Cassandra STCS): every run stays in L0. Runs are bucketed by size
 * (a run joins a bucket when its size is within [0.5x, 1.5x] of the bucket's
 * average); a bucket with stcs_min_threshold runs is merged into one run. To keep
 * reads "newest run first" correct, a bucket is a window of runs adjacent in age
 * (as RocksDB's universal compaction does), so the merged run's sequence range
 * never interleaves with a run left out.
 *
 * What compaction drops (LevelDB's rules plus expiry and GC grace), per user key,
 * walking its versions newest first, with S = the oldest live snapshot:
 *   - a version hidden by a newer version that is itself <= S (nobody can see it);
 *   - an expired value is first turned into a tombstone (keeping its expire-at,
 *     timestamp and node): reads already treat it as absent, and include_tombstones
 *     readers already see it as deleted with that meta, so this is invisible;
 *   - a tombstone <= S when no older data for the key can exist below the output
 *     (levels deeper than the output, or older runs) and its grace period is over
 *     (tombstone_droppable): max(expire_at, LSM_HLC_MS(timestamp)) + gc_grace_ms
 *     <= now, for a delete and for an expired value alike (a replica must keep
 *     "gone at T" long enough to refuse an older copy arriving late), and that
 *     same date is below the GC horizon (lsm_set_gc_horizon: a cluster's repair
 *     has carried the tombstone to every replica; no horizon by default). A tombstone
 *     with timestamp 0 (written without one, by old files' expiry or the
 *     compaction filter) has no age to keep: it goes at once.
 *   - an entry, value or tombstone, of the drop set (lsm_set_drop_ranges: its key in
 *     one of the set's ranges, its sequence at most the set's upto_seq) becomes a
 *     tombstone without timestamp, as a filtered value does, so it goes at once
 *     at the base level and hides the key's older versions below until then.
 * A flush applies only the first rule.
 */
#ifndef KVD_ENGINE_COMPACTION_H
#define KVD_ENGINE_COMPACTION_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/db.h"
#include "engine/dropset.h"
#include "engine/iterator.h"

struct compaction {
    struct version *version; /* referenced input version */
    int output_level;
    struct file_meta **inputs[LSM_MAX_LEVELS]; /* per level, referenced */
    int ninputs[LSM_MAX_LEVELS];
    struct file_meta **older; /* STCS: older runs not merged */
    int nolder;
    bool trivial_move; /* one table, nothing below: move */
    bool manual;
    uint64_t max_output_file_size; /* 0: one output file */
};

/* Picks the most urgent compaction of the current version, or NULL. Marks its
 * inputs as compacting. mu held. */
struct compaction *compaction_pick(struct lsm_db *db);
/* Every table overlapping [begin, end] (NULL: open), into the last level (leveled)
 * or one run (size-tiered). NULL when nothing overlaps. mu held. */
struct compaction *compaction_pick_range(struct lsm_db *db, const char *begin,
                                         size_t blen, const char *end, size_t elen);
/* Runs c: merges, writes outputs, logs and installs the edit. mu not held. */
int compaction_run(struct lsm_db *db, struct compaction *c, struct lsm_err *err);
/* Unmarks the inputs and frees c. mu held. */
void compaction_release(struct compaction *c);

/* Bytes estimated to need compaction in v (for stats and stalls). */
uint64_t compaction_pending_bytes(const struct lsm_options *o, const struct version *v);

/* The per-key drop decision (see above). */
struct entry_filter {
    uint64_t smallest_snapshot;
    uint64_t now_ms;
    uint64_t grace_ms;
    uint64_t horizon_ms; /* lsm_set_gc_horizon at the start of the compaction */
    bool gc;                /* false for flushes: only drop hidden versions */
    struct lsm_buf cur_key; /* user key of the previous entry */
    bool has_cur;
    bool has_prev_version;     /* an entry of cur_key came before */
    uint64_t last_seq_for_key; /* seq of that previous version */
    struct lsm_buf scratch;    /* rewritten entries (expired -> tombstone) */
    int (*user_filter)(void *arg, const char *key, size_t klen,
                       const struct lsm_meta *meta);
    void *user_arg; /* options.compaction_filter and its argument */
    const struct dropset *drop; /* lsm_set_drop_ranges at the start (referenced), or NULL */
};

enum filter_verdict { FILTER_KEEP, FILTER_DROP, FILTER_REWRITE };

/* Decides about one entry of the merged stream. For FILTER_REWRITE, the key and value are
 * replaced by versions in f->scratch (valid until the next call). base_level tells
 * whether no older data for the key can exist outside this merge; it is called
 * only when needed. */
enum filter_verdict
entry_filter_apply(struct entry_filter *f, const char **ikey, size_t *ikey_len,
                   const char **val, size_t *val_len,
                   bool (*base_level)(void *ctx, const char *k, size_t klen), void *ctx);
void entry_filter_free(struct entry_filter *f);

#endif
