/* cluster/hintlog.c: the hint log (durable hints in persistent mode). See hintlog.h
 * and cluster/README.md "The hint log". */
#include "cluster/hintlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/mem.h"
#include "engine/crc32c.h"

#define HL_MAGIC "KVHL"
#define HL_VERSION 2      /* on disk: 2 = records may be field records (MSG_REC_FIELDS) */
#define HL_VERSION_MIN 1  /* 1: plain records only; read as before */
#define HL_BODY_MIN (8 + 2 + 4 + 4 + MSG_REC_HDR) /* empty key, no value */
#define HL_FILE_MAX ((uint64_t)1 << 36)           /* a bigger file is not ours */
#define HL_REWRITE_MIN ((size_t)1 << 20)

struct hl_file {
    uint32_t target;
    int fd;              /* append descriptor, -1 until needed */
    struct msg_buf buf;  /* records not yet written */
    uint64_t live, dead; /* bytes of pending / removed hints' records in the file */
    int rewrite;         /* rewrite from memory at the next flush */
    int unsynced;        /* written since the last sync */
};

struct hintlog {
    char *dir;
    struct hl_file *files;
    size_t nfiles;
    int broken;           /* an I/O error: the log is off */
    int dirty;            /* buffered records or files to rewrite */
    int64_t wall_offset;
    size_t rewrite_min;
    hintlog_log_fn *log;
    void *logctx;
    void (*on_dirty)(void *ctx);
    void *dirty_ctx;
    struct hintlog_stats st;
};

static void set_dirty(struct hintlog *l) {
    if (!l->dirty) {
        l->dirty = 1;
        if (l->on_dirty) {
            l->on_dirty(l->dirty_ctx);
        }
    }
}

static void hl_log(struct hintlog *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void hl_log(struct hintlog *l, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (l->log) {
        l->log(l->logctx, msg);
    } else {
        fprintf(stderr, "hint log: %s\n", msg);
    }
}

/* the first I/O error turns the log off (hints stay in memory) */
static void hl_fail(struct hintlog *l, const char *what, const char *path) {
    l->st.errors++;
    if (!l->broken) {
        hl_log(l, "hint log disabled: %s %s: %s (hints stay in memory until the restart)",
               what, path, strerror(errno));
    }
    l->broken = 1;
}

static void path_of(const struct hintlog *l, uint32_t target, const char *suffix, char *out,
                    size_t n) {
    snprintf(out, n, "%s/%08" PRIx32 ".log%s", l->dir, target, suffix);
}

static void put_be(struct msg_buf *b, uint64_t v, int bytes) {
    if (b->cap - b->len < (size_t)bytes) {
        b->cap = (b->cap + (size_t)bytes) * 2;
        b->p = cl_realloc(b->p, b->cap);
    }
    for (int i = 0; i < bytes; i++) {
        b->p[b->len++] = (char)(unsigned char)(v >> (8 * (bytes - 1 - i)));
    }
}


size_t hintlog_record_size(const struct hint *x) {
    return HINTLOG_REC_FIXED + x->klen + MSG_REC_HDR + x->rec.vlen;
}

static void header_put(struct msg_buf *b, uint32_t target) {
    msg_buf_put(b, HL_MAGIC, 4);
    put_be(b, HL_VERSION, 1);
    put_be(b, target, 4);
}

static void record_put(struct msg_buf *b, const struct hint *x, int64_t wall_offset) {
    int64_t wall = (int64_t)x->created_ms + wall_offset;
    size_t body = hintlog_record_size(x) - 8;
    unsigned char hdr[MSG_REC_HDR];
    msg_record_header(&x->rec, hdr);
    put_be(b, body, 4);
    size_t crc_at = b->len;
    put_be(b, 0, 4);
    size_t body_at = b->len;
    put_be(b, wall > 0 ? (uint64_t)wall : 0, 8);
    put_be(b, x->db, 2);
    put_be(b, x->klen, 4);
    msg_buf_put(b, x->key, x->klen);
    put_be(b, MSG_REC_HDR + x->rec.vlen, 4);
    msg_buf_put(b, hdr, sizeof hdr);
    msg_buf_put(b, x->rec.val, x->rec.vlen);
    uint32_t crc = crc32c_mask(crc32c_value(b->p + body_at, b->len - body_at));
    for (int i = 0; i < 4; i++) {
        b->p[crc_at + (size_t)i] = (char)(unsigned char)(crc >> (8 * (3 - i)));
    }
}

static struct hl_file *file_get(struct hintlog *l, uint32_t target) {
    for (size_t i = 0; i < l->nfiles; i++) {
        if (l->files[i].target == target) {
            return &l->files[i];
        }
    }
    l->files = cl_realloc(l->files, (l->nfiles + 1) * sizeof *l->files);
    struct hl_file *f = &l->files[l->nfiles++];
    memset(f, 0, sizeof *f);
    f->target = target;
    f->fd = -1;
    return f;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* the append descriptor of f, the file created with its header when missing */
static int file_open(struct hintlog *l, struct hl_file *f) {
    if (f->fd >= 0) {
        return 0;
    }
    char path[4096];
    path_of(l, f->target, "", path, sizeof path);
    f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    struct stat sb;
    if (f->fd < 0 || fstat(f->fd, &sb) != 0) {
        hl_fail(l, "open", path);
        return -1;
    }
    if (sb.st_size < HINTLOG_HEADER) {
        struct msg_buf b = {0};
        header_put(&b, f->target);
        int rc = ftruncate(f->fd, 0) == 0 ? write_all(f->fd, b.p, b.len) : -1;
        msg_buf_free(&b);
        if (rc != 0) {
            hl_fail(l, "write", path);
            return -1;
        }
    }
    return 0;
}

static int sync_dir(struct hintlog *l) {
    int fd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* writes f's file anew from the pending hints of its target in h: a temporary
 * file, fdatasync, rename over the old one */
static int file_rewrite(struct hintlog *l, struct hl_file *f, const struct hints *h) {
    char path[4096], tmp[4096];
    path_of(l, f->target, "", path, sizeof path);
    path_of(l, f->target, ".tmp", tmp, sizeof tmp);
    struct msg_buf b = {0};
    header_put(&b, f->target);
    uint64_t live = 0;
    const struct hint *x;
    for (size_t i = 0; (x = hints_peek(h, f->target, i)) != NULL; i++) {
        record_put(&b, x, l->wall_offset);
        live += hintlog_record_size(x);
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = fd < 0 ? -1 : write_all(fd, b.p, b.len);
    if (rc == 0) {
        rc = fdatasync(fd);
    }
    if (fd >= 0) {
        close(fd);
    }
    msg_buf_free(&b);
    if (rc != 0 || rename(tmp, path) != 0) {
        hl_fail(l, "rewrite", tmp);
        unlink(tmp);
        return -1;
    }
    sync_dir(l);
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
    f->buf.len = 0;
    f->live = live;
    f->dead = 0;
    f->rewrite = 0;
    f->unsynced = 0;
    l->st.rewrites++;
    return file_open(l, f);
}

/* ---- the observer: the hint store's changes ---- */

static void obs_added(void *ctx, const struct hint *x) {
    struct hintlog *l = ctx;
    if (l->broken) {
        return;
    }
    struct hl_file *f = file_get(l, x->target);
    record_put(&f->buf, x, l->wall_offset);
    f->live += hintlog_record_size(x);
    l->st.appended++;
    set_dirty(l);
}

static void obs_removed(void *ctx, const struct hint *x, size_t pending) {
    struct hintlog *l = ctx;
    if (l->broken) {
        return;
    }
    struct hl_file *f = file_get(l, x->target);
    if (pending == 0) {
        /* drained: every record in the file and the buffer is delivered or
         * dropped; the file keeps its header only */
        f->buf.len = 0;
        f->live = f->dead = 0;
        f->rewrite = 0;
        if (file_open(l, f) == 0) {
            if (ftruncate(f->fd, HINTLOG_HEADER) != 0) {
                char path[4096];
                path_of(l, f->target, "", path, sizeof path);
                hl_fail(l, "truncate", path);
                return;
            }
            f->unsynced = 1;
            l->st.truncations++;
        }
        return;
    }
    uint64_t size = hintlog_record_size(x);
    f->live = f->live > size ? f->live - size : 0;
    f->dead += size;
    if (f->dead >= l->rewrite_min && f->dead > f->live) {
        f->rewrite = 1;
        set_dirty(l);
    }
}

/* ---- public ---- */

struct hintlog *hintlog_open(const char *dir, hintlog_log_fn *log, void *logctx, char *err,
                             size_t errlen) {
    if (dir == NULL || dir[0] == 0 || strlen(dir) > 3000) {
        snprintf(err, errlen, "hint log: bad directory");
        return NULL;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "hint log: mkdir %s: %s", dir, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "hint log: %s is not a directory", dir);
        return NULL;
    }
    struct hintlog *l = cl_calloc(1, sizeof *l);
    l->dir = cl_memdup(dir, strlen(dir) + 1);
    l->log = log;
    l->logctx = logctx;
    l->rewrite_min = HL_REWRITE_MIN;
    return l;
}

void hintlog_close(struct hintlog **lp) {
    struct hintlog *l = *lp;
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->nfiles; i++) {
        struct hl_file *f = &l->files[i];
        if (!l->broken && f->buf.len && file_open(l, f) == 0 &&
            write_all(f->fd, f->buf.p, f->buf.len) == 0) {
            f->unsynced = 1;
        }
    }
    hintlog_sync(l);
    for (size_t i = 0; i < l->nfiles; i++) {
        if (l->files[i].fd >= 0) {
            close(l->files[i].fd);
        }
        msg_buf_free(&l->files[i].buf);
    }
    free(l->files);
    free(l->dir);
    free(l);
    *lp = NULL;
}

/* "<8 hex>.log" -> its target; -1 otherwise */
static int name_target(const char *name, uint32_t *target) {
    if (strlen(name) != 12 || strcmp(name + 8, ".log") != 0) {
        return -1;
    }
    uint32_t t = 0;
    for (int i = 0; i < 8; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) {
            return -1;
        }
        t = t << 4 | (uint32_t)d;
    }
    *target = t;
    return 0;
}

/* reads a whole file; NULL (logged) when it cannot */
static unsigned char *read_file(struct hintlog *l, const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || sb.st_size < 0 ||
        (uint64_t)sb.st_size > HL_FILE_MAX) {
        hl_log(l, "hint log %s: cannot read it (%s): skipped", path,
               fd < 0 ? strerror(errno) : "too large");
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    unsigned char *p = cl_malloc(n ? n : 1);
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break; /* shrank meanwhile: what was read */
        }
        got += (size_t)r;
    }
    close(fd);
    *len = got;
    return p;
}

struct load_ctx {
    struct hintlog *l;
    struct hints *h;
    uint64_t now;
    int64_t wall_offset;
    size_t added;
};

/* one record's body (checksum verified): -1 when it does not parse */
static int load_body(struct load_ctx *c, uint32_t target, const unsigned char *p, size_t n) {
    if (n < HL_BODY_MIN) {
        return -1;
    }
    uint64_t created = msg_get_be(p, 8);
    uint64_t db = msg_get_be(p + 8, 2);
    uint64_t klen = msg_get_be(p + 10, 4);
    if (klen > n - 18) {
        return -1;
    }
    const char *key = (const char *)p + 14;
    uint64_t rlen = msg_get_be(p + 14 + klen, 4);
    if (rlen != n - 18 - klen) {
        return -1;
    }
    struct msg_record rec;
    if (msg_record_parse((const char *)p + 18 + klen, (size_t)rlen, &rec) != MSG_OK) {
        return -1;
    }
    int64_t mono = (int64_t)created - c->wall_offset;
    uint64_t at = mono < 0 ? 0 : (uint64_t)mono > c->now ? c->now : (uint64_t)mono;
    if (hints_add_created(c->h, target, at, c->now, (unsigned)db, key, (size_t)klen, &rec) ==
        HINTS_OK) {
        c->added++;
    }
    return 0;
}

static void load_file(struct load_ctx *c, const char *path, uint32_t target) {
    struct hintlog *l = c->l;
    size_t len = 0;
    unsigned char *p = read_file(l, path, &len);
    if (p == NULL) {
        l->st.skipped++;
        return;
    }
    if (len < HINTLOG_HEADER || memcmp(p, HL_MAGIC, 4) != 0 || p[4] < HL_VERSION_MIN ||
        p[4] > HL_VERSION ||
        msg_get_be(p + 5, 4) != target) {
        hl_log(l, "hint log %s: bad header: the file is skipped", path);
        l->st.skipped++;
        free(p);
        return;
    }
    size_t off = HINTLOG_HEADER, bad = 0, first_bad = 0;
    const char *why = NULL;
    while (off < len) {
        size_t left = len - off;
        uint64_t blen = left >= 8 ? msg_get_be(p + off, 4) : 0;
        if (left < 8 || blen > left - 8) {
            hl_log(l, "hint log %s: torn tail at offset %zu (%zu bytes): ignored", path, off,
                   left);
            l->st.skipped++;
            break;
        }
        const unsigned char *body = p + off + 8;
        uint32_t crc = (uint32_t)msg_get_be(p + off + 4, 4);
        const char *fault = NULL;
        if (crc32c_mask(crc32c_value(body, (size_t)blen)) != crc) {
            fault = "bad checksum";
        } else if (load_body(c, target, body, (size_t)blen) != 0) {
            fault = "bad record";
        } else {
            l->st.loaded++;
        }
        if (fault) {
            if (bad++ == 0) {
                first_bad = off;
                why = fault;
            }
            l->st.skipped++;
        }
        off += 8 + (size_t)blen;
    }
    if (bad) {
        hl_log(l, "hint log %s: %zu damaged record(s) skipped (first at offset %zu: %s)", path,
               bad, first_bad, why);
    }
    free(p);
}

size_t hintlog_load(struct hintlog *l, struct hints *h, uint64_t now, int64_t wall_offset) {
    struct load_ctx c = {l, h, now, wall_offset, 0};
    l->wall_offset = wall_offset;
    DIR *d = opendir(l->dir);
    if (d == NULL) {
        hl_fail(l, "opendir", l->dir);
        return 0;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        uint32_t target;
        size_t nl = strlen(e->d_name);
        if (nl > 4 && strcmp(e->d_name + nl - 4, ".tmp") == 0) {
            snprintf(path, sizeof path, "%s/%s", l->dir, e->d_name);
            unlink(path); /* an interrupted rewrite: the .log is still whole */
            continue;
        }
        if (name_target(e->d_name, &target) != 0) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", l->dir, e->d_name);
        load_file(&c, path, target);
        file_get(l, target);
    }
    closedir(d);
    for (size_t i = 0; i < l->nfiles && !l->broken; i++) {
        file_rewrite(l, &l->files[i], h);
    }
    struct hints_observer obs = {l, obs_added, obs_removed};
    hints_observe(h, &obs);
    return c.added;
}

int hintlog_flush(struct hintlog *l, const struct hints *h, int64_t wall_offset) {
    l->wall_offset = wall_offset;
    l->dirty = 0;
    if (l->broken) {
        return -1;
    }
    for (size_t i = 0; i < l->nfiles && !l->broken; i++) {
        struct hl_file *f = &l->files[i];
        if (f->rewrite) {
            file_rewrite(l, f, h);
            continue;
        }
        if (f->buf.len == 0 || file_open(l, f) != 0) {
            continue;
        }
        if (write_all(f->fd, f->buf.p, f->buf.len) != 0) {
            char path[4096];
            path_of(l, f->target, "", path, sizeof path);
            hl_fail(l, "write", path);
            break;
        }
        f->buf.len = 0;
        f->unsynced = 1;
    }
    return l->broken ? -1 : 0;
}

int hintlog_sync(struct hintlog *l) {
    for (size_t i = 0; i < l->nfiles && !l->broken; i++) {
        struct hl_file *f = &l->files[i];
        if (f->unsynced && f->fd >= 0) {
            if (fdatasync(f->fd) != 0) {
                char path[4096];
                path_of(l, f->target, "", path, sizeof path);
                hl_fail(l, "fdatasync", path);
                break;
            }
            f->unsynced = 0;
            l->st.syncs++;
        }
    }
    return l->broken ? -1 : 0;
}

int hintlog_dirty(const struct hintlog *l) {
    return l->dirty && !l->broken;
}

void hintlog_set_wall_offset(struct hintlog *l, int64_t wall_offset) {
    l->wall_offset = wall_offset;
}

void hintlog_on_dirty(struct hintlog *l, void (*fn)(void *ctx), void *ctx) {
    l->on_dirty = fn;
    l->dirty_ctx = ctx;
}

void hintlog_set_rewrite_min(struct hintlog *l, size_t bytes) {
    l->rewrite_min = bytes;
}

const struct hintlog_stats *hintlog_stats(const struct hintlog *l) {
    return &l->st;
}
