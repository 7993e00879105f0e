/* cluster/hintlog.h: the hint log, durable hints in persistent mode (cluster/README.md
 * "The hint log"). One append-only file per target in a directory (dir/hints/),
 * each record checksummed (CRC-32C), mirroring what the in-memory hint store
 * (hints.h) keeps: appended when a hint is kept, truncated when the target's queue
 * is empty, rewritten from memory when delivered and dropped records outweigh the
 * pending ones, and read back at start (hintlog_load).
 *
 *   file   := <dir>/<target as 8 lowercase hex digits>.log
 *   log    := "KVHL" version:u8(2) target:u32be  record*
 *   record := len:u32be crc:u32be body[len]       crc = crc32c_mask(CRC-32C(body))
 *   body   := created_ms:u64be db:u16be klen:u32be key rlen:u32be rec[rlen]
 *
 * created_ms is wall-clock Unix ms; the hint store runs on the runtime's monotonic
 * clock, so every call that converts takes wall_offset = wall now - monotonic now
 * (a hint created at monotonic m was created at wall m + wall_offset).
 *
 * Memory is the truth while the node runs; the log only has to bring it back after
 * a restart. Appends are buffered and written with one write(2) per file at
 * hintlog_flush (the runtime calls it once per loop turn): after it, a SIGKILL
 * loses nothing. hintlog_sync fdatasyncs (once a second: a machine crash may lose
 * the last second of hints; hints never count toward W). Damage (torn tail, bad
 * checksum or body, bad header) is skipped with one log line per file and counted;
 * an I/O error disables the log (logged once): hints stay in memory.
 *
 * What it leaves to others: when to flush and sync (cluster.c's timers), the hint
 * store itself (hints.h), the clocks (passed in). Loop thread only.
 */
#ifndef KVD_CLUSTER_HINTLOG_H
#define KVD_CLUSTER_HINTLOG_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/hints.h"

#define HINTLOG_HEADER 9          /* "KVHL" version target */
#define HINTLOG_REC_FIXED 26      /* len crc created db klen rlen */

struct hintlog_stats {
    uint64_t loaded;      /* good records read at load */
    uint64_t skipped;     /* damaged records or files skipped at load */
    uint64_t appended;    /* records written */
    uint64_t truncations; /* a drained target's file cut to its header */
    uint64_t rewrites;    /* files rewritten from memory */
    uint64_t syncs;
    uint64_t errors;      /* I/O errors (the first disables the log) */
};

struct hintlog;

/* Where the log's lines go (may be NULL: standard error). */
typedef void hintlog_log_fn(void *ctx, const char *msg);

/* Opens (creating it when missing) the log directory dir. NULL with err. */
struct hintlog *hintlog_open(const char *dir, hintlog_log_fn *log, void *logctx, char *err,
                             size_t errlen);
/* Writes what is buffered, syncs and closes; *l becomes NULL. NULL is a no-op. */
void hintlog_close(struct hintlog **l);

/* Reads every target's file into h, in file order, through hints_add_created
 * (created = the record's wall time - wall_offset, at most now; so h's window and
 * max_bytes apply). Damage is skipped and counted, never fatal. Then rewrites
 * every file from h (dropping what was delivered, expired or damaged) and watches
 * h (hints_observe) from then on. Returns the hints added. Call once, before h
 * gets any other hint. */
size_t hintlog_load(struct hintlog *l, struct hints *h, uint64_t now, int64_t wall_offset);

/* Writes the buffered records (one write(2) per file), and rewrites the files that
 * hintlog_load's observer marked (from h). 0, or -1 when the log is disabled. */
int hintlog_flush(struct hintlog *l, const struct hints *h, int64_t wall_offset);
/* fdatasyncs the files written since the last sync. */
int hintlog_sync(struct hintlog *l);
/* 1 while records wait for hintlog_flush. */
int hintlog_dirty(const struct hintlog *l);

/* The offset of wall time over the monotonic clock the hints use; updated by the
 * runtime before changes to h (the observer converts with it). */
void hintlog_set_wall_offset(struct hintlog *l, int64_t wall_offset);

/* fn(ctx) runs when the log goes from clean to dirty (records to write, a file to
 * rewrite): the runtime arms its flush for the end of the loop turn. fn must not
 * call back into the log or the hints. */
void hintlog_on_dirty(struct hintlog *l, void (*fn)(void *ctx), void *ctx);

/* A record's size on disk for hint x. */
size_t hintlog_record_size(const struct hint *x);

/* Bytes of delivered or dropped records beyond which (when they also outweigh the
 * pending ones) a file is rewritten: 1 MiB by default; tests lower it. */
void hintlog_set_rewrite_min(struct hintlog *l, size_t bytes);

const struct hintlog_stats *hintlog_stats(const struct hintlog *l);

#endif
