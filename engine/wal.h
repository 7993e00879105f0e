/* engine/wal.h: the write-ahead log segment writer and reader (engine/FORMAT.md
 * "WAL segment"). A segment is a 16-byte header then 32 KiB blocks of checksummed
 * fragments; one logical record (a write batch, or whatever the DB puts there) may
 * span blocks. This layer knows nothing of what is inside a record.
 *
 * Writer: wal_writer_add encodes records into a buffer without I/O; wal_writer_flush
 * writes everything added with one write system call; wal_writer_sync makes it
 * durable (fdatasync). Group commit is the DB's: add every waiting batch, flush once,
 * sync once. The segment is preallocated in chunks so that synced appends overwrite
 * reserved space instead of growing the file.
 *
 * Reader: returns records in order. The log ends at end of file, at a zero fragment
 * header (preallocated space never written), or at a damaged tail: a fragment that
 * fails its checksum or is cut short with no valid fragment after it, as a crash in
 * the middle of an append leaves. The reader reports the offset where valid data ends
 * so the DB can truncate there. A damaged fragment followed by a valid one is
 * corruption in the middle of the log: LSM_CORRUPT with the file name and offset,
 * never skipped.
 */
#ifndef KVD_ENGINE_WAL_H
#define KVD_ENGINE_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/env.h"
#include "engine/status.h"

#define WAL_BLOCK_SIZE 32768
#define WAL_HEADER_SIZE 16    /* segment header */
#define WAL_FRAGMENT_HEADER 7 /* crc32c:u32le length:u16le type:u8 */

struct wal_writer;

struct wal_writer_options {
    uint64_t log_number;     /* stored in the segment header and checksums */
    uint64_t prealloc_bytes; /* reserve the segment in chunks of this size (0: never) */
};

/* Creates (truncating) the segment at path and writes its header (not synced).
 * The writer owns the file until wal_writer_close. */
int wal_writer_create(const char *path, const struct wal_writer_options *opt,
                      struct wal_writer **out, struct lsm_err *err);
/* Encodes one record of len bytes (0 allowed) into the pending buffer. No I/O. */
void wal_writer_add(struct wal_writer *w, const void *payload, size_t len);
/* Bytes added but not yet flushed. */
size_t wal_writer_pending(const struct wal_writer *w);
/* Writes all pending bytes with one write call (extending the preallocation first if
 * needed). After an error the writer refuses further flushes (sticky). */
int wal_writer_flush(struct wal_writer *w, struct lsm_err *err);
/* wal_writer_add + wal_writer_flush. */
int wal_writer_append(struct wal_writer *w, const void *payload, size_t len,
                      struct lsm_err *err);
/* fdatasync: everything flushed before the call is durable when it returns LSM_OK.
 * May run on another thread concurrently with add/flush; wal_writer_flushed_offset
 * read before calling tells what the sync covers. A failed sync is sticky. */
int wal_writer_sync(struct wal_writer *w, struct lsm_err *err);
/* Bytes of the segment written so far (header included); atomic, any thread. */
uint64_t wal_writer_flushed_offset(const struct wal_writer *w);
/* Flushes pending bytes, trims unused preallocated space, syncs when sync is true,
 * closes and frees; sets *w to NULL. Returns the first error met. */
int wal_writer_close(struct wal_writer **w, bool sync, struct lsm_err *err);

struct wal_reader;

/* Opens a segment for reading. LSM_CORRUPT when its header is missing or wrong
 * (a file shorter than the header: an empty log, not an error). */
int wal_reader_open(const char *path, struct wal_reader **out, struct lsm_err *err);
/* The same over an open file, e.g. an env_create_memory file; takes ownership of f. */
int wal_reader_open_file(struct env_file *f, struct wal_reader **out,
                         struct lsm_err *err);
/* Next record: LSM_OK with *payload and *len valid until the next call; LSM_NOTFOUND at
 * the end of the log (see wal_reader_end); LSM_CORRUPT or LSM_IOERR with a message
 * naming the file and offset. After an error every call returns it again. */
int wal_reader_next(struct wal_reader *r, const char **payload, size_t *len,
                    struct lsm_err *err);
/* After LSM_NOTFOUND: *valid_end is the offset just past the last whole record, and
 * *torn is true when damaged bytes follow it (a torn tail to truncate) rather than
 * end of file or zeros. */
void wal_reader_end(const struct wal_reader *r, uint64_t *valid_end, bool *torn);
/* After LSM_NOTFOUND with *torn: what was found there, for the recovery log line
 * ("bad checksum at offset 29", "record cut short at end of file"); "" otherwise.
 * Added after the first version of this header (compatible addition). A caller that
 * cannot accept a torn tail (say, one whose last record was synced before anything
 * depended on it) may treat it as corruption using this text. */
const char *wal_reader_tail_reason(const struct wal_reader *r);
/* Offset of the start of the record last returned (its first fragment). */
uint64_t wal_reader_record_offset(const struct wal_reader *r);
void wal_reader_close(struct wal_reader **r);

#endif
