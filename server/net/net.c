/* server/net/net.c: sockets and the event loop. Listeners on every `bind` address,
 * accepting (maxclients, protected mode), per-client read and write events and
 * reading into the query buffer (client_read), the loop with its before-sleep
 * step, the cron timer at `hz`, and signals.
 *
 * The loop is libevent's, driven one iteration at a time (EVLOOP_ONCE) so that
 * before each wait we: run the keyspace's fast expiry step, run the commands whose
 * wait ended (client_run_ready), let persistence end the turn's batch (mode
 * persistent: persist_before_sleep, before any reply goes out), write every
 * client's pending replies directly (one writev per client per turn; a write
 * event is armed only when the socket is full), and free the clients marked for
 * closing. Parsing and running commands are dispatch's (server/cmd/pipeline.c,
 * commands.c); a client's state is the client layer's (server/client/client.c),
 * which reaches the sockets through the hooks net_install_hooks registers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "server/net/net.h"

#define MAX_LISTENERS 16
#define MAX_ACCEPTS_PER_CALL 1000
#define WRITE_IOV 64
#define QBUF_CHUNK 16384               /* bytes read at a time, at least */
/* Output backlog above which a client's input is no longer read until it drains
 * below READ_RESUME: a client that pipelines and never reads cannot grow the
 * server without bound even when client-output-buffer-limit is 0. */
#define READ_PAUSE_ABOVE (256ULL * 1024 * 1024)
#define READ_RESUME_BELOW (64ULL * 1024 * 1024)

struct listener {
    int fd;
    struct event *ev;
};
static struct listener listeners[MAX_LISTENERS];
static int nlisteners;
static struct event *cron_ev;
static struct event *sig_evs[2];

static const char denied_msg[] =
    "-DENIED Redis is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted from "
    "the loopback interface. If you want to connect from external computers to Redis you may "
    "adopt one of the following solutions: 1) Just disable protected mode sending the command "
    "'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from "
    "the same host the server is running, however MAKE SURE Redis is not publicly accessible "
    "from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) "
    "Alternatively you can just disable the protected mode by editing the Redis configuration "
    "file, and setting the protected mode option to 'no', and then restarting the server. 3) "
    "If you started the server manually just for testing, restart it with the "
    "'--protected-mode no' option. 4) Set up an authentication password for the default user. "
    "NOTE: You only need to do one of the above things in order for the server to start "
    "accepting connections from the outside.\r\n";

/* ------------------------------------------------------------------------------
 * Addresses
 * ------------------------------------------------------------------------------ */
static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t cap) {
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%d", ip, ntohs(s->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%d", ip, ntohs(s->sin6_port));
    } else {
        snprintf(buf, cap, "?:0");
    }
}

static int is_loopback(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_LOOPBACK(&s->sin6_addr)) {
            return 1;
        }
        if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
            return s->sin6_addr.s6_addr[12] == 127;
        }
    }
    return 0;
}

static void set_keepalive(int fd, int interval) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &yes, sizeof(yes));
    int idle = interval, intvl = interval / 3, cnt = 3;
    if (intvl == 0) {
        intvl = 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

/* ------------------------------------------------------------------------------
 * Client events
 * ------------------------------------------------------------------------------ */
void client_read(struct client *c) {
    size_t want = resp_parser_want(&c->parser);
    size_t readlen = QBUF_CHUNK;
    if (want > readlen) {
        /* a big bulk is coming: read it in as few calls as possible, growing the
         * buffer geometrically so memory follows what has arrived, not what was
         * announced */
        size_t grow = c->qlen > QBUF_CHUNK ? c->qlen : QBUF_CHUNK;
        readlen = want < grow ? want : grow;
    }
    if (c->qcap - c->qlen < readlen) {
        size_t need = c->qlen + readlen;
        size_t cap = c->qcap ? c->qcap : QBUF_CHUNK;
        while (cap < need) {
            cap *= 2;
        }
        if (want > QBUF_CHUNK && cap > c->qlen + want) {
            cap = c->qlen + want;  /* exactly what the bulk needs, no slack */
        }
        c->qbuf = kv_realloc(c->qbuf, cap);
        c->qcap = cap;
    }
    ssize_t n = read(c->fd, c->qbuf + c->qlen, c->qcap - c->qlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            return;
        }
        server_log(LL_VERBOSE, "Reading from client: %s", strerror(errno));
        client_close_async(c);
        return;
    }
    if (n == 0) {
        server_log(LL_VERBOSE, "Client closed connection id=%llu addr=%s",
                   (unsigned long long)c->id, c->addr);
        client_close_async(c);
        return;
    }
    c->qlen += (size_t)n;
    if (c->qlen > c->qbuf_peak) {
        c->qbuf_peak = c->qlen;
    }
    server.stat_net_input_bytes += n;
    server.stat_total_reads++;
    c->last_interaction_ms = server.mstime;
    if ((long long)(c->qlen - c->qpos) > server.client_query_buffer_limit) {
        char info[1024];
        size_t il = client_info_line(c, info, sizeof(info));
        if (il > 0 && info[il - 1] == '\n') {
            info[il - 1] = '\0';
        }
        char head[64];
        size_t hl = c->qlen - c->qpos < 32 ? c->qlen - c->qpos : 32;
        kv_repr(head, sizeof(head), c->qbuf + c->qpos, hl);
        server_log(LL_WARNING,
                   "Closing client that reached max query buffer length: %s (qbuf initial bytes: %s)",
                   info, head);
        client_close_async(c);
        return;
    }
    client_process_input(c);
}

static void read_cb(evutil_socket_t fd, short what, void *arg) {
    struct client *c = arg;
    (void)fd;
    (void)what;
    client_read(c);
    if (!(c->flags & (CLIENT_CLOSE_ASAP | CLIENT_READ_PAUSED)) &&
        resp_out_pending(&c->out) > READ_PAUSE_ABOVE && c->read_ev != NULL) {
        event_del(c->read_ev);
        c->flags |= CLIENT_READ_PAUSED;
    }
}

static void write_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    net_write_now(arg);
}

static void net_client_install(struct client *c) {
    c->read_ev = event_new(server.base, c->fd, EV_READ | EV_PERSIST, read_cb, c);
    event_add(c->read_ev, NULL);
}

void net_client_uninstall(struct client *c) {
    if (c->read_ev) {
        event_free(c->read_ev);
        c->read_ev = NULL;
    }
    if (c->write_ev) {
        event_free(c->write_ev);
        c->write_ev = NULL;
    }
    c->flags &= ~CLIENT_WRITE_INSTALLED;
}

void net_stop_reading(struct client *c) {
    if (c->read_ev) {
        event_del(c->read_ev);
    }
}

static void arm_write(struct client *c) {
    if (c->flags & CLIENT_WRITE_INSTALLED) {
        return;
    }
    if (c->write_ev == NULL) {
        c->write_ev = event_new(server.base, c->fd, EV_WRITE | EV_PERSIST, write_cb, c);
    }
    event_add(c->write_ev, NULL);
    c->flags |= CLIENT_WRITE_INSTALLED;
}

static void disarm_write(struct client *c) {
    if (c->flags & CLIENT_WRITE_INSTALLED) {
        event_del(c->write_ev);
        c->flags &= ~CLIENT_WRITE_INSTALLED;
    }
}

int net_write_now(struct client *c) {
    struct iovec iov[WRITE_IOV];
    if (c->fd < 0 || (c->flags & CLIENT_CLOSE_ASAP)) {
        return -1;
    }
    if (client_output_held(c)) {
        disarm_write(c); /* written when released (client_release queues it) */
        return 0;
    }
    long long written = 0;
    while (resp_out_pending(&c->out) > 0) {
        int n = resp_out_iov(&c->out, iov, WRITE_IOV);
        if (n <= 0) {
            break;  /* a deferred length not filled in yet */
        }
        size_t want = 0;
        for (int i = 0; i < n; i++) {
            want += iov[i].iov_len;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                arm_write(c);
                break;
            }
            server_log(LL_VERBOSE, "Error writing to client: %s", strerror(errno));
            client_close_async(c);
            return -1;
        }
        resp_out_consume(&c->out, (size_t)w);
        written += w;
        server.stat_total_writes++;
        if ((size_t)w < want) {
            arm_write(c);  /* the socket is full: wait until it drains */
            break;
        }
    }
    if (written > 0) {
        server.stat_net_output_bytes += written;
        c->last_interaction_ms = server.mstime;
    }
    size_t pending = resp_out_pending(&c->out);
    if (pending == 0) {
        disarm_write(c);
        if (c->flags & CLIENT_CLOSE_AFTER_REPLY) {
            client_close_async(c);
            return -1;
        }
    }
    if ((c->flags & CLIENT_READ_PAUSED) && pending < READ_RESUME_BELOW) {
        c->flags &= ~CLIENT_READ_PAUSED;
        event_add(c->read_ev, NULL);
        if (c->qlen > c->qpos) {
            client_process_input(c);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------
 * Accepting
 * ------------------------------------------------------------------------------ */
static void reject_conn(int fd, const char *msg, size_t len) {
    ssize_t w = write(fd, msg, len);
    (void)w;
    close(fd);
    server.stat_rejected_conn++;
}

/* Over maxclients with the cluster on: is the connection from the host of a
 * peer this node knows (seeds, members)? */
static int from_peer_host(const struct sockaddr_storage *ss) {
    char ip[INET6_ADDRSTRLEN] = "";
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
    } else if (ss->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
    }
    return ip[0] && cluster_is_peer_host(server.cluster, ip);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg) {
    (void)what;
    (void)arg;
    for (int i = 0; i < MAX_ACCEPTS_PER_CALL; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                server_log(LL_WARNING, "Accepting client connection: %s", strerror(errno));
            }
            return;
        }
        static const char full_msg[] = "-ERR max number of clients reached\r\n";
        const char *refusal = NULL;
        int maybe_peer = 0;
        if (server.nclients >= server.maxclients) {
            refusal = full_msg;
            maybe_peer = server.cluster && from_peer_host(&peer);
        } else if (server.protected_mode &&
                   (server.requirepass == NULL || !server.requirepass[0]) &&
                   !is_loopback(&peer)) {
            refusal = denied_msg;
            maybe_peer = server.cluster != NULL; /* a new node has no known address */
        }
        /* a cluster peer arrives on this port too and is exempt: a connection that
         * may be one gets the refusal at its first command unless that is
         * KVD.PEER (process_command); a peer that fails the secret is closed */
        if (refusal && !maybe_peer) {
            reject_conn(fd, refusal, strlen(refusal));
            continue;
        }
        int yes = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof(yes));
        if (server.tcp_keepalive > 0) {
            set_keepalive(fd, server.tcp_keepalive);
        }
        struct client *c = client_create(fd);
        c->peer_probation = refusal;
        format_addr(&peer, c->addr, sizeof(c->addr));
        struct sockaddr_storage local;
        socklen_t llen = sizeof(local);
        if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0) {
            format_addr(&local, c->laddr, sizeof(c->laddr));
        }
        net_client_install(c);
        server.stat_numconnections++;
        server_log(LL_VERBOSE, "Accepted %s", c->addr);
    }
}

/* ------------------------------------------------------------------------------
 * Listeners
 * ------------------------------------------------------------------------------ */
static int listen_one(const char *addr, int port, int optional, struct listener *out,
                      int *nout, char *err, size_t errlen) {
    const char *host = addr;
    if (strcmp(addr, "*") == 0) {
        host = "0.0.0.0";
    } else if (strcmp(addr, "::*") == 0) {
        host = "::";
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0) {
        if (optional) {
            return 0;
        }
        snprintf(err, errlen, "Could not create server TCP listening socket %s:%d: %s", addr,
                 port, gai_strerror(rc));
        return -1;
    }
    int ok = 0, lasterrno = 0;
    char lasterr[128] = "no address";
    for (struct addrinfo *ai = res; ai != NULL && !ok; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            lasterrno = errno;
            snprintf(lasterr, sizeof(lasterr), "%s", strerror(errno));
            continue;
        }
        int yes = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
        if (ai->ai_family == AF_INET6) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &yes, sizeof(yes));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(fd, server.tcp_backlog) != 0) {
            lasterrno = errno;
            snprintf(lasterr, sizeof(lasterr), "%s", strerror(errno));
            close(fd);
            continue;
        }
        out[*nout].fd = fd;
        out[*nout].ev = NULL;
        (*nout)++;
        ok = 1;
    }
    freeaddrinfo(res);
    if (!ok) {
        /* "-addr": skipped when the system does not have it, as Redis */
        if (optional && (lasterrno == EADDRNOTAVAIL || lasterrno == EAFNOSUPPORT ||
                         lasterrno == EPROTONOSUPPORT || lasterrno == ESOCKTNOSUPPORT ||
                         lasterrno == EPFNOSUPPORT)) {
            return 0;
        }
        snprintf(err, errlen, "Could not create server TCP listening socket %s:%d: %s", addr,
                 port, lasterr);
        return -1;
    }
    return 0;
}

static int bound_port_of(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Opens listeners for every bind address into out; all or nothing. */
static int open_listeners(struct listener *out, int *nout, int *port_out, char *err,
                          size_t errlen) {
    char **addrs = NULL;
    int naddrs = kv_split_args(server.bind ? server.bind : "", &addrs);
    int port = server.port;
    *nout = 0;
    if (naddrs <= 0) {
        kv_free(addrs);
        snprintf(err, errlen, "bind: no address to listen on");
        return -1;
    }
    for (int i = 0; i < naddrs && *nout < MAX_LISTENERS; i++) {
        const char *a = addrs[i];
        int optional = a[0] == '-';
        if (optional) {
            a++;
        }
        int before = *nout;
        if (listen_one(a, port, optional, out, nout, err, errlen) != 0) {
            for (int k = 0; k < *nout; k++) {
                close(out[k].fd);
            }
            *nout = 0;
            kv_free(addrs);
            return -1;
        }
        if (port == 0 && *nout > before) {
            port = bound_port_of(out[before].fd);  /* the other addresses use it too */
        }
    }
    kv_free(addrs);
    *port_out = port;
    return 0;
}

static void install_listeners(struct listener *ls, int n) {
    for (int i = 0; i < n; i++) {
        ls[i].ev = event_new(server.base, ls[i].fd, EV_READ | EV_PERSIST, accept_cb, NULL);
        event_add(ls[i].ev, NULL);
    }
}

int net_listen(char *err, size_t errlen) {
    int port = 0;
    if (open_listeners(listeners, &nlisteners, &port, err, errlen) != 0) {
        return -1;
    }
    net_bound_port = port;
    install_listeners(listeners, nlisteners);
    return 0;
}

void net_close_listeners(void) {
    for (int i = 0; i < nlisteners; i++) {
        if (listeners[i].ev) {
            event_free(listeners[i].ev);
        }
        close(listeners[i].fd);
    }
    nlisteners = 0;
}

int net_rebind(char *err, size_t errlen) {
    if (server.base == NULL) {
        return 0;  /* not started yet: main opens the listeners */
    }
    struct listener fresh[MAX_LISTENERS];
    int nfresh = 0, port = 0;
    /* The new set may overlap the old one (same port, one more address): close
     * first, then open. On failure the caller (config_set_pairs) restores the old
     * values and calls us again, which reopens the old set. */
    net_close_listeners();
    if (open_listeners(fresh, &nfresh, &port, err, errlen) != 0) {
        return -1;
    }
    memcpy(listeners, fresh, sizeof(fresh[0]) * (size_t)nfresh);
    nlisteners = nfresh;
    net_bound_port = port;
    install_listeners(listeners, nlisteners);
    return 0;
}

/* ------------------------------------------------------------------------------
 * The loop
 * ------------------------------------------------------------------------------ */
static void before_sleep(void) {
    call_batch_end();
    kv_time_sync();
    ks_active_expire_cycle(1);
    client_run_ready(); /* commands whose wait ended: before the batch is written */
    if (server.cluster) {
        cluster_send_queued(server.cluster); /* this turn's peer requests, one message each */
    }
    if (persist_on()) {
        persist_before_sleep(); /* before any reply goes out: see persist.h */
    }
    client_handle_pending_writes();
    client_free_pending_closes();
}

static void server_cron(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    kv_time_sync();
    kv_used_memory_refresh();
    size_t used = kv_used_memory();
    if (used > server.stat_peak_memory) {
        server.stat_peak_memory = used;
    }
    ks_active_expire_cycle(0);
    if (persist_on()) {
        persist_cron();
    }
    server_cluster_cron();
    client_cron();
    ks_cron();
    stats_cron();
    if (server.shutdown_asap) {
        event_base_loopbreak(server.base);
    }
}

void net_reset_cron(void) {
    if (server.base == NULL) {
        return;
    }
    if (cron_ev == NULL) {
        cron_ev = event_new(server.base, -1, EV_PERSIST, server_cron, NULL);
    } else {
        event_del(cron_ev);
    }
    int hz = server.hz > 0 ? server.hz : 10;
    struct timeval tv = {.tv_sec = 0, .tv_usec = 1000000 / hz};
    if (hz == 1) {
        tv.tv_sec = 1;
        tv.tv_usec = 0;
    }
    event_add(cron_ev, &tv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    (void)arg;
    if (server.shutdown_asap && sig == SIGINT) {
        server_log(LL_WARNING, "You insist... exiting now.");
        _exit(1);
    }
    server_log(LL_WARNING, "Received %s scheduling shutdown...",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_request_shutdown(1);
}

void net_main_loop(void) {
    net_reset_cron();
    sig_evs[0] = evsignal_new(server.base, SIGTERM, signal_cb, NULL);
    sig_evs[1] = evsignal_new(server.base, SIGINT, signal_cb, NULL);
    event_add(sig_evs[0], NULL);
    event_add(sig_evs[1], NULL);
    while (!server.shutdown_asap) {
        before_sleep();
        /* clients made ready after the drain began run in the next turn: no sleep */
        event_base_loop(server.base,
                        client_ready_pending() ? EVLOOP_ONCE | EVLOOP_NONBLOCK : EVLOOP_ONCE);
    }
    /* the last replies (e.g. to pipelined commands before SHUTDOWN) go out, once
     * stored (a held reply waits for the close's WAL sync: persist_close) */
    if (persist_on()) {
        persist_before_sleep();
    }
    client_handle_pending_writes();
    client_free_pending_closes();
    for (int i = 0; i < 2; i++) {
        event_free(sig_evs[i]);
        sig_evs[i] = NULL;
    }
    if (cron_ev) {
        event_free(cron_ev);
        cron_ev = NULL;
    }
}

void net_install_hooks(void) {
    client_hooks.stop_reading = net_stop_reading;
    client_hooks.write_now = net_write_now;
    client_hooks.uninstall = net_client_uninstall;
}
