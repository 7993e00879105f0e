/* engine/status.h: the status codes, error messages and allocation wrapper that
 * every file of the engine shares (lower layer: formats and file I/O; upper layer:
 * the DB). engine/engine.h re-exports enum lsm_status to users of the engine.
 *
 * Errors: a function that can fail returns an enum lsm_status (0 = success) and, when
 * the caller passes a struct lsm_err, writes there what failed and where it started
 * ("sst 000012.sst: block at 4096: bad checksum"). Passing NULL is always allowed.
 *
 * Allocation: lsm_malloc and friends never return NULL; out of memory aborts with a
 * line on stderr (jemalloc underneath in the normal build).
 */
#ifndef KVD_ENGINE_STATUS_H
#define KVD_ENGINE_STATUS_H

#include <stddef.h>

enum lsm_status {
    LSM_OK = 0,
    LSM_NOTFOUND = -1, /* no such key / end of data: not an error by itself */
    LSM_CORRUPT = -2,  /* bytes on disk fail a checksum or do not parse */
    LSM_IOERR = -3,    /* a system call failed (see the message for errno) */
    LSM_INVALID = -4,  /* bad argument or misuse of an API */
    LSM_NOSPACE = -5,  /* ENOSPC or EDQUOT from the file system */
    LSM_BUSY = -6,     /* a lock file is held by another process */
};

/* Where an error started. code repeats the returned status; msg is NUL-terminated
 * and empty after lsm_err_clear. */
struct lsm_err {
    int code;      /* an enum lsm_status */
    char msg[256]; /* "what: where: why" */
};

/* Sets *err (when err is not NULL) to code and the printf-style message; returns code
 * so that `return lsm_err_set(err, LSM_CORRUPT, "...")` reads naturally. */
int lsm_err_set(struct lsm_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sets code LSM_OK and an empty message. err may be NULL. */
void lsm_err_clear(struct lsm_err *err);

/* A constant name for a status: "OK", "NOTFOUND", "CORRUPT", ... */
const char *lsm_status_name(int code);

/* Allocation that aborts on out-of-memory. lsm_free(NULL) is a no-op. */
void *lsm_malloc(size_t n);
void *lsm_calloc(size_t n, size_t size);
void *lsm_realloc(void *p, size_t n);
char *lsm_strdup(const char *s);
void lsm_free(void *p);

#endif
