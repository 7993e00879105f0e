/* server/store/node.c: the node's identity. A node id is 128 random bits in hex, made
 * once and kept in the file `node-id` of the working directory (`dir`), so it
 * survives restarts: the cluster will place the node's tokens from it, and every
 * version the node writes carries its 32-bit tag (server.node_tag, never 0).
 *
 * Mode persistent: the file is read, or created (written to a temporary file,
 * fsynced, renamed: a crash leaves the old state or the new, never half a file).
 * Mode cache writes nothing to disk: it reads the file when one exists (a node
 * switched from persistent keeps its id), else it takes a fresh random id for this
 * run only. A cache node holds no data across restarts, so a new id per run loses
 * nothing but its place on the ring (PERSIST.md "Node id").
 *
 * What it leaves to others: where `dir` is (config.c chdirs to it).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "server/store/store.h"

#define NODE_ID_FILE "node-id"
#define NODE_ID_HEX 32
#define NODE_ALIVE_FILE "node-alive"

static int random_bytes(unsigned char *b, size_t n) {
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, b, n) : -1;
    if (fd >= 0) {
        close(fd);
    }
    return got == (ssize_t)n ? 0 : -1;
}

static int is_hex_id(const char *s, size_t n) {
    if (n != NODE_ID_HEX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

uint32_t node_tag_of(const char *id) {
    uint64_t h = XXH3_64bits(id, strlen(id));
    uint32_t t = (uint32_t)(h ^ (h >> 32));
    return t ? t : 1;
}

/* Reads NODE_ID_FILE: 1 read, 0 absent, -1 unreadable or malformed (err). */
static int read_id(char *out, char *err, size_t errlen) {
    FILE *f = fopen(NODE_ID_FILE, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "cannot read %s: %s", NODE_ID_FILE, strerror(errno));
        return -1;
    }
    char buf[64];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) {
        n--;
    }
    if (!is_hex_id(buf, n)) {
        snprintf(err, errlen, "%s is malformed (want %d lowercase hex digits)", NODE_ID_FILE,
                 NODE_ID_HEX);
        return -1;
    }
    memcpy(out, buf, NODE_ID_HEX);
    out[NODE_ID_HEX] = '\0';
    return 1;
}

/* Writes text[0..len) to name atomically: a temporary file, fsynced, renamed,
 * the directory fsynced. 0, or -1 with err. */
static int write_file_atomic(const char *name, const char *text, size_t len, char *err,
                             size_t errlen) {
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        return -1;
    }
    int ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok || rename(tmp, name) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", name, strerror(ok ? errno : saved));
        unlink(tmp);
        return -1;
    }
    int dfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int write_id(const char *id, char *err, size_t errlen) {
    char line[NODE_ID_HEX + 1];
    memcpy(line, id, NODE_ID_HEX);
    line[NODE_ID_HEX] = '\n';
    return write_file_atomic(NODE_ID_FILE, line, sizeof(line), err, errlen);
}

int node_init(char *err, size_t errlen) {
    char id[NODE_ID_HEX + 1];
    int rc = read_id(id, err, errlen);
    if (rc < 0) {
        return -1;
    }
    if (rc == 0) {
        static const char hex[] = "0123456789abcdef";
        unsigned char raw[NODE_ID_HEX / 2];
        if (random_bytes(raw, sizeof(raw)) != 0) {
            uint64_t a = XXH3_64bits_withSeed(&rc, sizeof(rc),
                                              (uint64_t)time(NULL) ^ (uint64_t)getpid());
            uint64_t b = XXH3_64bits_withSeed(&a, sizeof(a), (uint64_t)clock());
            memcpy(raw, &a, 8);
            memcpy(raw + 8, &b, 8);
        }
        for (size_t i = 0; i < sizeof(raw); i++) {
            id[2 * i] = hex[raw[i] >> 4];
            id[2 * i + 1] = hex[raw[i] & 15];
        }
        id[NODE_ID_HEX] = '\0';
        if (server.mode == MODE_PERSISTENT && write_id(id, err, errlen) != 0) {
            return -1;
        }
    }
    memcpy(server.node_id, id, sizeof(id));
    server.node_tag = node_tag_of(id);
    return 0;
}

/* ---- tokens ---- */

#define NODE_TOKENS_FILE "node-tokens"
#define NODE_TOKENS_FILE_MAX (NODE_ID_HEX + 2 + NODE_TOKENS_MAX * 21 + 16)

int node_tokens_load(uint64_t **out, size_t *n, char *err, size_t errlen) {
    FILE *f = fopen(NODE_TOKENS_FILE, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "cannot read %s: %s", NODE_TOKENS_FILE, strerror(errno));
        return -1;
    }
    char *buf = kv_malloc(NODE_TOKENS_FILE_MAX + 1);
    size_t len = fread(buf, 1, NODE_TOKENS_FILE_MAX + 1, f);
    fclose(f);
    if (len > NODE_TOKENS_FILE_MAX) {
        kv_free(buf);
        snprintf(err, errlen, "%s is too long", NODE_TOKENS_FILE);
        return -1;
    }
    buf[len] = '\0';
    char *line = buf, *nl = strchr(line, '\n');
    if (nl == NULL) {
        kv_free(buf);
        snprintf(err, errlen, "%s is malformed (no node id line)", NODE_TOKENS_FILE);
        return -1;
    }
    *nl = '\0';
    if (strcmp(line, server.node_id) != 0) {
        kv_free(buf);
        return 0; /* another node's: draw new ones */
    }
    uint64_t *t = kv_malloc(NODE_TOKENS_MAX * sizeof(*t));
    size_t k = 0;
    char *save = NULL;
    for (char *tok = strtok_r(nl + 1, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save)) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(tok, &end, 10);
        if (tok[0] < '0' || tok[0] > '9' || errno || *end || k == NODE_TOKENS_MAX ||
            (k > 0 && v <= t[k - 1])) {
            kv_free(t);
            kv_free(buf);
            snprintf(err, errlen, "%s is malformed at token %zu (want ascending decimal "
                                  "tokens, at most %d)", NODE_TOKENS_FILE, k + 1,
                     NODE_TOKENS_MAX);
            return -1;
        }
        t[k++] = (uint64_t)v;
    }
    kv_free(buf);
    if (k == 0) {
        kv_free(t);
        snprintf(err, errlen, "%s holds no tokens", NODE_TOKENS_FILE);
        return -1;
    }
    *out = t;
    *n = k;
    return 1;
}

int node_tokens_save(const uint64_t *tokens, size_t n, char *err, size_t errlen) {
    if (server.mode != MODE_PERSISTENT) {
        return 0;
    }
    if (n == 0 || n > NODE_TOKENS_MAX) {
        snprintf(err, errlen, "bad token count %zu", n);
        return -1;
    }
    size_t cap = NODE_ID_HEX + 2 + n * 21, len = 0;
    char *text = kv_malloc(cap);
    len += (size_t)snprintf(text, cap, "%s\n", server.node_id);
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(text + len, cap - len, "%llu\n", (unsigned long long)tokens[i]);
    }
    int rc = write_file_atomic(NODE_TOKENS_FILE, text, len, err, errlen);
    kv_free(text);
    return rc;
}

/* ---- join (resuming an interrupted join) ---- */

#define NODE_JOIN_FILE "node-join"
/* its largest well-formed size: RING_MAX_TOKENS tokens and JOIN_RESUME_MAX_RANGES
 * ranges of two u64 each, with room for the header lines */
#define NODE_JOIN_FILE_MAX ((size_t)4096 * 21 + (size_t)65536 * 42 + 256)

int node_join_load(char **out, size_t *len, char *err, size_t errlen) {
    if (server.mode != MODE_PERSISTENT) {
        return 0;
    }
    FILE *f = fopen(NODE_JOIN_FILE, "rb");
    if (f == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(err, errlen, "cannot read %s: %s", NODE_JOIN_FILE, strerror(errno));
        return -1;
    }
    char *buf = kv_malloc(NODE_JOIN_FILE_MAX + 1);
    size_t n = fread(buf, 1, NODE_JOIN_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > NODE_JOIN_FILE_MAX) {
        kv_free(buf);
        snprintf(err, errlen, "%s is %s", NODE_JOIN_FILE, bad ? "unreadable" : "too long");
        return -1;
    }
    *out = buf;
    *len = n;
    return 1;
}

int node_join_save(const char *text, size_t len, char *err, size_t errlen) {
    if (server.mode != MODE_PERSISTENT) {
        return 0;
    }
    if (text == NULL) {
        if (unlink(NODE_JOIN_FILE) != 0 && errno != ENOENT) {
            snprintf(err, errlen, "cannot remove %s: %s", NODE_JOIN_FILE, strerror(errno));
            return -1;
        }
        return 0;
    }
    return write_file_atomic(NODE_JOIN_FILE, text, len, err, errlen);
}

/* ---- left (KVD LEAVE) ---- */

#define NODE_LEFT_FILE "node-left"

int node_left_mark(char *err, size_t errlen) {
    if (server.mode != MODE_PERSISTENT) {
        return 0;
    }
    static const char text[] = "left the cluster (KVD LEAVE)\n";
    return write_file_atomic(NODE_LEFT_FILE, text, sizeof(text) - 1, err, errlen);
}

int node_has_left(void) {
    return access(NODE_LEFT_FILE, F_OK) == 0;
}

/* ---- generation ---- */

#define NODE_GEN_FILE "node-generation"

int node_generation_next(uint64_t *gen, char *err, size_t errlen) {
    uint64_t kept = 0;
    FILE *f = fopen(NODE_GEN_FILE, "r");
    if (f == NULL && errno != ENOENT) {
        snprintf(err, errlen, "cannot read %s: %s", NODE_GEN_FILE, strerror(errno));
        return -1;
    }
    if (f) {
        char buf[32];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *end;
        errno = 0;
        unsigned long long v = strtoull(buf, &end, 10);
        if (buf[0] < '0' || buf[0] > '9' || errno || (*end && *end != '\n') ||
            v >= UINT64_MAX / 2) {
            snprintf(err, errlen, "%s is malformed (want one decimal number)", NODE_GEN_FILE);
            return -1;
        }
        kept = v;
    }
    uint64_t now_s = (uint64_t)time(NULL);
    *gen = kept + 1 > now_s ? kept + 1 : now_s;
    if (server.mode != MODE_PERSISTENT) {
        return 0;
    }
    char text[32];
    int len = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)*gen);
    return write_file_atomic(NODE_GEN_FILE, text, (size_t)len, err, errlen);
}

/* ---- dir/node-alive: when this node last served ---- */

int node_alive_load(uint64_t *ms) {
    *ms = 0;
    FILE *f = fopen(NODE_ALIVE_FILE, "r");
    if (f == NULL) {
        return 0;
    }
    char buf[32];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (buf[0] < '0' || buf[0] > '9' || errno || (*end != '\n' && *end != '\0')) {
        return 0; /* torn or foreign: unknown, as if absent */
    }
    *ms = (uint64_t)v;
    return 1;
}

int node_alive_save(uint64_t ms, char *err, size_t errlen) {
    if (server.mode != MODE_PERSISTENT) {
        return 0;
    }
    char line[32];
    int len = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)ms);
    return write_file_atomic(NODE_ALIVE_FILE, line, (size_t)len, err, errlen);
}
