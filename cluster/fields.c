/* cluster/fields.c: field records of big hashes, codec and merge. See fields.h. */
#include "cluster/fields.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

static struct kv_version get_version(const unsigned char *p) {
    return (struct kv_version){msg_get_be(p, 8), (uint32_t)msg_get_be(p + 8, 4)};
}

int fields_entry_cmp(const struct fields_entry *a, const struct fields_entry *b) {
    size_t m = a->flen < b->flen ? a->flen : b->flen;
    int c = m ? memcmp(a->f, b->f, m) : 0;
    if (c != 0) {
        return c;
    }
    return a->flen < b->flen ? -1 : a->flen > b->flen;
}

/* One entry at it->p, bounds checked: 1 read, 0 malformed. */
static int read_entry(struct fields_iter *it, struct fields_entry *e) {
    size_t room = (size_t)(it->end - it->p);
    if (room < FIELDS_ENTRY_MIN) {
        return 0;
    }
    const unsigned char *p = it->p;
    e->v = get_version(p);
    if (p[12] & ~MSG_REC_DELETED) {
        return 0;
    }
    e->deleted = (p[12] & MSG_REC_DELETED) != 0;
    uint64_t flen = msg_get_be(p + 13, 4);
    if (flen > room - FIELDS_ENTRY_MIN) {
        return 0;
    }
    e->f = (const char *)p + 17;
    e->flen = (size_t)flen;
    uint64_t vlen = msg_get_be(p + 17 + flen, 4);
    if (vlen > room - FIELDS_ENTRY_MIN - flen || (e->deleted && vlen)) {
        return 0;
    }
    e->val = (const char *)p + FIELDS_ENTRY_MIN + flen;
    e->vlen = (size_t)vlen;
    it->p = p + FIELDS_ENTRY_MIN + flen + vlen;
    return 1;
}

int fields_check(const char *p, size_t len, struct kv_version top, struct kv_version *floor,
                 uint32_t *count, char *err, size_t errlen) {
    if (len < FIELDS_HDR) {
        return msg_fail(err, errlen, MSG_INVALID, "fields: %zu bytes, header needs %d", len, FIELDS_HDR);
    }
    const unsigned char *u = (const unsigned char *)p;
    *floor = get_version(u);
    *count = (uint32_t)msg_get_be(u + 12, 4);
    if (kv_version_cmp(*floor, top) > 0) {
        return msg_fail(err, errlen, MSG_INVALID, "fields: floor above the record's version");
    }
    struct fields_iter it = {u + FIELDS_HDR, u + len, 0};
    struct fields_entry prev = {0}, e;
    for (uint32_t i = 0; i < *count; i++) {
        if (!read_entry(&it, &e)) {
            return msg_fail(err, errlen, MSG_INVALID, "fields: entry %u of %u malformed", i, *count);
        }
        if (kv_version_cmp(e.v, *floor) < 0 || kv_version_cmp(e.v, top) > 0) {
            return msg_fail(err, errlen, MSG_INVALID, "fields: entry %u version outside floor..record", i);
        }
        if (i > 0 && fields_entry_cmp(&prev, &e) >= 0) {
            return msg_fail(err, errlen, MSG_INVALID, "fields: entry %u out of order or repeated", i);
        }
        prev = e;
    }
    if (it.p != it.end) {
        return msg_fail(err, errlen, MSG_INVALID, "fields: %zu bytes after %u entries",
                    (size_t)(it.end - it.p), *count);
    }
    return MSG_OK;
}

int fields_record_ok(const struct msg_record *rec) {
    struct kv_version floor;
    uint32_t n;
    return rec->fields && !rec->deleted &&
           fields_check(rec->val, rec->vlen, rec->v, &floor, &n, NULL, 0) == MSG_OK;
}

void fields_iter_init(struct fields_iter *it, const char *p, size_t len) {
    const unsigned char *u = (const unsigned char *)p;
    it->p = u + FIELDS_HDR;
    it->end = u + len;
    it->left = (uint32_t)msg_get_be(u + 12, 4);
}

int fields_next(struct fields_iter *it, struct fields_entry *e) {
    if (it->left == 0 || !read_entry(it, e)) {
        return 0;
    }
    it->left--;
    return 1;
}

static struct kv_version head_floor(const struct msg_record *r) {
    return get_version((const unsigned char *)r->val);
}

void fields_put_head(struct msg_buf *b, struct kv_version floor, uint32_t count) {
    unsigned char h[FIELDS_HDR];
    msg_put_be(h, floor.hlc, 8);
    msg_put_be(h + 8, floor.node, 4);
    msg_put_be(h + 12, count, 4);
    msg_buf_put(b, h, sizeof(h));
}

void fields_put(struct msg_buf *b, const struct fields_entry *e) {
    unsigned char h[17];
    msg_put_be(h, e->v.hlc, 8);
    msg_put_be(h + 8, e->v.node, 4);
    h[12] = e->deleted ? MSG_REC_DELETED : 0;
    msg_put_be(h + 13, e->flen, 4);
    msg_buf_put(b, h, sizeof(h));
    msg_buf_put(b, e->f, e->flen);
    unsigned char l[4];
    msg_put_be(l, e->deleted ? 0 : e->vlen, 4);
    msg_buf_put(b, l, sizeof(l));
    if (!e->deleted) {
        msg_buf_put(b, e->val, e->vlen);
    }
}

void fields_put_count(struct msg_buf *b, size_t off, uint32_t count) {
    msg_put_be((unsigned char *)b->p + off + 12, count, 4);
}

/* ---- merge ---- */

static void copy_record(const struct msg_record *r, struct msg_buf *val, struct msg_record *out) {
    *out = *r;
    msg_buf_put(val, r->val, r->vlen);
    out->val = val->len ? val->p : NULL;
}

static struct kv_version newer(struct kv_version a, struct kv_version b) {
    return kv_version_cmp(a, b) >= 0 ? a : b;
}

/* Emits the entries of x and y (either may have no value: n 0) merged per field,
 * those below floor dropped; returns how many. */
static uint32_t merge_entries(const struct msg_record *x, const struct msg_record *y,
                              struct kv_version floor, struct msg_buf *val) {
    struct fields_iter ix = {0}, iy = {0};
    if (x) {
        fields_iter_init(&ix, x->val, x->vlen);
    }
    if (y) {
        fields_iter_init(&iy, y->val, y->vlen);
    }
    struct fields_entry a, b;
    int ha = x && fields_next(&ix, &a), hb = y && fields_next(&iy, &b);
    uint32_t n = 0;
    while (ha || hb) {
        int c = !ha ? 1 : !hb ? -1 : fields_entry_cmp(&a, &b);
        const struct fields_entry *pick = c < 0 ? &a : c > 0 ? &b
            : kv_record_cmp(a.v, a.deleted, b.v, b.deleted) >= 0 ? &a : &b;
        if (kv_version_cmp(pick->v, floor) >= 0) {
            fields_put(val, pick);
            n++;
        }
        if (c <= 0) {
            ha = fields_next(&ix, &a);
        }
        if (c >= 0) {
            hb = fields_next(&iy, &b);
        }
    }
    return n;
}

void fields_merge(const struct msg_record *a, const struct msg_record *b, struct msg_buf *val,
                  struct msg_record *out) {
    val->len = 0;
    if (a == NULL || b == NULL) {
        if (a || b) {
            copy_record(a ? a : b, val, out);
        } else {
            memset(out, 0, sizeof(*out));
        }
        return;
    }
    if (!a->fields && !b->fields) {
        copy_record(kv_record_cmp(a->v, a->deleted, b->v, b->deleted) >= 0 ? a : b, val, out);
        return;
    }
    const struct msg_record *f = a->fields ? a : b, *o = a->fields ? b : a;
    if (!o->fields && kv_record_cmp(o->v, o->deleted, f->v, 0) > 0) {
        copy_record(o, val, out); /* a whole-key write newer than every field */
        return;
    }
    struct kv_version floor = o->fields ? newer(head_floor(f), head_floor(o))
                                        : newer(head_floor(f), o->v);
    /* the key's version and expire-at: the newer header's */
    const struct msg_record *top = kv_version_cmp(f->v, o->v) >= 0 ? f : o;
    fields_put_head(val, floor, 0);
    uint32_t n = merge_entries(f, o->fields ? o : NULL, floor, val);
    fields_put_count(val, 0, n);
    *out = (struct msg_record){.v = top->v, .deleted = 0, .expire_at = top->expire_at,
                               .val = val->p, .vlen = val->len, .fields = 1};
}

int fields_covers(const struct msg_record *a, const struct msg_record *b) {
    struct msg_buf buf = {0};
    struct msg_record m;
    fields_merge(a, b, &buf, &m);
    int same = a != NULL && kv_version_cmp(m.v, a->v) == 0 && m.deleted == a->deleted &&
               m.fields == a->fields && m.expire_at == a->expire_at && m.vlen == a->vlen &&
               (m.vlen == 0 || memcmp(m.val, a->val, m.vlen) == 0);
    if (a == NULL && b == NULL) {
        same = 1;
    }
    msg_buf_free(&buf);
    return same;
}

/* Is e held by a (a FIELDS record): the same field at e's version or newer? */
static int entry_held(struct fields_iter *ia, struct fields_entry *cur, int *has,
                      const struct fields_entry *e) {
    while (*has && fields_entry_cmp(cur, e) < 0) {
        *has = fields_next(ia, cur);
    }
    return *has && fields_entry_cmp(cur, e) == 0 &&
           kv_record_cmp(cur->v, cur->deleted, e->v, e->deleted) >= 0;
}

void fields_diff(const struct msg_record *a, const struct msg_record *b, struct msg_buf *val,
                 struct msg_record *out) {
    if (a == NULL || !a->fields || !b->fields) {
        fields_merge(b, NULL, val, out);
        return;
    }
    val->len = 0;
    fields_put_head(val, head_floor(b), 0);
    struct fields_iter ia, ib;
    fields_iter_init(&ia, a->val, a->vlen);
    fields_iter_init(&ib, b->val, b->vlen);
    struct fields_entry ca, e;
    int has = fields_next(&ia, &ca);
    uint32_t n = 0;
    while (fields_next(&ib, &e)) {
        if (!entry_held(&ia, &ca, &has, &e)) {
            fields_put(val, &e);
            n++;
        }
    }
    fields_put_count(val, 0, n);
    *out = *b;
    out->val = val->p;
    out->vlen = val->len;
}

/* ---- content digest ---- */

uint64_t fields_digest_entry(const char *f, size_t flen, struct kv_version v, int deleted) {
    unsigned char h[13];
    msg_put_be(h, v.hlc, 8);
    msg_put_be(h + 8, v.node, 4);
    h[12] = deleted ? 1 : 0;
    return XXH3_64bits_withSeed(f, flen, XXH3_64bits(h, sizeof(h)));
}

uint64_t fields_digest_floor(struct kv_version floor) {
    unsigned char h[13];
    msg_put_be(h, floor.hlc, 8);
    msg_put_be(h + 8, floor.node, 4);
    h[12] = 2; /* never an entry's flag: a floor and a field never share a term */
    return XXH3_64bits(h, sizeof(h));
}

uint64_t fields_digest_final(uint64_t sum) {
    return sum ? sum : 1;
}

uint64_t fields_digest(const struct msg_record *rec) {
    if (!fields_record_ok(rec)) {
        return 0;
    }
    uint64_t sum = fields_digest_floor(head_floor(rec));
    struct fields_iter it;
    fields_iter_init(&it, rec->val, rec->vlen);
    struct fields_entry e;
    while (fields_next(&it, &e)) {
        sum += fields_digest_entry(e.f, e.flen, e.v, e.deleted);
    }
    return fields_digest_final(sum);
}
