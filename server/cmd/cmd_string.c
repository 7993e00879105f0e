/* server/cmd/cmd_string.c: the string family. GET SET SETNX SETEX PSETEX GETSET GETDEL
 * GETEX MGET MSET MSETNX APPEND STRLEN GETRANGE SUBSTR SETRANGE INCR INCRBY DECR
 * DECRBY INCRBYFLOAT, with Redis 7.0's replies and errors.
 *
 * Keys are read and written through the coordinator (server/coord/coord.h); values are
 * read and changed with server/store/obj.h.
 */
#include <limits.h>
#include <math.h>

#include "server/cmd/cmd.h"
#include "server/coord/coord.h"

enum {
    STR_NX = 1u << 0,
    STR_XX = 1u << 1,
    STR_GET = 1u << 2,
    STR_KEEPTTL = 1u << 3,
    STR_PERSIST = 1u << 4,
    STR_EX = 1u << 5,
    STR_PX = 1u << 6,
    STR_EXAT = 1u << 7,
    STR_PXAT = 1u << 8,
};
#define STR_ANY_EXPIRE (STR_EX | STR_PX | STR_EXAT | STR_PXAT)

static const char *cmd_name(const struct client *c) {
    return c->cmd ? c->cmd->name : "set";
}

static void reply_str_value(struct client *c, const struct kv_entry *e) {
    char buf[OBJ_LL_BUF];
    size_t len;
    const char *p = obj_str(e, buf, &len);
    reply_bulk(c, p, len);
}

/* Turns an EX/PX/EXAT/PXAT argument into an absolute Unix ms time, as Redis's
 * getExpireMillisecondsOrReply. Replies and returns -1 on error. */
static int expire_arg_or_reply(struct client *c, int i, unsigned unit, long long *when) {
    long long v;
    if (resp_str2ll(c->argv[i].p, c->argv[i].len, &v) != 0) {
        reply_not_integer(c);
        return -1;
    }
    int seconds = (unit & (STR_EX | STR_EXAT)) != 0;
    if (v <= 0 || (seconds && v > LLONG_MAX / 1000)) {
        goto invalid;
    }
    if (seconds) {
        v *= 1000;
    }
    if (unit & (STR_EX | STR_PX)) {
        if (v > LLONG_MAX - server.mstime) {
            goto invalid;
        }
        v += server.mstime;
    }
    *when = v;
    return 0;
invalid:
    reply_errorf(c, "ERR invalid expire time in '%s' command", cmd_name(c));
    return -1;
}

/* Parses SET's (set = 1) or GETEX's options from argv[first..], with Redis's rules
 * for which options exclude which. *exp_i gets the index of the expire argument
 * (0 when none). Replies and returns -1 on a syntax error. */
static int str_opts_or_reply(struct client *c, int first, int set, unsigned *flags, int *exp_i) {
    static const struct {
        const char *name;
        unsigned flag, excludes;
        int set_only, get_only;
    } opts[] = {
        {"nx", STR_NX, STR_XX, 1, 0},
        {"xx", STR_XX, STR_NX, 1, 0},
        {"get", STR_GET, 0, 1, 0},
        {"keepttl", STR_KEEPTTL, STR_PERSIST | STR_ANY_EXPIRE, 1, 0},
        {"persist", STR_PERSIST, STR_KEEPTTL | STR_ANY_EXPIRE, 0, 1},
        {"ex", STR_EX, STR_KEEPTTL | STR_PERSIST | STR_EXAT | STR_PX | STR_PXAT, 0, 0},
        {"px", STR_PX, STR_KEEPTTL | STR_PERSIST | STR_EX | STR_EXAT | STR_PXAT, 0, 0},
        {"exat", STR_EXAT, STR_KEEPTTL | STR_PERSIST | STR_EX | STR_PX | STR_PXAT, 0, 0},
        {"pxat", STR_PXAT, STR_KEEPTTL | STR_PERSIST | STR_EX | STR_EXAT | STR_PX, 0, 0},
    };
    *flags = 0;
    *exp_i = 0;
    for (int j = first; j < c->argc; j++) {
        size_t k;
        for (k = 0; k < sizeof(opts) / sizeof(opts[0]); k++) {
            if (arg_is(c, j, opts[k].name)) {
                break;
            }
        }
        if (k == sizeof(opts) / sizeof(opts[0]) || (*flags & opts[k].excludes) ||
            (opts[k].set_only && !set) || (opts[k].get_only && set)) {
            reply_syntax_error(c);
            return -1;
        }
        if (opts[k].flag & STR_ANY_EXPIRE) {
            if (j + 1 >= c->argc) {
                reply_syntax_error(c);
                return -1;
            }
            *exp_i = ++j;
        }
        *flags |= opts[k].flag;
    }
    return 0;
}

/* Replies with key's string value (or null); -1 after a WRONGTYPE reply. */
static int get_generic(struct client *c) {
    struct kv_entry *e;
    if (coord_lookup_type_or_reply(c, &c->argv[1], KS_TYPE_STRING, 0, &e) != 0) {
        return -1;
    }
    if (e == NULL) {
        reply_null(c);
        return 0;
    }
    reply_str_value(c, e);
    return 0;
}

/* SET and friends: flags STR_*, expire_at 0 or absolute ms. ok/abort: the reply
 * when the value is / is not set (NULL: +OK / null), unless STR_GET. */
static void set_generic(struct client *c, unsigned flags, const struct kv_slice *val,
                        long long expire_at, int ok_int, int abort_int) {
    if (flags & STR_GET) {
        if (get_generic(c) != 0) {
            return;
        }
    }
    if (flags & (STR_NX | STR_XX)) {
        int found = coord_lookup_write(c, &c->argv[1]) != NULL;
        if (((flags & STR_NX) && found) || ((flags & STR_XX) && !found)) {
            if (!(flags & STR_GET)) {
                if (abort_int >= 0) {
                    reply_int(c, abort_int);
                } else {
                    reply_null(c);
                }
            }
            return;
        }
    }
    coord_set_str(c, &c->argv[1], val->p, val->len, expire_at,
                  (flags & STR_KEEPTTL) ? COORD_KEEPTTL : 0);
    if (!(flags & STR_GET)) {
        if (ok_int >= 0) {
            reply_int(c, ok_int);
        } else {
            reply_ok(c);
        }
    }
}

void cmd_get(struct client *c) {
    get_generic(c);
}

void cmd_set(struct client *c) {
    unsigned flags;
    int exp_i;
    long long when = 0;
    if (str_opts_or_reply(c, 3, 1, &flags, &exp_i) != 0) {
        return;
    }
    if (exp_i && expire_arg_or_reply(c, exp_i, flags & STR_ANY_EXPIRE, &when) != 0) {
        return;
    }
    set_generic(c, flags, &c->argv[2], when, -1, -1);
}

void cmd_setnx(struct client *c) {
    set_generic(c, STR_NX, &c->argv[2], 0, 1, 0);
}

void cmd_setex(struct client *c) {
    long long when;
    if (expire_arg_or_reply(c, 2, STR_EX, &when) == 0) {
        set_generic(c, 0, &c->argv[3], when, -1, -1);
    }
}

void cmd_psetex(struct client *c) {
    long long when;
    if (expire_arg_or_reply(c, 2, STR_PX, &when) == 0) {
        set_generic(c, 0, &c->argv[3], when, -1, -1);
    }
}

void cmd_getset(struct client *c) {
    set_generic(c, STR_GET, &c->argv[2], 0, -1, -1);
}

void cmd_getdel(struct client *c) {
    if (get_generic(c) == 0) {
        coord_delete(c, &c->argv[1], 0);
    }
}

void cmd_getex(struct client *c) {
    unsigned flags;
    int exp_i;
    long long when = 0;
    if (str_opts_or_reply(c, 2, 0, &flags, &exp_i) != 0) {
        return;
    }
    struct kv_entry *e;
    if (coord_lookup_type_or_reply(c, &c->argv[1], KS_TYPE_STRING, 0, &e) != 0) {
        return;
    }
    if (e == NULL) {
        reply_null(c);
        return;
    }
    if (exp_i && expire_arg_or_reply(c, exp_i, flags & STR_ANY_EXPIRE, &when) != 0) {
        return;
    }
    reply_str_value(c, e);
    if (exp_i) {
        coord_set_expire(c, &c->argv[1], e, when); /* a past EXAT/PXAT deletes */
    } else if ((flags & STR_PERSIST) && obj_has_expire(e)) {
        coord_persist(c, &c->argv[1], e);
    }
}

void cmd_mget(struct client *c) {
    reply_array(c, c->argc - 1);
    for (int j = 1; j < c->argc; j++) {
        struct kv_entry *e = coord_lookup_read(c, &c->argv[j]);
        if (e == NULL || e->type != KS_TYPE_STRING) {
            reply_null(c);
        } else {
            reply_str_value(c, e);
        }
    }
}

static void mset_generic(struct client *c, int nx) {
    if (c->argc % 2 == 0) {
        reply_arity_error(c);
        return;
    }
    if (nx) {
        for (int j = 1; j < c->argc; j += 2) {
            if (coord_lookup_write(c, &c->argv[j]) != NULL) {
                reply_int(c, 0);
                return;
            }
        }
    }
    for (int j = 1; j < c->argc; j += 2) {
        coord_set_str(c, &c->argv[j], c->argv[j + 1].p, c->argv[j + 1].len, 0, 0);
    }
    if (nx) {
        reply_int(c, 1);
    } else {
        reply_ok(c);
    }
}

void cmd_mset(struct client *c) {
    mset_generic(c, 0);
}

void cmd_msetnx(struct client *c) {
    mset_generic(c, 1);
}

/* Redis's checkStringLength: replies and returns -1 past proto-max-bulk-len.
 * size and append are >= 0; their sum is taken unsigned, so an overflow (SETRANGE
 * at offset LLONG_MAX) wraps negative and is caught, with no undefined behaviour. */
static int string_len_ok_or_reply(struct client *c, long long size, long long append) {
    long long total = (long long)((unsigned long long)size + (unsigned long long)append);
    if (total > server.proto_max_bulk_len || total < size || total < append) {
        reply_error(c, "ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return -1;
    }
    return 0;
}

void cmd_append(struct client *c) {
    const struct kv_slice *key = &c->argv[1], *val = &c->argv[2];
    struct kv_entry *e;
    if (coord_lookup_type_or_reply(c, key, KS_TYPE_STRING, COORD_NOSTATS, &e) != 0) {
        return;
    }
    if (e == NULL) {
        coord_set_str(c, key, val->p, val->len, 0, 0);
        reply_int(c, (long long)val->len);
        return;
    }
    size_t oldlen = obj_str_len(e);
    if (string_len_ok_or_reply(c, (long long)oldlen, (long long)val->len) != 0) {
        return;
    }
    coord_str_append(c, key, e, val->p, val->len);
    reply_int(c, (long long)(oldlen + val->len));
}

void cmd_strlen(struct client *c) {
    struct kv_entry *e;
    if (coord_lookup_type_or_reply(c, &c->argv[1], KS_TYPE_STRING, 0, &e) == 0) {
        reply_int(c, e ? (long long)obj_str_len(e) : 0);
    }
}

void cmd_getrange(struct client *c) {
    long long start, end;
    if (arg_ll_or_reply(c, 2, &start) != 0 || arg_ll_or_reply(c, 3, &end) != 0) {
        return;
    }
    struct kv_entry *e;
    if (coord_lookup_type_or_reply(c, &c->argv[1], KS_TYPE_STRING, 0, &e) != 0) {
        return;
    }
    if (e == NULL) {
        reply_bulk(c, "", 0);
        return;
    }
    char buf[OBJ_LL_BUF];
    size_t slen;
    const char *s = obj_str(e, buf, &slen);
    long long len = (long long)slen;
    if (start < 0 && end < 0 && start > end) {
        reply_bulk(c, "", 0);
        return;
    }
    if (start < 0) {
        start = len + start;
    }
    if (end < 0) {
        end = len + end;
    }
    if (start < 0) {
        start = 0;
    }
    if (end < 0) {
        end = 0;
    }
    if (end >= len) {
        end = len - 1;
    }
    if (start > end || len == 0) {
        reply_bulk(c, "", 0);
        return;
    }
    reply_bulk(c, s + start, (size_t)(end - start + 1));
}

void cmd_substr(struct client *c) {
    cmd_getrange(c);
}

void cmd_setrange(struct client *c) {
    const struct kv_slice *key = &c->argv[1], *val = &c->argv[3];
    long long off;
    if (arg_ll_or_reply(c, 2, &off) != 0) {
        return;
    }
    if (off < 0) {
        reply_error(c, "ERR offset is out of range");
        return;
    }
    struct kv_entry *e;
    if (coord_lookup_type_or_reply(c, key, KS_TYPE_STRING, COORD_NOSTATS, &e) != 0) {
        return;
    }
    if (e == NULL) {
        if (val->len == 0) {
            reply_int(c, 0);
            return;
        }
        if (string_len_ok_or_reply(c, off, (long long)val->len) != 0) {
            return;
        }
        struct kv_entry *ne = obj_str_new(key->p, key->len, "", 0, 0);
        ne = obj_str_setrange(NULL, ne, (size_t)off, val->p, val->len);
        coord_put(c, -1, ne, 0);
        reply_int(c, off + (long long)val->len);
        return;
    }
    size_t olen = obj_str_len(e);
    if (val->len == 0) {
        reply_int(c, (long long)olen);
        return;
    }
    if (string_len_ok_or_reply(c, off, (long long)val->len) != 0) {
        return;
    }
    e = coord_str_setrange(c, key, e, (size_t)off, val->p, val->len);
    reply_int(c, (long long)obj_str_len(e));
}

static void incr_generic(struct client *c, long long incr) {
    const struct kv_slice *key = &c->argv[1];
    struct kv_entry *e;
    long long value = 0;
    if (coord_lookup_type_or_reply(c, key, KS_TYPE_STRING, COORD_NOSTATS, &e) != 0) {
        return;
    }
    if (e && obj_str_ll(e, &value) != 0) {
        reply_not_integer(c);
        return;
    }
    if (kv_add_overflows(value, incr)) {
        reply_error(c, "ERR increment or decrement would overflow");
        return;
    }
    value += incr;
    if (e && e->enc == KS_ENC_INT) {
        obj_str_set_int(e, value); /* same size: in place */
        coord_modified(c, key, e);
    } else {
        coord_set_int(c, key, value, 0, COORD_KEEPTTL);
    }
    reply_int(c, value);
}

void cmd_incr(struct client *c) {
    incr_generic(c, 1);
}

void cmd_decr(struct client *c) {
    incr_generic(c, -1);
}

void cmd_incrby(struct client *c) {
    long long incr;
    if (arg_ll_or_reply(c, 2, &incr) == 0) {
        incr_generic(c, incr);
    }
}

void cmd_decrby(struct client *c) {
    long long incr;
    if (arg_ll_or_reply(c, 2, &incr) != 0) {
        return;
    }
    if (incr == LLONG_MIN) {
        reply_error(c, "ERR decrement would overflow");
        return;
    }
    incr_generic(c, -incr);
}

void cmd_incrbyfloat(struct client *c) {
    const struct kv_slice *key = &c->argv[1];
    struct kv_entry *e;
    long double value = 0, incr;
    if (coord_lookup_type_or_reply(c, key, KS_TYPE_STRING, COORD_NOSTATS, &e) != 0) {
        return;
    }
    if (e) {
        char buf[OBJ_LL_BUF];
        size_t len;
        const char *p = obj_str(e, buf, &len);
        if (resp_str2ld(p, len, &value) != 0) {
            reply_not_float(c);
            return;
        }
    }
    if (arg_ld_or_reply(c, 2, &incr) != 0) {
        return;
    }
    value += incr;
    if (isnan(value) || isinf(value)) {
        reply_error(c, "ERR increment would produce NaN or Infinity");
        return;
    }
    char out[5 * 1024]; /* Redis's MAX_LONG_DOUBLE_CHARS: 1e308 in fixed notation */
    int n = resp_ld2str(out, sizeof(out), value);
    coord_set_str(c, key, out, (size_t)n, 0, COORD_KEEPTTL | COORD_NOINT);
    reply_bulk(c, out, (size_t)n);
}
