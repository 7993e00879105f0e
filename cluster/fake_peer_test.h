/* cluster/fake_peer_test.h: the server side of a fake peer, shared by the tests
 * that run links against listeners in their own process (cluster/link_test.c: a
 * scripted peer; cluster/cluster_test.c: runtimes behind small listeners): a
 * loopback listener, and a connection's input read and cut into RESP requests
 * with proto/resp.h. What each request gets, and the connection's other state,
 * are the including test's. Header-only (static functions): include it once, in
 * a test file.
 */
#ifndef KVD_CLUSTER_FAKE_PEER_TEST_H
#define KVD_CLUSTER_FAKE_PEER_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/resp.h"

/* A connection's input: the bytes read and not yet parsed, and the parser whose
 * argc/argv hold the request being handled. */
struct fp_in {
    char *in;
    size_t inlen, incap;
    struct resp_parser parser;
};

enum { FP_GO_ON = 0, FP_STOP = 1, FP_CLOSED = 2 };

static void fp_in_init(struct fp_in *r) {
    struct resp_limits lim = {512ll << 20, 1024 * 1024, 65536};
    memset(r, 0, sizeof *r);
    resp_parser_init(&r->parser, &lim);
}

static void fp_in_free(struct fp_in *r) {
    resp_parser_deinit(&r->parser);
    free(r->in);
    r->in = NULL;
}

/* Reads what fd has (one read, grown by 64 KiB when short of room) and calls
 * on_request(arg) for each complete request, with r->parser holding it, in order.
 * on_request returns FP_GO_ON; FP_STOP to leave the rest unparsed until the next
 * read; or FP_CLOSED when it closed the connection (r freed: nothing more is done
 * here). Returns 0; FP_CLOSED when on_request did; -1 when the socket reached EOF
 * or failed or the input is not RESP: the caller closes the connection. */
static int fp_in_read(struct fp_in *r, int fd, int (*on_request)(void *arg), void *arg) {
    if (r->incap - r->inlen < 65536) {
        r->incap = r->incap * 2 + 65536;
        r->in = realloc(r->in, r->incap);
    }
    ssize_t n = read(fd, r->in + r->inlen, r->incap - r->inlen);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return -1;
    }
    if (n < 0) {
        return 0;
    }
    r->inlen += (size_t)n;
    size_t pos = 0;
    while (pos < r->inlen) {
        size_t used = 0;
        int rc = resp_parse(&r->parser, r->in + pos, r->inlen - pos, &used);
        if (rc == RESP_AGAIN) {
            break;
        }
        if (rc != RESP_OK) {
            return -1;
        }
        pos += used;
        int next = r->parser.argc > 0 ? on_request(arg) : FP_GO_ON;
        if (next == FP_CLOSED) {
            return FP_CLOSED;
        }
        if (next == FP_STOP) {
            break;
        }
    }
    memmove(r->in, r->in + pos, r->inlen - pos);
    r->inlen -= pos;
    return 0;
}

/* A non-blocking listener on 127.0.0.1:port (0: any free port; else that port,
 * for restarts). Returns its fd and sets *bound to its port, or -1. */
static int fp_listen(int port, int *bound) {
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 64) != 0) {
        close(lfd);
        return -1;
    }
    socklen_t sl = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    *bound = ntohs(sa.sin_port);
    fcntl(lfd, F_SETFL, O_NONBLOCK);
    return lfd;
}

#endif
