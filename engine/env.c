/* engine/env.c: the file layer (see engine/env.h). Thin wrappers over POSIX calls
 * that turn errno into enum lsm_status and a message naming the file; in fault mode a
 * per-path record of written and durable bytes that lets a test drop what a power
 * cut would lose, and armed faults for writes and syncs.
 *
 * How the fault bookkeeping works: each path written in fault mode has a record
 * {synced, written_end, dirty range, created}. A write extends written_end; a write
 * below `synced` widens the dirty range (an overwrite of durable bytes). A sync makes
 * synced = max(synced, written_end) and clears the dirty range. A dir sync clears
 * `created` for the files in that directory. env_fault_drop_unsynced then, per
 * record: removes a created file; otherwise zeroes the dirty range and cuts the file
 * at `synced`. Example: append 100 bytes, sync, append 50, drop: the file is 100
 * bytes long again.
 */
#include "engine/env.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int errno_status(int e)
{
    switch (e) {
    case ENOENT:
        return LSM_NOTFOUND;
    case ENOSPC:
    case EDQUOT:
        return LSM_NOSPACE;
    default:
        return LSM_IOERR;
    }
}

static int io_error(struct lsm_err *err, int e, const char *op, const char *path)
{
    return lsm_err_set(err, errno_status(e), "%s %s: %s", op, path, strerror(e));
}

/* ------------------------------------------------------------------------------
 * Fault bookkeeping (only touched when fault_on).
 * ------------------------------------------------------------------------------ */

struct fault_file {
    char *path;
    uint64_t synced;      /* bytes [0, synced) are durable, except the dirty range */
    uint64_t written_end; /* highest offset written + 1 */
    uint64_t dirty_lo;    /* unsynced overwrites below synced: [dirty_lo, dirty_hi) */
    uint64_t dirty_hi;
    bool created; /* created in fault mode, its directory not synced since */
    struct fault_file *next;
};

static atomic_int fault_on;
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fault_file *fault_files;
static uint64_t fault_fail_write_at; /* stats.writes value that fails; 0 = none */
static size_t fault_torn_bytes;
static uint64_t fault_fail_sync_at;
static uint64_t fault_space_left = UINT64_MAX;
static struct env_fault_stats fault_stats;

static struct fault_file *fault_find(const char *path)
{
    for (struct fault_file *ff = fault_files; ff != NULL; ff = ff->next) {
        if (strcmp(ff->path, path) == 0) {
            return ff;
        }
    }
    return NULL;
}

/* The record for path, created from the file's current size when new. */
static struct fault_file *fault_get(const char *path, int fd)
{
    struct fault_file *ff = fault_find(path);
    if (ff == NULL) {
        struct stat st;
        ff = lsm_calloc(1, sizeof(*ff));
        ff->path = lsm_strdup(path);
        if (fd >= 0 && fstat(fd, &st) == 0) {
            ff->synced = ff->written_end = (uint64_t)st.st_size;
        }
        ff->next = fault_files;
        fault_files = ff;
    }
    return ff;
}

static void fault_forget(const char *path)
{
    for (struct fault_file **pp = &fault_files; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->path, path) == 0) {
            struct fault_file *ff = *pp;
            *pp = ff->next;
            lsm_free(ff->path);
            lsm_free(ff);
            return;
        }
    }
}

static void fault_note_created(const char *path)
{
    pthread_mutex_lock(&fault_mu);
    fault_forget(path);
    fault_get(path, -1)->created = true;
    pthread_mutex_unlock(&fault_mu);
}

/* The write path in fault mode: counts, maybe injects, performs and records. */
static int fault_pwrite(struct env_file *f, const void *buf, size_t n, uint64_t off,
                        struct lsm_err *err)
{
    pthread_mutex_lock(&fault_mu);
    fault_stats.writes++;
    size_t todo = n;
    int inject = 0;
    if (fault_fail_write_at != 0 && fault_stats.writes == fault_fail_write_at) {
        inject = EIO;
        todo = fault_torn_bytes < n ? fault_torn_bytes : n;
        fault_fail_write_at = 0;
    } else if (fault_space_left != UINT64_MAX) {
        if (n > fault_space_left) {
            inject = ENOSPC;
            todo = 0;
        } else {
            fault_space_left -= n;
        }
    }
    struct fault_file *ff = f->memory ? NULL : fault_get(f->path, f->fd);
    size_t done = 0;
    while (done < todo) {
        ssize_t w =
            pwrite(f->fd, (const char *)buf + done, todo - done, (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            pthread_mutex_unlock(&fault_mu);
            return io_error(err, e, "write", f->path);
        }
        done += (size_t)w;
    }
    if (ff != NULL && done > 0) {
        if (off + done > ff->written_end) {
            ff->written_end = off + done;
        }
        if (off < ff->synced) {
            uint64_t hi = off + done < ff->synced ? off + done : ff->synced;
            if (ff->dirty_hi == 0 || off < ff->dirty_lo) {
                ff->dirty_lo = off;
            }
            if (hi > ff->dirty_hi) {
                ff->dirty_hi = hi;
            }
        }
    }
    fault_stats.bytes_written += done;
    if (inject) {
        fault_stats.injected++;
    }
    pthread_mutex_unlock(&fault_mu);
    if (inject) {
        return lsm_err_set(err, errno_status(inject), "write %s at %llu: %s (injected)",
                           f->path, (unsigned long long)off, strerror(inject));
    }
    return LSM_OK;
}

/* Counts a sync; returns non-zero when this one must fail. */
static int fault_sync_check(void)
{
    pthread_mutex_lock(&fault_mu);
    fault_stats.syncs++;
    int fail = fault_fail_sync_at != 0 && fault_stats.syncs == fault_fail_sync_at;
    if (fail) {
        fault_fail_sync_at = 0;
        fault_stats.injected++;
    }
    pthread_mutex_unlock(&fault_mu);
    return fail;
}

static void fault_note_synced(const char *path)
{
    pthread_mutex_lock(&fault_mu);
    struct fault_file *ff = fault_find(path);
    if (ff != NULL) {
        if (ff->written_end > ff->synced) {
            ff->synced = ff->written_end;
        }
        ff->dirty_lo = ff->dirty_hi = 0;
    }
    pthread_mutex_unlock(&fault_mu);
}

static bool same_dir(const char *path, const char *dir)
{
    const char *slash = strrchr(path, '/');
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/') {
        dlen--;
    }
    if (slash == NULL) {
        return dlen == 1 && dir[0] == '.';
    }
    return (size_t)(slash - path) == dlen && memcmp(path, dir, dlen) == 0;
}

void env_fault_enable(bool on)
{
    pthread_mutex_lock(&fault_mu);
    while (fault_files != NULL) {
        struct fault_file *ff = fault_files;
        fault_files = ff->next;
        lsm_free(ff->path);
        lsm_free(ff);
    }
    fault_fail_write_at = 0;
    fault_torn_bytes = 0;
    fault_fail_sync_at = 0;
    fault_space_left = UINT64_MAX;
    memset(&fault_stats, 0, sizeof(fault_stats));
    atomic_store(&fault_on, on ? 1 : 0);
    pthread_mutex_unlock(&fault_mu);
}

void env_fault_fail_write(uint64_t nth, size_t torn_bytes)
{
    pthread_mutex_lock(&fault_mu);
    fault_fail_write_at = nth ? fault_stats.writes + nth : 0;
    fault_torn_bytes = torn_bytes;
    pthread_mutex_unlock(&fault_mu);
}

void env_fault_fail_sync(uint64_t nth)
{
    pthread_mutex_lock(&fault_mu);
    fault_fail_sync_at = nth ? fault_stats.syncs + nth : 0;
    pthread_mutex_unlock(&fault_mu);
}

void env_fault_space_limit(uint64_t bytes)
{
    pthread_mutex_lock(&fault_mu);
    fault_space_left = bytes;
    pthread_mutex_unlock(&fault_mu);
}

void env_fault_stats(struct env_fault_stats *out)
{
    pthread_mutex_lock(&fault_mu);
    *out = fault_stats;
    pthread_mutex_unlock(&fault_mu);
}

int env_fault_drop_unsynced(void)
{
    static const char zeros[4096];
    int changed = 0;
    pthread_mutex_lock(&fault_mu);
    for (struct fault_file *ff = fault_files; ff != NULL; ff = ff->next) {
        if (ff->created) {
            if (unlink(ff->path) == 0) {
                changed++;
            }
            ff->synced = ff->written_end = 0;
            ff->dirty_lo = ff->dirty_hi = 0;
            continue;
        }
        int fd = open(ff->path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        struct stat st;
        bool touched = false;
        for (uint64_t o = ff->dirty_lo; o < ff->dirty_hi;) {
            size_t n =
                ff->dirty_hi - o < sizeof(zeros) ? ff->dirty_hi - o : sizeof(zeros);
            if (pwrite(fd, zeros, n, (off_t)o) < 0) {
                break;
            }
            o += n;
            touched = true;
        }
        if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > ff->synced) {
            touched |= ftruncate(fd, (off_t)ff->synced) == 0;
        }
        close(fd);
        ff->written_end = ff->synced;
        ff->dirty_lo = ff->dirty_hi = 0;
        changed += touched;
    }
    pthread_mutex_unlock(&fault_mu);
    return changed;
}

/* ------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------ */

static struct env_file *file_new(int fd, const char *path, uint64_t size)
{
    struct env_file *f = lsm_malloc(sizeof(*f));
    f->fd = fd;
    f->path = lsm_strdup(path);
    f->size = size;
    f->memory = false;
    return f;
}

/* Opens path with flags and wraps it with its current size. */
static int open_sized(const char *path, int flags, struct env_file **out,
                      struct lsm_err *err)
{
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0) {
        return io_error(err, errno, "open", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return io_error(err, e, "stat", path);
    }
    *out = file_new(fd, path, (uint64_t)st.st_size);
    return LSM_OK;
}

int env_open_read(const char *path, struct env_file **out, struct lsm_err *err)
{
    return open_sized(path, O_RDONLY, out, err);
}

int env_create(const char *path, struct env_file **out, struct lsm_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return io_error(err, errno, "create", path);
    }
    if (atomic_load_explicit(&fault_on, memory_order_relaxed)) {
        fault_note_created(path);
    }
    *out = file_new(fd, path, 0);
    return LSM_OK;
}

int env_open_rw(const char *path, struct env_file **out, struct lsm_err *err)
{
    bool existed = access(path, F_OK) == 0;
    int rc = open_sized(path, O_RDWR | O_CREAT, out, err);
    if (rc == LSM_OK && !existed &&
        atomic_load_explicit(&fault_on, memory_order_relaxed)) {
        fault_note_created(path);
    }
    return rc;
}

int env_create_memory(const char *name, struct env_file **out, struct lsm_err *err)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) {
        return io_error(err, errno, "memfd_create", name);
    }
    struct env_file *f = file_new(fd, name, 0);
    f->memory = true;
    *out = f;
    return LSM_OK;
}

void env_close(struct env_file **fp)
{
    struct env_file *f = *fp;
    if (f == NULL) {
        return;
    }
    close(f->fd);
    lsm_free(f->path);
    lsm_free(f);
    *fp = NULL;
}

int env_pwrite(struct env_file *f, const void *buf, size_t n, uint64_t off,
               struct lsm_err *err)
{
    if (__builtin_expect(atomic_load_explicit(&fault_on, memory_order_relaxed), 0)) {
        int rc = fault_pwrite(f, buf, n, off, err);
        if (rc == LSM_OK && off + n > f->size) {
            f->size = off + n;
        }
        return rc;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w =
            pwrite(f->fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            return lsm_err_set(err, errno_status(e), "write %s at %llu: %s", f->path,
                               (unsigned long long)(off + done), strerror(e));
        }
        done += (size_t)w;
    }
    if (off + n > f->size) {
        f->size = off + n;
    }
    return LSM_OK;
}

int env_append(struct env_file *f, const void *buf, size_t n, struct lsm_err *err)
{
    return env_pwrite(f, buf, n, f->size, err);
}

static atomic_uint sync_delay_ms; /* env_debug_sync_delay */

void env_debug_sync_delay(uint32_t ms)
{
    atomic_store_explicit(&sync_delay_ms, ms, memory_order_relaxed);
}

static int do_sync(struct env_file *f, bool data_only, struct lsm_err *err)
{
    unsigned delay = atomic_load_explicit(&sync_delay_ms, memory_order_relaxed);
    if (delay && !f->memory) {
        struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
    bool faults = atomic_load_explicit(&fault_on, memory_order_relaxed);
    if (faults && fault_sync_check()) {
        return lsm_err_set(err, LSM_IOERR, "sync %s: %s (injected)", f->path,
                           strerror(EIO));
    }
    int rc = data_only ? fdatasync(f->fd) : fsync(f->fd);
    if (rc != 0) {
        int e = errno;
        return lsm_err_set(err, errno_status(e), "sync %s: %s", f->path, strerror(e));
    }
    if (faults && !f->memory) {
        fault_note_synced(f->path);
    }
    return LSM_OK;
}

int env_sync(struct env_file *f, struct lsm_err *err)
{
    return do_sync(f, false, err);
}

int env_datasync(struct env_file *f, struct lsm_err *err)
{
    return do_sync(f, true, err);
}

void env_start_writeback(struct env_file *f, uint64_t off, uint64_t len)
{
    if (f->memory || len == 0) {
        return;
    }
#ifdef SYNC_FILE_RANGE_WRITE
    (void)sync_file_range(f->fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE);
#else
    (void)off;
#endif
}

int env_preallocate(struct env_file *f, uint64_t off, uint64_t len, struct lsm_err *err)
{
    int rc = fallocate(f->fd, 0, (off_t)off, (off_t)len);
    if (rc != 0) {
        int e = errno;
        if (e == EOPNOTSUPP || e == ENOSYS) {
            return LSM_OK; /* a hint: file systems without it just grow on write */
        }
        return lsm_err_set(err, errno_status(e), "fallocate %s: %s", f->path,
                           strerror(e));
    }
    return LSM_OK;
}

int env_truncate(struct env_file *f, uint64_t len, struct lsm_err *err)
{
    if (ftruncate(f->fd, (off_t)len) != 0) {
        int e = errno;
        return lsm_err_set(err, errno_status(e), "truncate %s: %s", f->path, strerror(e));
    }
    f->size = len;
    if (atomic_load_explicit(&fault_on, memory_order_relaxed) && !f->memory) {
        pthread_mutex_lock(&fault_mu);
        struct fault_file *ff = fault_find(f->path);
        if (ff != NULL) { /* modelled as durable at once */
            if (ff->synced > len) {
                ff->synced = len;
            }
            if (ff->written_end > len) {
                ff->written_end = len;
            }
            if (ff->dirty_hi > len) {
                ff->dirty_hi = len > ff->dirty_lo ? len : 0;
                ff->dirty_lo = ff->dirty_hi ? ff->dirty_lo : 0;
            }
        }
        pthread_mutex_unlock(&fault_mu);
    }
    return LSM_OK;
}

int env_pread(struct env_file *f, void *buf, size_t n, uint64_t off, size_t *got,
              struct lsm_err *err)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            return lsm_err_set(err, errno_status(e), "read %s at %llu: %s", f->path,
                               (unsigned long long)(off + done), strerror(e));
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return LSM_OK;
}

int env_file_size(struct env_file *f, uint64_t *size, struct lsm_err *err)
{
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        int e = errno;
        return lsm_err_set(err, errno_status(e), "stat %s: %s", f->path, strerror(e));
    }
    *size = (uint64_t)st.st_size;
    return LSM_OK;
}

int env_read_file(const char *path, char **buf, size_t *len, struct lsm_err *err)
{
    struct env_file *f;
    int rc = env_open_read(path, &f, err);
    if (rc != LSM_OK) {
        return rc;
    }
    char *p = lsm_malloc(f->size + 1);
    size_t got = 0;
    rc = env_pread(f, p, f->size, 0, &got, err);
    env_close(&f);
    if (rc != LSM_OK) {
        lsm_free(p);
        return rc;
    }
    p[got] = '\0';
    *buf = p;
    *len = got;
    return LSM_OK;
}

/* ------------------------------------------------------------------------------
 * Names and directories
 * ------------------------------------------------------------------------------ */

int env_rename(const char *from, const char *to, struct lsm_err *err)
{
    if (rename(from, to) != 0) {
        int e = errno;
        return lsm_err_set(err, errno_status(e), "rename %s to %s: %s", from, to,
                           strerror(e));
    }
    if (atomic_load_explicit(&fault_on, memory_order_relaxed)) {
        pthread_mutex_lock(&fault_mu);
        fault_forget(to);
        struct fault_file *ff = fault_find(from);
        if (ff != NULL) {
            lsm_free(ff->path);
            ff->path = lsm_strdup(to);
        }
        pthread_mutex_unlock(&fault_mu);
    }
    return LSM_OK;
}

int env_unlink(const char *path, struct lsm_err *err)
{
    if (unlink(path) != 0) {
        return io_error(err, errno, "unlink", path);
    }
    if (atomic_load_explicit(&fault_on, memory_order_relaxed)) {
        pthread_mutex_lock(&fault_mu);
        fault_forget(path);
        pthread_mutex_unlock(&fault_mu);
    }
    return LSM_OK;
}

int env_mkdir(const char *path, struct lsm_err *err)
{
    if (mkdir(path, 0755) != 0) {
        int e = errno;
        struct stat st;
        if (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            return LSM_OK;
        }
        return io_error(err, e, "mkdir", path);
    }
    return LSM_OK;
}

int env_rmdir(const char *path, struct lsm_err *err)
{
    if (rmdir(path) != 0) {
        return io_error(err, errno, "rmdir", path);
    }
    return LSM_OK;
}

int env_sync_dir(const char *dir, struct lsm_err *err)
{
    bool faults = atomic_load_explicit(&fault_on, memory_order_relaxed);
    if (faults && fault_sync_check()) {
        return lsm_err_set(err, LSM_IOERR, "sync dir %s: %s (injected)", dir,
                           strerror(EIO));
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return io_error(err, errno, "open dir", dir);
    }
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0) {
        return io_error(err, e, "sync dir", dir);
    }
    if (faults) {
        pthread_mutex_lock(&fault_mu);
        for (struct fault_file *ff = fault_files; ff != NULL; ff = ff->next) {
            if (ff->created && same_dir(ff->path, dir)) {
                ff->created = false;
            }
        }
        pthread_mutex_unlock(&fault_mu);
    }
    return LSM_OK;
}

bool env_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

int env_list_dir(const char *dir, char ***names, size_t *count, struct lsm_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return io_error(err, errno, "opendir", dir);
    }
    size_t n = 0, cap = 16;
    char **v = lsm_malloc(cap * sizeof(*v));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        if (n == cap) {
            cap *= 2;
            v = lsm_realloc(v, cap * sizeof(*v));
        }
        v[n++] = lsm_strdup(de->d_name);
    }
    closedir(d);
    *names = v;
    *count = n;
    return LSM_OK;
}

void env_free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        lsm_free(names[i]);
    }
    lsm_free(names);
}

/* ------------------------------------------------------------------------------
 * Lock file. Open-file-description locks conflict between two opens in the same
 * process too, so a second open of one DB directory in one process is refused.
 * ------------------------------------------------------------------------------ */

struct env_lock {
    int fd;
};

int env_lock_file(const char *path, struct env_lock **lock, struct lsm_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return io_error(err, errno, "open lock", path);
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EAGAIN) {
            return lsm_err_set(err, LSM_BUSY, "lock %s: held by another user", path);
        }
        return io_error(err, e, "lock", path);
    }
    *lock = lsm_malloc(sizeof(**lock));
    (*lock)->fd = fd;
    return LSM_OK;
}

void env_unlock(struct env_lock **lock)
{
    if (*lock == NULL) {
        return;
    }
    close((*lock)->fd); /* closing the description drops its lock */
    lsm_free(*lock);
    *lock = NULL;
}
