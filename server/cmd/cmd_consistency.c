/* server/cmd/cmd_consistency.c: KVD CONSISTENCY, the per-connection read and write
 * quorums of cluster mode (issue 10): `KVD CONSISTENCY ONE|QUORUM|ALL` or `KVD
 * CONSISTENCY READ r WRITE w` (each level a number 1..N or ONE, QUORUM, ALL;
 * either part may be left out) answers +OK; with no argument it answers the
 * levels in force, "READ r WRITE w", in the form it accepts. The defaults are the
 * read-quorum and write-quorum directives (server.read_quorum, write_quorum;
 * CONFIG SET changes them for connections that set nothing); RESET restores
 * them. The coordinator (coordinate.c) reads them per command. Outside cluster
 * mode the command answers an error: there is nothing to set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/base/base.h"
#include "server/cmd/cmd.h"
#include "server/coord/coord.h"

/* argv[i] as a level for n replicas: 1..n, or -1 after replying. */
static int level_or_reply(struct client *c, int i, int n) {
    if (arg_is(c, i, "one")) {
        return 1;
    }
    if (arg_is(c, i, "quorum")) {
        return n / 2 + 1;
    }
    if (arg_is(c, i, "all")) {
        return n;
    }
    long long v;
    if (arg_ll_or_reply(c, i, &v) < 0) {
        return -1;
    }
    if (v < 1 || v > n) {
        reply_errorf(c, "ERR consistency level must be between 1 and %d (the replication "
                     "factor)", n);
        return -1;
    }
    return (int)v;
}

void kvd_consistency_command(struct client *c) {
    int n = coordinate_replicas();
    if (n <= 0) {
        reply_error(c, "ERR KVD CONSISTENCY needs cluster mode (cluster-enabled yes)");
        return;
    }
    if (c->argc == 2) {
        int r, w;
        coordinate_levels(c, &r, &w);
        char buf[64];
        snprintf(buf, sizeof(buf), "READ %d WRITE %d", r, w);
        reply_simple(c, buf);
        return;
    }
    int r = 0, w = 0;
    if (c->argc == 3 && !arg_is(c, 2, "read") && !arg_is(c, 2, "write")) {
        if (!arg_is(c, 2, "one") && !arg_is(c, 2, "quorum") && !arg_is(c, 2, "all")) {
            reply_syntax_error(c);
            return;
        }
        r = w = level_or_reply(c, 2, n);
    } else {
        for (int i = 2; i < c->argc; i += 2) {
            int *slot = arg_is(c, i, "read") ? &r : arg_is(c, i, "write") ? &w : NULL;
            if (slot == NULL || i + 1 >= c->argc || *slot != 0) {
                reply_syntax_error(c);
                return;
            }
            if ((*slot = level_or_reply(c, i + 1, n)) < 0) {
                return;
            }
        }
    }
    if (r < 0 || w < 0) {
        return;
    }
    if (r > 0) {
        c->cons_r = r;
    }
    if (w > 0) {
        c->cons_w = w;
    }
    reply_ok(c);
}
