/* server/cmd/cmd_kvd.c: the cluster's commands on a node: KVD NODES | RING | KEYNODES
 * (node-local views of cluster/cluster.h's runtime, server.cluster) and the peers'
 * verb KVD.PEER (authentication with cluster-secret, then membership, replica reads
 * and writes: cluster_peer_command).
 *
 * KVD.PEER has no row in the command table: process_command hands it here before
 * the table is consulted when cluster-enabled is yes, so it never appears in COMMAND
 * (COUNT, INFO, LIST unchanged), skips MULTI queueing, MONITOR, the slow log and
 * commandstats, and runs while LOADING and before AUTH (the secret is its
 * authentication). With cluster-enabled no it is an unknown command, exactly.
 * A connection that proved the secret becomes a peer (CLIENT_PEER): exempt from
 * `timeout` and the client output limits (client.c).
 *
 * KVD CONSISTENCY belongs to the coordinator (server/cmd/cmd_consistency.c,
 * kvd_consistency_command); a weak stand-in here answers an error until that file
 * is linked in.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cluster/cluster.h"
#include "server/cmd/cmd.h"

void kvd_peer_command(struct client *c) {
    if (c->peer == NULL) {
        c->peer = cluster_peer_new(server.cluster);
    }
    kv_time_sync(); /* a replica's apply judges expiry by server.mstime */
    int is_write = c->argc >= 2 && c->argv[1].len == 5 &&
                   strncasecmp(c->argv[1].p, "write", 5) == 0 &&
                   cluster_peer_authenticated(c->peer);
    int is_mwrite = c->argc >= 2 && c->argv[1].len == 6 &&
                    strncasecmp(c->argv[1].p, "mwrite", 6) == 0 &&
                    cluster_peer_authenticated(c->peer);
    struct msg_buf out = {0};
    size_t out0 = resp_out_pending(&c->out);
    client_call_begin(c); /* the reply is a span persistence may hold or rewrite */
    int close_after = cluster_peer_command(server.cluster, c->peer, c->argv, (size_t)c->argc,
                                           &out);
    if (is_write && persist_on() && out.len == 4 &&
        (memcmp(out.p, ":1\r\n", 4) == 0 || memcmp(out.p, ":0\r\n", 4) == 0)) {
        /* applied (msg.h ":1"), or a newer version held (":0", which may itself be
         * in this turn's batch or not yet synced): the acknowledgement waits until
         * what the store holds is stored (durable with appendfsync always), or
         * becomes -MISCONF. With nothing new in the batch it waits for the last
         * write's sync (persist_write.c commit_nothing). */
        persist_client_wrote(c);
    } else if (is_mwrite && persist_on() && out.len > 0 && out.p[0] == '*' &&
               memmem(out.p, out.len, ":1\r\n", 4) != NULL) {
        persist_client_wrote(c); /* the same for a batch with at least one applied */
    }
    reply_raw(c, out.p, out.len);
    client_call_end(c, out0);
    if (persist_on()) {
        persist_after_call();
    }
    msg_buf_free(&out);
    if (cluster_peer_authenticated(c->peer)) {
        c->flags |= CLIENT_PEER;
        c->peer_probation = NULL;
    }
    if (close_after) {
        c->flags |= CLIENT_CLOSE_AFTER_REPLY;
    }
}

void kvd_peer_forget(struct client *c) {
    if (c->peer) {
        cluster_peer_free(c->peer);
        c->peer = NULL;
    }
}

__attribute__((weak)) void kvd_consistency_command(struct client *c) {
    reply_error(c, "ERR KVD CONSISTENCY is not available in this build");
}

/* KVD REPAIR [FULL] */
static void kvd_repair(struct client *c) {
    int full = c->argc == 3 && arg_is(c, 2, "full");
    if (c->argc > 3 || (c->argc == 3 && !full)) {
        reply_error(c, "ERR syntax error: KVD REPAIR [FULL]");
        return;
    }
    const char *why = NULL;
    if (!cluster_ready(server.cluster, &why)) {
        reply_errorf(c, "CLUSTERDOWN kvd: %s", why);
        return;
    }
    reply_int(c, (long long)cluster_repair(server.cluster, full));
}

/* KVD LEAVE */
static void kvd_leave(struct client *c) {
    const char *why = NULL;
    if (cluster_leave(server.cluster, &why) != 0) {
        reply_errorf(c, "ERR kvd: cannot leave: %s", why);
        return;
    }
    reply_ok(c);
}

/* KVD CLEANUP: drops the keys of the ranges this node no longer replicates, in
 * the background (server/store/cleanup.h); answers how many ranges go. */
static void kvd_cleanup(struct client *c) {
    struct cluster_span *keep = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (cluster_kept_ranges(server.cluster, &keep, &n, &why) != 0) {
        reply_errorf(c, "ERR kvd: cannot clean up: %s", why);
        return;
    }
    struct store_span *ks = kv_malloc((n ? n : 1) * sizeof *ks);
    for (size_t i = 0; i < n; i++) {
        ks[i] = (struct store_span){keep[i].from, keep[i].to};
    }
    free(keep);
    char err[128];
    long r = store_cleanup_start(ks, n, err, sizeof err);
    kv_free(ks);
    if (r < 0) {
        reply_errorf(c, "ERR kvd: cannot clean up: %s", err);
        return;
    }
    reply_int(c, r);
}

/* 1 when the kept ranges of the running cleanup are still those of the ring */
static int cleanup_still_valid(const char **why) {
    struct cluster_span *keep = NULL;
    size_t n = 0, m = 0;
    if (cluster_kept_ranges(server.cluster, &keep, &n, why) != 0) {
        return 0;
    }
    const struct store_span *had = store_cleanup_kept(&m);
    int same = n == m;
    for (size_t i = 0; same && i < n; i++) {
        same = keep[i].from == had[i].from && keep[i].to == had[i].to;
    }
    free(keep);
    if (!same) {
        *why = "the ranges this node replicates changed";
    }
    return same;
}

void kvd_cleanup_cron(void) {
    if (!store_cleanup_running()) {
        return;
    }
    struct store_cleanup_stats st;
    store_cleanup_stats(&st);
    const char *why = NULL;
    if (st.state == CLEANUP_SWEEPING && !cleanup_still_valid(&why)) {
        store_cleanup_abort(why);
    }
    store_cleanup_step();
}

/* KVD JOIN <host:port> */
static void kvd_join(struct client *c) {
    int holds_keys = 0;
    for (int db = 0; db < server.databases && !holds_keys; db++) {
        holds_keys = store_db_size(db) > 0;
    }
    const char *why = NULL;
    if (cluster_join(server.cluster, c->argv[2].p, c->argv[2].len, holds_keys, &why) != 0) {
        reply_errorf(c, "ERR kvd: cannot join: %s", why);
        return;
    }
    reply_ok(c);
}

/* KVD REMOVENODE <id> */
static void kvd_removenode(struct client *c) {
    const char *why = NULL;
    if (cluster_remove_node(server.cluster, c->argv[2].p, c->argv[2].len, &why) != 0) {
        reply_errorf(c, "ERR kvd: cannot remove %.*s: %s",
                     (int)(c->argv[2].len > 64 ? 64 : c->argv[2].len), c->argv[2].p, why);
        return;
    }
    reply_ok(c);
}

static const char *const kvd_help[] = {
    "KVD <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "NODES",
    "    One line per cluster member: <id> <ip:port> <state> <share>% phi=<phi> gen=<n>",
    "    status=<status> [myself]; state up, suspect or down (phi accrual, or link down);",
    "    status joining, normal, leaving or removing (KVD REMOVENODE, cluster-replace).",
    "RING",
    "    One line per token of the ring: <token> <id>, in token order.",
    "KEYNODES <key>",
    "    The key's replicas in ring order: <id> <ip:port> per line.",
    "LEAVE",
    "    Hands this node's ranges to the members that replicate them without it (status",
    "    leaving, progress in NODES and INFO), then leaves the ring (status left): the",
    "    node then answers CLUSTERDOWN until it is stopped.",
    "CLEANUP",
    "    Drops, in the background, the keys of the ranges this node no longer replicates",
    "    (after a join); returns how many ranges. Progress in INFO kvdcluster (cleanup_*).",
    "JOIN <host:port>",
    "    This node, alone (cluster-enabled, no seeds) and empty, joins the cluster of",
    "    <host:port> as with cluster-join: balanced tokens, status joining, streaming,",
    "    then normal. Returns at once; progress in NODES and INFO.",
    "REMOVENODE <id>",
    "    Removes member <id>, which must be down (phi), from the ring: each range it",
    "    replicated is pulled by the member that gains it from the surviving replicas,",
    "    then <id> leaves (status left). Returns at once; progress in NODES and INFO.",
    "REPAIR [FULL]",
    "    Queues a Merkle repair of the ranges this node replicates (FULL: every range of",
    "    the ring); returns how many ranges. Progress in INFO kvdcluster (repair_*).",
    "CONSISTENCY [ONE|QUORUM|ALL|READ <r> WRITE <w>]",
    "    Shows or sets this connection's read and write quorums.",
    "HELP",
    "    Prints this help.",
    NULL,
};

void cmd_kvd(struct client *c) {
    if (arg_is(c, 1, "help")) {
        reply_help(c, kvd_help);
        return;
    }
    if (arg_is(c, 1, "consistency")) {
        kvd_consistency_command(c);
        return;
    }
    if (server.cluster == NULL) {
        reply_error(c, "ERR cluster support is disabled (cluster-enabled no)");
        return;
    }
    if (arg_is(c, 1, "repair")) {
        kvd_repair(c);
        return;
    }
    if (arg_is(c, 1, "cleanup")) {
        kvd_cleanup(c);
        return;
    }
    if (arg_is(c, 1, "leave")) {
        kvd_leave(c);
        return;
    }
    if (arg_is(c, 1, "join")) {
        kvd_join(c);
        return;
    }
    if (arg_is(c, 1, "removenode")) {
        kvd_removenode(c);
        return;
    }
    struct msg_buf b = {0};
    if (arg_is(c, 1, "nodes")) {
        cluster_nodes_text(server.cluster, &b);
    } else if (arg_is(c, 1, "ring")) {
        cluster_ring_text(server.cluster, &b);
    } else { /* keynodes: the dispatcher checked the subcommand and its arity */
        const char *why = NULL;
        if (!cluster_ready(server.cluster, &why)) {
            reply_errorf(c, "CLUSTERDOWN kvd: %s", why);
            return;
        }
        cluster_key_nodes(server.cluster, c->argv[2].p, c->argv[2].len, &b);
    }
    reply_bulk(c, b.p ? b.p : "", b.len);
    msg_buf_free(&b);
}
