/* engine/status.c: error messages and the aborting allocation wrapper shared by the
 * whole engine (see engine/status.h). */
#include "engine/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lsm_err_set(struct lsm_err *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void lsm_err_clear(struct lsm_err *err)
{
    if (err != NULL) {
        err->code = LSM_OK;
        err->msg[0] = '\0';
    }
}

const char *lsm_status_name(int code)
{
    switch (code) {
    case LSM_OK:
        return "OK";
    case LSM_NOTFOUND:
        return "NOTFOUND";
    case LSM_CORRUPT:
        return "CORRUPT";
    case LSM_IOERR:
        return "IOERR";
    case LSM_INVALID:
        return "INVALID";
    case LSM_NOSPACE:
        return "NOSPACE";
    case LSM_BUSY:
        return "BUSY";
    default:
        return "UNKNOWN";
    }
}

static void *oom(size_t n)
{
    fprintf(stderr, "engine: out of memory allocating %zu bytes\n", n);
    abort();
}

void *lsm_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    return p ? p : oom(n);
}

void *lsm_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    return p ? p : oom(n * size);
}

void *lsm_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    return q ? q : oom(n);
}

char *lsm_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = lsm_malloc(n);
    memcpy(p, s, n);
    return p;
}

void lsm_free(void *p)
{
    free(p);
}
