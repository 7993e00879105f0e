/* cluster/replica.c: one KVD.PEER request against the store. See replica.h. */
#include "cluster/replica.h"

#include <stdio.h>

void replica_handle(const struct replica_store *st, const struct kv_slice *argv, size_t argc,
                    struct msg_buf *out) {
    struct msg_request req;
    char err[128];
    if (msg_decode_request(argv, argc, &req, err, sizeof err) != MSG_OK) {
        msg_reply_error(out, err);
        return;
    }
    if (req.verb == MSG_WRITE) {
        if (st->observe) {
            st->observe(st->ctx, req.rec.v.hlc);
        }
        int rc = st->apply(st->ctx, req.db, req.keys[0].p, req.keys[0].len, &req.rec);
        if (rc < 0) {
            msg_reply_error(out, MSG_COMMAND " WRITE: the store failed");
        } else {
            msg_reply_write(out, rc);
        }
        return;
    }
    if (req.verb == MSG_MWRITE) {
        /* every record was checked by the decoder; a store error on any write
         * replaces the whole reply with one error (none of them acknowledged) */
        size_t mark = out->len;
        msg_reply_read_begin(out, req.nkeys);
        for (size_t i = 0; i < req.nkeys; i++) {
            const struct kv_slice *k = &req.keys[2 * i], *r = &req.keys[2 * i + 1];
            struct msg_record rec;
            msg_record_parse(r->p, r->len, &rec);
            if (st->observe) {
                st->observe(st->ctx, rec.v.hlc);
            }
            int rc = st->apply(st->ctx, req.db, k->p, k->len, &rec);
            if (rc < 0) {
                out->len = mark;
                msg_reply_error(out, MSG_COMMAND " MWRITE: the store failed");
                return;
            }
            msg_reply_write(out, rc);
        }
        return;
    }
    /* READ: a store error on any key replaces the whole reply with one error */
    size_t mark = out->len;
    msg_reply_read_begin(out, req.nkeys);
    for (size_t i = 0; i < req.nkeys; i++) {
        struct msg_item item = {0};
        int rc = st->read(st->ctx, req.db, req.keys[i].p, req.keys[i].len, &item.rec);
        if (rc < 0) {
            out->len = mark;
            msg_reply_error(out, MSG_COMMAND " READ: the store failed");
            return;
        }
        item.found = rc == 1;
        msg_reply_read_item(out, &item);
    }
}
