/* server/cmd/cmd_expire.c: the expiry family. EXPIRE PEXPIRE EXPIREAT PEXPIREAT (NX XX
 * GT LT), TTL PTTL, PERSIST, EXPIRETIME PEXPIRETIME, with Redis 7.0's replies and
 * errors. TTLs live in the entries; coord_set_expire deletes a key whose new time
 * is already past, as Redis does.
 */
#include <limits.h>

#include "server/cmd/cmd.h"
#include "server/coord/coord.h"

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static void reply_expire_time_error(struct client *c) {
    reply_errorf(c, "ERR invalid expire time in '%s' command", c->cmd ? c->cmd->name : "expire");
}

/* basetime: 0 for the *AT forms, now otherwise; seconds: the unit. */
static void expire_generic(struct client *c, long long basetime, int seconds) {
    const struct kv_slice *key = &c->argv[1];
    unsigned flags = 0;
    for (int j = 3; j < c->argc; j++) {
        if (arg_is(c, j, "nx")) {
            flags |= EXP_NX;
        } else if (arg_is(c, j, "xx")) {
            flags |= EXP_XX;
        } else if (arg_is(c, j, "gt")) {
            flags |= EXP_GT;
        } else if (arg_is(c, j, "lt")) {
            flags |= EXP_LT;
        } else {
            int n = c->argv[j].len > 128 ? 128 : (int)c->argv[j].len;
            reply_errorf(c, "ERR Unsupported option %.*s", n, c->argv[j].p);
            return;
        }
    }
    if ((flags & EXP_NX) && (flags & (EXP_XX | EXP_GT | EXP_LT))) {
        reply_error(c, "ERR NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if ((flags & EXP_GT) && (flags & EXP_LT)) {
        reply_error(c, "ERR GT and LT options at the same time are not compatible");
        return;
    }
    long long when;
    if (arg_ll_or_reply(c, 2, &when) != 0) {
        return;
    }
    if (seconds) {
        if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000) {
            reply_expire_time_error(c);
            return;
        }
        when *= 1000;
    }
    if (when > LLONG_MAX - basetime) {
        reply_expire_time_error(c);
        return;
    }
    when += basetime;

    struct kv_entry *e = coord_lookup_write(c, key);
    if (e == NULL) {
        reply_int(c, 0);
        return;
    }
    long long cur = obj_expire(e); /* 0: none, i.e. infinite */
    if (((flags & EXP_NX) && cur) || ((flags & EXP_XX) && !cur) ||
        ((flags & EXP_GT) && (!cur || when <= cur)) ||
        ((flags & EXP_LT) && cur && when >= cur)) {
        reply_int(c, 0);
        return;
    }
    coord_set_expire(c, key, e, when);
    reply_int(c, 1);
}

void cmd_expire(struct client *c) {
    expire_generic(c, server.mstime, 1);
}

void cmd_pexpire(struct client *c) {
    expire_generic(c, server.mstime, 0);
}

void cmd_expireat(struct client *c) {
    expire_generic(c, 0, 1);
}

void cmd_pexpireat(struct client *c) {
    expire_generic(c, 0, 0);
}

/* TTL and friends: absolute selects EXPIRETIME, ms the unit. */
static void ttl_generic(struct client *c, int ms, int absolute) {
    struct kv_entry *e = coord_lookup(c, &c->argv[1], COORD_NOTOUCH);
    if (e == NULL) {
        reply_int(c, -2);
        return;
    }
    long long when = obj_expire(e);
    if (when == 0) {
        reply_int(c, -1);
        return;
    }
    if (absolute) {
        reply_int(c, ms ? when : when / 1000 + (when % 1000 >= 500)); /* no overflow */
        return;
    }
    long long ttl = when - server.mstime;
    if (ttl < 0) {
        ttl = 0;
    }
    reply_int(c, ms ? ttl : (ttl + 500) / 1000);
}

void cmd_ttl(struct client *c) {
    ttl_generic(c, 0, 0);
}

void cmd_pttl(struct client *c) {
    ttl_generic(c, 1, 0);
}

void cmd_expiretime(struct client *c) {
    ttl_generic(c, 0, 1);
}

void cmd_pexpiretime(struct client *c) {
    ttl_generic(c, 1, 1);
}

void cmd_persist(struct client *c) {
    struct kv_entry *e = coord_lookup_write(c, &c->argv[1]);
    if (e == NULL || !obj_has_expire(e)) {
        reply_int(c, 0);
        return;
    }
    coord_persist(c, &c->argv[1], e);
    reply_int(c, 1);
}
