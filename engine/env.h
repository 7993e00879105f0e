/* engine/env.h: the file layer. Every byte the engine reads or writes goes through
 * these functions, so tests can inject faults in one place.
 *
 * Normal path: thin wrappers over open/pwrite/pread/fdatasync/... with errors turned
 * into enum lsm_status plus a message naming the file and the offset. The fault check
 * on the write path is one predictable branch on a global flag.
 *
 * Fault mode (tests only, env_fault_enable): the layer remembers, per path, how many
 * bytes were written and how many were made durable (fsync/fdatasync, and for a new
 * file an env_sync_dir of its directory), and can
 *   - drop everything not durable, as a power cut would (env_fault_drop_unsynced);
 *   - fail the Nth write or the Nth sync from now with EIO;
 *   - fail writes with ENOSPC once a byte budget is spent.
 * What a crash does to renames is not modelled: a rename is durable at once.
 *
 * Threading: an env_file may be used by several threads at once for pread/pwrite at
 * distinct offsets and for sync; env_append needs one writer at a time. Fault
 * bookkeeping takes a global mutex, only in fault mode.
 */
#ifndef KVD_ENGINE_ENV_H
#define KVD_ENGINE_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/status.h"

/* An open file. Fields are read-only for callers. */
struct env_file {
    int fd;
    char *path;    /* as given to the open call (memory files: their name) */
    uint64_t size; /* where env_append writes next: file size at open, plus appends */
    bool memory;   /* an env_create_memory file (never tracked by fault mode) */
};

/* --- opening and closing. *out is set only on LSM_OK. --- */

/* Opens an existing file for reading (pread). LSM_NOTFOUND when it does not exist. */
int env_open_read(const char *path, struct env_file **out, struct lsm_err *err);
/* Creates a file for writing, truncating it if it exists (O_CREAT|O_TRUNC|O_RDWR). */
int env_create(const char *path, struct env_file **out, struct lsm_err *err);
/* Opens a file for reading and writing, creating it when missing; size starts at the
 * current file size. */
int env_open_rw(const char *path, struct env_file **out, struct lsm_err *err);
/* An anonymous in-memory file (memfd), for fuzzers and tests; readable and writable;
 * name only appears in messages. */
int env_create_memory(const char *name, struct env_file **out, struct lsm_err *err);
/* Closes the file (without syncing) and frees it; sets *f to NULL. NULL is a no-op. */
void env_close(struct env_file **f);

/* --- writing --- */

/* Writes n bytes at f->size with one write system call (retried only for short
 * writes) and advances f->size. */
int env_append(struct env_file *f, const void *buf, size_t n, struct lsm_err *err);
/* Writes n bytes at off; f->size grows to off + n when that is past it. */
int env_pwrite(struct env_file *f, const void *buf, size_t n, uint64_t off,
               struct lsm_err *err);
/* fsync: data and metadata. */
int env_sync(struct env_file *f, struct lsm_err *err);
/* fdatasync: data, and metadata only when needed to read the data back (file size). */
int env_datasync(struct env_file *f, struct lsm_err *err);
/* Starts writeback of [off, off+len) without waiting (Linux sync_file_range):
 * spreads a large file's writes to the disk instead of one burst at its fsync,
 * which would also delay other files' fsyncs (the WAL's). Not a durability point;
 * best effort, no error. */
void env_start_writeback(struct env_file *f, uint64_t off, uint64_t len);
/* Reserves disk blocks for [off, off+len) and extends the file size to cover them
 * (fallocate mode 0: the new range reads as zeros). Does not change f->size, so
 * appends keep writing at f->size and overwrite the reserved zeros. */
int env_preallocate(struct env_file *f, uint64_t off, uint64_t len, struct lsm_err *err);
/* Sets the file size to len (ftruncate); f->size becomes len. */
int env_truncate(struct env_file *f, uint64_t len, struct lsm_err *err);

/* --- reading --- */

/* Reads up to n bytes at off into buf; *got is the count (less than n only at end of
 * file). Safe from many threads at once. */
int env_pread(struct env_file *f, void *buf, size_t n, uint64_t off, size_t *got,
              struct lsm_err *err);
/* Current size of the open file (fstat). */
int env_file_size(struct env_file *f, uint64_t *size, struct lsm_err *err);
/* Reads a whole (small) file into a new buffer; *buf is NUL-terminated one byte past
 * *len, free with lsm_free. LSM_NOTFOUND when it does not exist. */
int env_read_file(const char *path, char **buf, size_t *len, struct lsm_err *err);

/* --- names --- */

/* rename(2), replacing to. To make it durable, env_sync_dir the directory after. */
int env_rename(const char *from, const char *to, struct lsm_err *err);
/* unlink(2). LSM_NOTFOUND when it did not exist. */
int env_unlink(const char *path, struct lsm_err *err);
/* mkdir(2) with mode 0755; LSM_OK when it already exists as a directory. */
int env_mkdir(const char *path, struct lsm_err *err);
/* rmdir(2) of an empty directory. */
int env_rmdir(const char *path, struct lsm_err *err);
/* fsync of a directory: makes creations, renames and unlinks in it durable. */
int env_sync_dir(const char *dir, struct lsm_err *err);
bool env_exists(const char *path);
/* Lists the names in dir (not "." or ".."), unsorted. Free with env_free_names. */
int env_list_dir(const char *dir, char ***names, size_t *count, struct lsm_err *err);
void env_free_names(char **names, size_t count);

/* --- lock file: one process per database directory --- */

struct env_lock;
/* Creates path if needed and takes an exclusive fcntl lock on it; LSM_BUSY when
 * another process holds it. Release with env_unlock (sets *lock to NULL). */
int env_lock_file(const char *path, struct env_lock **lock, struct lsm_err *err);
void env_unlock(struct env_lock **lock);

/* ------------------------------------------------------------------------------
 * Fault injection (tests). All counters count calls from the moment they are set.
 * ------------------------------------------------------------------------------ */

/* Turns fault mode on (clearing all bookkeeping and armed faults) or off. Files
 * opened before enabling are tracked from their next write on. */
void env_fault_enable(bool on);
/* The nth write call from now (1 = the next) fails with EIO; after writing a prefix
 * of torn_bytes (0 = nothing) of it. 0 disarms. Writes after it succeed again. */
void env_fault_fail_write(uint64_t nth, size_t torn_bytes);
/* The nth sync call (fsync, fdatasync, dir sync) from now fails with EIO; 0 disarms. */
void env_fault_fail_sync(uint64_t nth);
/* Writes fail with ENOSPC once they would pass `bytes` more bytes written; the write
 * that crosses the budget writes nothing. UINT64_MAX disarms. */
void env_fault_space_limit(uint64_t bytes);
/* Simulates a power cut for every file written while fault mode was on: bytes never
 * synced are dropped (the file is cut back to its synced size; unsynced overwrites
 * inside it become zeros) and files created since their directory was last synced
 * are removed. Open handles must be closed first; fault mode stays on. Returns the
 * number of files changed. */
int env_fault_drop_unsynced(void);
/* Every fsync/fdatasync of a file (not of a directory, not of a memory file) sleeps
 * ms milliseconds first, on the thread that syncs: a slow disk, for tests (DEBUG
 * SET-FSYNC-DELAY). 0 (the default) turns it off; independent of fault mode. */
void env_debug_sync_delay(uint32_t ms);
/* Counters since env_fault_enable, for assertions. */
struct env_fault_stats {
    uint64_t writes;        /* write calls */
    uint64_t syncs;         /* sync calls */
    uint64_t bytes_written; /* bytes written */
    uint64_t injected;      /* faults injected */
};
void env_fault_stats(struct env_fault_stats *out);

#endif
