/* proto/resp_fuzz.c: libFuzzer target for the request parser and the reply writer.
 *
 * Built and run by tests/run-fuzz.sh (make fuzz); never part of the normal build
 * (no main). For each input it checks:
 *   1. parsing the whole input and parsing it in pieces of pseudo-random sizes
 *      (each piece appended into a freshly allocated buffer, so the parser must not
 *      keep pointers) give the same commands, the same final status and error;
 *   2. on RESP_OK, 0 < consumed <= len and every argv slice lies inside the buffer
 *      (or the parser's scratch, for inline arguments written with quotes);
 *   3. on RESP_ERR_PROTO, p->err starts with "Protocol error: ";
 *   4. the commands parsed, written back as RESP arrays with resp_out (the first
 *      command with a deferred length) and drained through resp_out_iov and
 *      resp_out_consume, parse again to the same commands.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"

struct summary {
    int status;        /* RESP_OK (all consumed), RESP_AGAIN (bytes left), or error */
    int ncmd;
    uint64_t hash;     /* FNV-1a over every argc and argument */
    int nwritten;      /* commands written back to the resp_out */
    uint64_t whash;    /* the same hash over those commands only */
    char err[128];
};

static const struct resp_limits fuzz_limits = {
    .max_bulk_len = 1 << 20,
    .max_multibulk_len = 4096,
    .max_inline_len = 1024,
};

static void die(const char *what) {
    fprintf(stderr, "resp_fuzz: invariant broken: %s\n", what);
    abort();
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 1099511628211ULL;
    }
    return h;
}

static void check_args(const struct resp_parser *p, const char *buf, size_t len,
                       size_t used) {
    if (used == 0 || used > len) {
        die("consumed out of range");
    }
    for (int i = 0; i < p->argc; i++) {
        const char *a = p->argv[i].p;
        size_t n = p->argv[i].len;
        int in_buf = a >= buf && n <= used && a <= buf + used - n;
        int in_scratch = p->scratch != NULL && a >= p->scratch &&
                         n <= p->scratch_cap && a <= p->scratch + p->scratch_cap - n;
        if (!in_buf && !in_scratch) {
            die("argv slice outside the buffer");
        }
    }
}

static uint64_t hash_command(uint64_t h, const struct resp_parser *p) {
    h = fnv(h, &p->argc, sizeof(p->argc));
    for (int i = 0; i < p->argc; i++) {
        h = fnv(h, &p->argv[i].len, sizeof(p->argv[i].len));
        h = fnv(h, p->argv[i].p, p->argv[i].len);
    }
    return h;
}

/* Writes the command as an array of bulks (the first one with a deferred
 * length); empty commands and ones over the multibulk limit (an inline line can
 * have more words) would not parse back the same, so they are left out. */
static void write_command(struct summary *s, const struct resp_parser *p,
                          struct resp_out *out) {
    if (p->argc == 0 || p->argc > fuzz_limits.max_multibulk_len) {
        return;
    }
    resp_defer_t h = s->nwritten == 0 ? resp_defer(out) : NULL;
    if (h == NULL) {
        resp_write_array(out, p->argc);
    }
    for (int i = 0; i < p->argc; i++) {
        resp_write_bulk(out, p->argv[i].p, p->argv[i].len);
    }
    if (h != NULL) {
        resp_defer_set(out, h, RESP_AGG_ARRAY, p->argc);
    }
    s->nwritten++;
    s->whash = hash_command(s->whash, p);
}

/* Parses data in pieces whose sizes come from seed (0: all at once). When out is
 * given, every command is also written to it as a RESP array of bulks. */
static void parse_pieces(const uint8_t *data, size_t size, uint32_t seed,
                         struct summary *s, struct resp_out *out) {
    struct resp_parser p;
    resp_parser_init(&p, &fuzz_limits);
    memset(s, 0, sizeof(*s));
    s->hash = 1469598103934665603ULL;
    s->whash = s->hash;
    s->status = RESP_OK;
    char *q = NULL;
    size_t qlen = 0, at = 0;
    while (at < size && s->status >= 0) {
        size_t piece = size - at;
        if (seed != 0) {
            seed = seed * 1664525u + 1013904223u;
            piece = 1 + (seed >> 8) % (piece < 64 ? piece : 64);
        }
        char *nq = malloc(qlen + piece);
        if (qlen > 0) {
            memcpy(nq, q, qlen);
        }
        memcpy(nq + qlen, data + at, piece);
        free(q);
        q = nq;
        qlen += piece;
        at += piece;
        for (;;) {
            size_t used = 0;
            int rc = resp_parse(&p, q, qlen, &used);
            if (rc == RESP_OK) {
                check_args(&p, q, qlen, used);
                s->hash = hash_command(s->hash, &p);
                s->ncmd++;
                if (out != NULL) {
                    write_command(s, &p, out);
                }
                memmove(q, q + used, qlen - used);
                qlen -= used;
                continue;
            }
            if (rc == RESP_ERR_PROTO) {
                if (strncmp(p.err, "Protocol error: ", 16) != 0) {
                    die("error text");
                }
                s->status = rc;
                snprintf(s->err, sizeof(s->err), "%s", p.err);
            } else if (rc != RESP_AGAIN) {
                die("unknown status");
            }
            break;
        }
    }
    if (s->status == RESP_OK && qlen > 0) {
        s->status = RESP_AGAIN;
    }
    free(q);
    resp_parser_deinit(&p);
}

static int same(const struct summary *a, const struct summary *b) {
    return a->status == b->status && a->ncmd == b->ncmd && a->hash == b->hash &&
           strcmp(a->err, b->err) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct summary whole, pieces, again;
    struct resp_out *out = malloc(sizeof(*out));
    resp_out_init(out, 2);

    parse_pieces(data, size, 0, &whole, out);
    uint32_t seed = 0x9e3779b9u;
    for (size_t i = 0; i < size && i < 8; i++) {
        seed = seed * 31 + data[i];
    }
    parse_pieces(data, size, seed | 1, &pieces, NULL);
    if (!same(&whole, &pieces)) {
        die("whole and piecewise parsing differ");
    }

    /* drain the rebuilt commands in odd-sized steps, then parse them again */
    size_t total = resp_out_pending(out);
    char *wire = malloc(total + 1);
    size_t got = 0;
    struct iovec iov[3];
    int n;
    while ((n = resp_out_iov(out, iov, 3)) > 0) {
        size_t took = 0, budget = 1 + (got * 7 + 5) % 5000;
        for (int i = 0; i < n && budget > 0; i++) {
            size_t k = iov[i].iov_len < budget ? iov[i].iov_len : budget;
            memcpy(wire + got + took, iov[i].iov_base, k);
            took += k;
            budget -= k;
        }
        resp_out_consume(out, took);
        got += took;
    }
    if (got != total || resp_out_pending(out) != 0) {
        die("drained bytes differ from pending");
    }
    parse_pieces((const uint8_t *)wire, total, 0, &again, NULL);
    if (again.status != RESP_OK || again.ncmd != whole.nwritten ||
        again.hash != whole.whash) {
        die("rebuilt commands do not parse back the same");
    }
    free(wire);
    resp_out_deinit(out);
    free(out);
    return 0;
}
