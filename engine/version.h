/* engine/version.h: which tables are live, per level, and how that is recorded.
 *
 * A version is an immutable, reference-counted list of tables per level: L0 tables
 * may overlap and are ordered newest first (by their largest sequence number); in
 * L1 and below tables are disjoint and ordered by key. Readers pin a version and
 * read without locks; flushes and compactions make a new version from the current
 * one plus a version edit (files added and deleted, counters) and install it.
 *
 * The version set logs every edit to the MANIFEST before installing it. A MANIFEST
 * is a WAL-format segment (engine/wal.h) whose records are encoded edits
 * (engine/README.md "Manifest"); CURRENT names the live MANIFEST and is replaced
 * atomically (write CURRENT.tmp, fsync, rename, fsync the directory). At open the
 * set replays the MANIFEST, opens every live table, then writes a fresh MANIFEST
 * holding one snapshot edit so that the log does not grow across restarts.
 *
 * Files: a file_meta is shared by every version that lists it. When an edit drops a
 * table it is marked obsolete; the last version releasing it closes the reader and
 * unlinks the file, so a table is deleted only once no reader can touch it.
 *
 * Threading: version_ref/unref from any thread (atomic). Building and installing
 * versions happens on one thread at a time (open, then the background thread);
 * the pointer vs->current is read and swapped under the DB mutex.
 */
#ifndef KVD_ENGINE_VERSION_H
#define KVD_ENGINE_VERSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/dbformat.h"
#include "engine/engine.h"
#include "engine/sst.h"
#include "engine/wal.h"

struct file_meta {
    atomic_int refs; /* versions (and compactions) holding it */
    uint64_t number; /* NNNNNN.sst */
    uint64_t size;   /* file bytes */
    uint64_t min_seqno, max_seqno;
    struct lsm_buf smallest;  /* smallest internal key */
    struct lsm_buf largest;   /* largest internal key */
    struct sst_reader *table; /* open reader, NULL only while being built */
    char *path;               /* for the unlink when obsolete */
    atomic_bool obsolete;     /* dropped by an edit: unlink at the last unref */
    bool compacting;          /* input of a running compaction (DB mutex) */
};

/* A new file_meta with one reference; takes ownership of table; copies the key
 * range and seqnos from the table's properties. */
struct file_meta *file_meta_create(const char *dir, uint64_t number,
                                   struct sst_reader *table);
void file_meta_ref(struct file_meta *f);
void file_meta_unref(struct file_meta *f);
static inline const char *file_smallest_user(const struct file_meta *f, size_t *len)
{
    *len = f->smallest.len - IKEY_TRAILER_LEN;
    return f->smallest.p;
}
static inline const char *file_largest_user(const struct file_meta *f, size_t *len)
{
    *len = f->largest.len - IKEY_TRAILER_LEN;
    return f->largest.p;
}

struct version {
    atomic_int refs;
    struct file_meta **files[LSM_MAX_LEVELS]; /* owned arrays of referenced files */
    int nfiles[LSM_MAX_LEVELS];
    uint64_t level_bytes[LSM_MAX_LEVELS];
};

void version_ref(struct version *v);
void version_unref(struct version *v);

/* In a level >= 1: index of the first file whose largest key >= ikey, or
 * v->nfiles[level] when none. */
int version_find_file(const struct version *v, int level, const char *ikey, size_t len);
/* True when user key k falls inside f's user-key range. */
bool file_covers(const struct file_meta *f, const char *k, size_t klen);
/* True when some file of level (>= 1) may hold user key k. */
bool version_level_may_hold(const struct version *v, int level, const char *k,
                            size_t klen);

/* What a flush or compaction changes. */
struct edit_file {
    int level;
    uint64_t number;
    struct file_meta *f; /* added files: one reference owned by the edit */
};

struct version_edit {
    bool has_log_number, has_next_file, has_last_seq;
    uint64_t log_number; /* WALs below this number are no longer needed */
    uint64_t next_file;
    uint64_t last_seq;
    struct edit_file *deleted;
    int ndeleted, cap_deleted;
    struct edit_file *added;
    int nadded, cap_added;
};

void edit_init(struct version_edit *e);
void edit_free(struct version_edit *e); /* drops the references of added files */
void edit_delete_file(struct version_edit *e, int level, uint64_t number);
/* Takes over the caller's reference to f. */
void edit_add_file(struct version_edit *e, int level, struct file_meta *f);

/* base (NULL: empty) plus e, as a new version with one reference. No I/O. */
struct version *version_apply_edit(const struct version *base,
                                   const struct version_edit *e);

struct version_set {
    char *dir;
    struct block_cache *cache; /* given to table readers */
    struct version *current;   /* swapped under the DB mutex */
    uint64_t next_file;        /* next file number (DB mutex) */
    uint64_t log_number;       /* oldest WAL still needed */
    uint64_t last_seq;         /* as of the last logged edit */
    uint64_t manifest_number;
    struct wal_writer *manifest;  /* open MANIFEST, NULL before recovery */
    uint64_t manifest_roll_bytes; /* past this size, start a new snapshot MANIFEST */
    int roll_rc;                  /* a failed roll (after its edit was installed) */
    struct lsm_err roll_err;      /* its message */
    struct lsm_buf compact_ptr[LSM_MAX_LEVELS]; /* leveled round robin: last key */
};

void version_set_init(struct version_set *vs, const char *dir, struct block_cache *cache);
void version_set_deinit(struct version_set *vs);

/* Reads CURRENT and the MANIFEST it names and builds vs->current, opening every
 * table. LSM_NOTFOUND when there is no CURRENT (a new database). */
int version_set_recover(struct version_set *vs, struct lsm_err *err);

/* Starts a new MANIFEST (number vs->next_file++) holding the current version and
 * counters, syncs it and points CURRENT at it; the previous MANIFEST is deleted. */
int version_set_write_snapshot(struct version_set *vs, pthread_mutex_t *mu,
                               struct lsm_err *err);

/* Logs e to the MANIFEST (synced), then installs current + e as the new current
 * version under *mu. Called without *mu held, from one thread at a time. On error
 * nothing is installed. A MANIFEST grown past manifest_roll_bytes is then replaced
 * by a fresh snapshot one; if that fails the edit still stands (LSM_OK) and the
 * failure is left in vs->roll_rc/roll_err for the caller to make sticky. */
int version_set_log_and_apply(struct version_set *vs, struct version_edit *e,
                              pthread_mutex_t *mu, struct lsm_err *err);

/* Names of database files. buf must hold PATH_MAX. */
void db_file_name(char *buf, size_t n, const char *dir, uint64_t number, const char *ext);

#endif
