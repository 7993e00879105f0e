/* server/cmd/cmd_conn.c: connection commands: PING ECHO QUIT RESET HELLO AUTH SELECT
 * CLIENT. Replies and error texts are Redis 7's, byte for byte.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/cmd/cmd.h"

void cmd_ping(struct client *c) {
    if (c->argc == 1) {
        reply_simple(c, "PONG");
    } else if (c->argc == 2) {
        reply_bulk(c, c->argv[1].p, c->argv[1].len);
    } else {
        reply_arity_error(c);
    }
}

void cmd_echo(struct client *c) {
    reply_bulk(c, c->argv[1].p, c->argv[1].len);
}

void cmd_quit(struct client *c) {
    c->flags &= ~(CLIENT_REPLY_OFF | CLIENT_REPLY_SKIP);
    reply_ok(c);
    c->flags |= CLIENT_CLOSE_AFTER_REPLY;
}

/* Compares in time independent of where the first difference is. */
static int secret_eq(const char *a, size_t alen, const char *b, size_t blen) {
    unsigned diff = alen != blen;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        diff |= (unsigned)(a[i] ^ b[i]);
    }
    return diff == 0;
}

static int password_required(void) {
    return server.requirepass != NULL && server.requirepass[0] != '\0';
}

/* AUTH's check for the default user: 1 when the pair is accepted. */
static int auth_check(const struct kv_slice *user, const struct kv_slice *pass) {
    if (user != NULL && !(user->len == 7 && memcmp(user->p, "default", 7) == 0)) {
        return 0;
    }
    if (!password_required()) {
        return 1;  /* the default user has nopass: any password */
    }
    return secret_eq(pass->p, pass->len, server.requirepass, strlen(server.requirepass));
}

static const char wrongpass[] = "WRONGPASS invalid username-password pair or user is disabled.";

void cmd_auth(struct client *c) {
    if (c->argc > 3) {
        reply_syntax_error(c);
        return;
    }
    if (c->argc == 2) {
        if (!password_required()) {
            reply_error(c, "ERR AUTH <password> called without any password configured for the "
                           "default user. Are you sure your configuration is correct?");
            return;
        }
        if (auth_check(NULL, &c->argv[1])) {
            c->authenticated = 1;
            reply_ok(c);
        } else {
            reply_error(c, wrongpass);
        }
        return;
    }
    if (auth_check(&c->argv[1], &c->argv[2])) {
        c->authenticated = 1;
        reply_ok(c);
    } else {
        reply_error(c, wrongpass);
    }
}

/* A client name (or SETINFO value) may hold only '!'..'~'. */
static int valid_name(const struct kv_slice *s) {
    for (size_t i = 0; i < s->len; i++) {
        if (s->p[i] < '!' || s->p[i] > '~') {
            return 0;
        }
    }
    return 1;
}

static void set_name(struct client *c, const struct kv_slice *name) {
    kv_free(c->name);
    c->name = name->len ? kv_strndup(name->p, name->len) : NULL;
}

static const char bad_name[] =
    "ERR Client names cannot contain spaces, newlines or special characters.";

void cmd_hello(struct client *c) {
    long long ver = 0;
    int next = 1;
    if (c->argc >= 2) {
        if (resp_str2ll(c->argv[1].p, c->argv[1].len, &ver) != 0) {
            reply_error(c, "ERR Protocol version is not an integer or out of range");
            return;
        }
        next = 2;
        if (ver < 2 || ver > 3) {
            reply_error(c, "NOPROTO unsupported protocol version");
            return;
        }
    }
    const struct kv_slice *user = NULL, *pass = NULL, *name = NULL;
    for (int j = next; j < c->argc; j++) {
        int more = c->argc - 1 - j;
        if (arg_is(c, j, "auth") && more >= 2) {
            user = &c->argv[j + 1];
            pass = &c->argv[j + 2];
            j += 2;
        } else if (arg_is(c, j, "setname") && more >= 1) {
            name = &c->argv[j + 1];
            if (!valid_name(name)) {
                reply_error(c, bad_name);
                return;
            }
            j++;
        } else {
            int l = c->argv[j].len > 128 ? 128 : (int)c->argv[j].len;
            reply_errorf(c, "ERR Syntax error in HELLO option '%.*s'", l, c->argv[j].p);
            return;
        }
    }
    if (user != NULL) {
        if (!auth_check(user, pass)) {
            reply_error(c, wrongpass);
            return;
        }
        c->authenticated = 1;
    }
    if (!c->authenticated && password_required()) {
        reply_error(c, "NOAUTH HELLO must be called with the client already authenticated, "
                       "otherwise the HELLO AUTH <user> <pass> option can be used to "
                       "authenticate the client and select the RESP protocol version at the "
                       "same time");
        return;
    }
    if (name != NULL) {
        set_name(c, name);
    }
    /* switch protocol before writing the reply: HELLO 3 answers in RESP3 */
    if (ver) {
        c->resp = (int)ver;
        c->out.proto = (int)ver;
    }
    reply_map(c, 7);
    reply_bulk_cstr(c, "server");
    reply_bulk_cstr(c, "redis");
    reply_bulk_cstr(c, "version");
    reply_bulk_cstr(c, KVD_REDIS_COMPAT_VERSION);
    reply_bulk_cstr(c, "proto");
    reply_int(c, c->resp);
    reply_bulk_cstr(c, "id");
    reply_int(c, (long long)c->id);
    reply_bulk_cstr(c, "mode");
    reply_bulk_cstr(c, "standalone");
    reply_bulk_cstr(c, "role");
    reply_bulk_cstr(c, "master");
    reply_bulk_cstr(c, "modules");
    reply_array(c, 0);
}

void cmd_reset(struct client *c) {
    if (c->flags & CLIENT_MULTI || c->mstate) {
        multi_discard_state(c);
    }
    unwatch_all(c);
    if (c->flags & CLIENT_MONITOR) {
        monitor_remove(c);
    }
    client_set_db(c, 0);
    c->resp = 2;
    c->out.proto = 2;
    kv_free(c->name);
    c->name = NULL;
    c->flags &= ~(CLIENT_REPLY_OFF | CLIENT_REPLY_SKIP | CLIENT_REPLY_SKIP_NEXT |
                  CLIENT_NO_TOUCH | CLIENT_NO_EVICT | CLIENT_DIRTY_CAS | CLIENT_DIRTY_EXEC);
    c->authenticated = !password_required();
    c->cons_r = c->cons_w = 0; /* KVD CONSISTENCY: the directives' levels again */
    reply_simple(c, "RESET");
}

void cmd_select(struct client *c) {
    long long id;
    if (arg_range_ll_or_reply(c, 1, INT_MIN, INT_MAX, &id) != 0) {
        return;
    }
    if (id < 0 || id >= server.databases) {
        reply_error(c, "ERR DB index is out of range");
        return;
    }
    client_set_db(c, (int)id);
    reply_ok(c);
}

/* ------------------------------------------------------------------------------
 * CLIENT
 * ------------------------------------------------------------------------------ */
static const char *const client_help[] = {
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes (not supported).",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "NO-TOUCH (ON|OFF)",
    "    Will not touch LRU/LFU stats when this mode is on.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    NULL,
};

/* Client types: only "normal" clients exist on a kvd node. */
static int client_type_valid(const struct kv_slice *t, int *is_normal) {
    static const char *const names[] = {"normal", "master", "replica", "slave", "pubsub"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i]) == t->len && strncasecmp(names[i], t->p, t->len) == 0) {
            *is_normal = i == 0;
            return 1;
        }
    }
    return 0;
}

static int client_id_cmp(const void *a, const void *b) {
    uint64_t x = (*(struct client *const *)a)->id, y = (*(struct client *const *)b)->id;
    return x < y ? -1 : x > y;
}

/* The client with id `id` in by_id (n clients sorted by id), or NULL. */
static struct client *client_find_sorted(struct client **by_id, size_t n, uint64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (by_id[mid]->id < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && by_id[lo]->id == id ? by_id[lo] : NULL;
}

/* Appends o's CLIENT LIST line to out (*cap bytes, *len used), growing it. */
static char *client_list_add(char *out, size_t *cap, size_t *len, const struct client *o) {
    if (*cap - *len < 1024) {
        *cap *= 2;
        out = kv_realloc(out, *cap);
    }
    *len += client_info_line(o, out + *len, *cap - *len);
    return out;
}

/* CLIENT LIST [TYPE t | ID id ...]. With IDs, as Redis: one line per argument in
 * argument order (a repeated id repeats its line), unknown ids add nothing, and any
 * integer is a valid id. */
static void client_list(struct client *c) {
    int only_normal = -1; /* -1: any type */
    int with_ids = 0;
    if (c->argc == 4 && arg_is(c, 2, "type")) {
        int normal;
        if (!client_type_valid(&c->argv[3], &normal)) {
            int l = c->argv[3].len > 128 ? 128 : (int)c->argv[3].len;
            reply_errorf(c, "ERR Unknown client type '%.*s'", l, c->argv[3].p);
            return;
        }
        only_normal = normal;
    } else if (c->argc > 3 && arg_is(c, 2, "id")) {
        for (int j = 3; j < c->argc; j++) {
            long long v;
            if (resp_str2ll(c->argv[j].p, c->argv[j].len, &v) != 0) {
                reply_error(c, "ERR Invalid client ID");
                return;
            }
        }
        with_ids = 1;
    } else if (c->argc != 2) {
        reply_syntax_error(c);
        return;
    }
    size_t cap = 4096, len = 0;
    char *out = kv_malloc(cap);
    if (with_ids) {
        /* sorted once, so many ids cost O(ids * log clients), not ids * clients */
        struct client **by_id = kv_malloc(sizeof(*by_id) * ((size_t)server.nclients + 1));
        size_t n = 0;
        for (struct client *o = server.clients; o && n < (size_t)server.nclients + 1; o = o->next) {
            by_id[n++] = o;
        }
        qsort(by_id, n, sizeof(*by_id), client_id_cmp);
        for (int j = 3; j < c->argc; j++) {
            long long v;
            resp_str2ll(c->argv[j].p, c->argv[j].len, &v);
            struct client *o = v > 0 ? client_find_sorted(by_id, n, (uint64_t)v) : NULL;
            if (o) {
                out = client_list_add(out, &cap, &len, o);
            }
        }
        kv_free(by_id);
    } else if (only_normal != 0) {
        for (struct client *o = server.clients; o; o = o->next) {
            out = client_list_add(out, &cap, &len, o);
        }
    }
    reply_verbatim(c, out, len);
    kv_free(out);
}

/* CLIENT KILL's filters: the old form's addr, or the new form's pairs. */
struct kill_filter {
    const char *addr, *laddr;
    size_t addrlen, laddrlen;
    long long id;
    int type_normal, skipme, old_form;
};

/* Reads CLIENT KILL's arguments into f; replies with Redis's error and returns
 * -1 on a bad one. */
static int kill_filter_or_reply(struct client *c, struct kill_filter *f) {
    *f = (struct kill_filter){.type_normal = -1, .skipme = 1};
    if (c->argc == 3) {
        f->old_form = 1;
        f->addr = c->argv[2].p;
        f->addrlen = c->argv[2].len;
        f->skipme = 0;
        return 0;
    }
    if (c->argc <= 3 || (c->argc % 2) != 0) {
        reply_syntax_error(c);
        return -1;
    }
    for (int j = 2; j < c->argc; j += 2) {
        const struct kv_slice *v = &c->argv[j + 1];
        if (arg_is(c, j, "id")) {
            if (resp_str2ll(v->p, v->len, &f->id) != 0 || f->id < 1) {
                reply_error(c, "ERR client-id should be greater than 0");
                return -1;
            }
        } else if (arg_is(c, j, "type")) {
            if (!client_type_valid(v, &f->type_normal)) {
                int l = v->len > 128 ? 128 : (int)v->len;
                reply_errorf(c, "ERR Unknown client type '%.*s'", l, v->p);
                return -1;
            }
        } else if (arg_is(c, j, "addr")) {
            f->addr = v->p;
            f->addrlen = v->len;
        } else if (arg_is(c, j, "laddr")) {
            f->laddr = v->p;
            f->laddrlen = v->len;
        } else if (arg_is(c, j, "user")) {
            if (!(v->len == 7 && memcmp(v->p, "default", 7) == 0)) {
                int l = v->len > 128 ? 128 : (int)v->len;
                reply_errorf(c, "ERR No such user '%.*s'", l, v->p);
                return -1;
            }
        } else if (arg_is(c, j, "skipme")) {
            if (arg_is(c, j + 1, "yes")) {
                f->skipme = 1;
            } else if (arg_is(c, j + 1, "no")) {
                f->skipme = 0;
            } else {
                reply_syntax_error(c);
                return -1;
            }
        } else {
            reply_syntax_error(c);
            return -1;
        }
    }
    return 0;
}

static void client_kill(struct client *c) {
    struct kill_filter f;
    if (kill_filter_or_reply(c, &f) != 0) {
        return;
    }
    long long killed = 0;
    int kill_self = 0;
    for (struct client *o = server.clients; o; o = o->next) {
        if (o->flags & CLIENT_CLOSE_ASAP) continue;
        if (f.addr && (strlen(o->addr) != f.addrlen ||
                       memcmp(o->addr, f.addr, f.addrlen) != 0)) continue;
        if (f.laddr && (strlen(o->laddr) != f.laddrlen ||
                        memcmp(o->laddr, f.laddr, f.laddrlen) != 0)) continue;
        if (f.id && o->id != (uint64_t)f.id) continue;
        if (f.type_normal == 0) continue;
        if (o == c && f.skipme) continue;
        if (o == c) {
            kill_self = 1;
        } else {
            client_close_async(o);
        }
        killed++;
    }
    if (f.old_form) {
        if (killed == 0) {
            reply_error(c, "ERR No such client");
        } else {
            reply_ok(c);
        }
    } else {
        reply_int(c, killed);
    }
    if (kill_self) {
        c->flags |= CLIENT_CLOSE_AFTER_REPLY;
    }
}

static void client_onoff_flag(struct client *c, uint32_t flag) {
    if (arg_is(c, 2, "on")) {
        c->flags |= flag;
    } else if (arg_is(c, 2, "off")) {
        c->flags &= ~flag;
    } else {
        reply_syntax_error(c);
        return;
    }
    reply_ok(c);
}

void cmd_client(struct client *c) {
    if (arg_is(c, 1, "id")) {
        reply_int(c, (long long)c->id);
    } else if (arg_is(c, 1, "setname")) {
        if (!valid_name(&c->argv[2])) {
            reply_error(c, bad_name);
            return;
        }
        set_name(c, &c->argv[2]);
        reply_ok(c);
    } else if (arg_is(c, 1, "getname")) {
        if (c->name) {
            reply_bulk_cstr(c, c->name);
        } else {
            reply_null(c);
        }
    } else if (arg_is(c, 1, "setinfo")) {
        char **dst;
        if (arg_is(c, 2, "lib-name")) {
            dst = &c->lib_name;
        } else if (arg_is(c, 2, "lib-ver")) {
            dst = &c->lib_ver;
        } else {
            int l = c->argv[2].len > 128 ? 128 : (int)c->argv[2].len;
            reply_errorf(c, "ERR Unrecognized option '%.*s'", l, c->argv[2].p);
            return;
        }
        if (!valid_name(&c->argv[3])) {
            int l = c->argv[2].len > 128 ? 128 : (int)c->argv[2].len;
            reply_errorf(c, "ERR %.*s cannot contain spaces, newlines or special characters.", l,
                         c->argv[2].p);
            return;
        }
        kv_free(*dst);
        *dst = c->argv[3].len ? kv_strndup(c->argv[3].p, c->argv[3].len) : NULL;
        reply_ok(c);
    } else if (arg_is(c, 1, "list")) {
        client_list(c);
    } else if (arg_is(c, 1, "info")) {
        char line[2048];
        size_t n = client_info_line(c, line, sizeof(line));
        reply_verbatim(c, line, n);
    } else if (arg_is(c, 1, "kill")) {
        client_kill(c);
    } else if (arg_is(c, 1, "no-evict")) {
        client_onoff_flag(c, CLIENT_NO_EVICT);
    } else if (arg_is(c, 1, "no-touch")) {
        client_onoff_flag(c, CLIENT_NO_TOUCH);
    } else if (arg_is(c, 1, "reply")) {
        if (arg_is(c, 2, "on")) {
            /* as Redis: ON clears OFF and a SKIP in force (this very command is
             * the one a preceding CLIENT REPLY SKIP skips), so +OK is sent */
            c->flags &= ~(CLIENT_REPLY_OFF | CLIENT_REPLY_SKIP);
            reply_ok(c);
        } else if (arg_is(c, 2, "off")) {
            c->flags |= CLIENT_REPLY_OFF;
        } else if (arg_is(c, 2, "skip")) {
            if (!(c->flags & CLIENT_REPLY_OFF)) {
                c->flags |= CLIENT_REPLY_SKIP_NEXT;
            }
        } else {
            reply_syntax_error(c);
        }
    } else if (arg_is(c, 1, "help")) {
        reply_help(c, client_help);
    } else {
        reply_subcommand_error(c);
    }
}
