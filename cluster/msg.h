/* cluster/msg.h: the internal messages of cluster part 1 between a coordinator and
 * a replica, as structs, encoded to the argv of one command and decoded back, and
 * the replies as RESP2 bytes (replica side) decoded from hiredis's redisReply
 * (coordinator side). Sending, batching and timeouts are the link's (link.c);
 * reading and applying records are the store's.
 *
 * Wire format (a RESP array of bulk strings sent as a command; one command name so
 * the verbs never collide with Redis's and never appear in COMMAND):
 *
 *   KVD.PEER READ  db key [key ...]       -> array of nkeys items: nil | record
 *   KVD.PEER WRITE db key record          -> :1 applied | :0 already newer or equal
 *   KVD.PEER MWRITE db key record [key record ...]
 *                                         -> array of npairs items, :1 | :0 each
 *                                            (a coordinator's writes to one replica
 *                                            in one loop turn, in one message)
 *   errors                                -> -ERR text (not an acknowledgement)
 *
 *   db     := decimal 0..65535, no sign, no leading zero
 *   record := hlc:u64be node:u32be flags:u8 expire_at:u64be value[rest]
 *             flags: bit 0 = tombstone (deleted), bit 1 = field records
 *             (MSG_REC_FIELDS: the value is a big hash's fields, cluster/fields.h;
 *             never with bit 0), other bits must be 0;
 *             expire_at: Unix ms, 0 = none, < 2^63; value: the store's opaque
 *             envelope (empty for a tombstone)
 *
 * A nil item in a READ reply means the replica holds nothing for the key (neither a
 * value nor a tombstone). Hinted handoff reuses WRITE. Every count and length is
 * checked: at most MSG_MAX_KEYS keys, a record at least MSG_REC_HDR bytes; a
 * malformed message is MSG_INVALID with a reason, never a crash or an allocation
 * sized by the peer.
 *
 * Pure code: no I/O, no globals.
 */
#ifndef KVD_CLUSTER_MSG_H
#define KVD_CLUSTER_MSG_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/resp.h"
#include "proto/version.h"

#define MSG_COMMAND "KVD.PEER"
#define MSG_MAX_KEYS 1024 /* most keys in one READ */
#define MSG_REC_HDR 21    /* bytes of a record before its value */
#define MSG_MAX_DB 65535
#define MSG_REC_DELETED 0x01u
#define MSG_REC_FIELDS 0x02u  /* the value lists a big hash's field records (fields.h) */

enum msg_status {
    MSG_OK = 0,
    MSG_INVALID = -1, /* malformed message or reply (err says what) */
    MSG_REMOTE = -2,  /* the peer answered an error (err holds its text) */
};

enum msg_verb { MSG_READ = 1, MSG_WRITE = 2, MSG_MWRITE = 3 };

/* A stored record as it travels: a value or a tombstone with its version. */
struct msg_record {
    struct kv_version v; /* HLC timestamp + writer tag */
    int deleted;         /* 1: tombstone */
    uint64_t expire_at;  /* Unix ms, 0 = none */
    const char *val;     /* envelope bytes, borrowed (NULL when vlen is 0) */
    size_t vlen;
    int fields;          /* 1: val is a big hash's field records (fields.h), not an
                            envelope (flags bit MSG_REC_FIELDS) */
};

/* Big-endian fields of 1..8 bytes, the byte order of every cluster wire form. */
static inline void msg_put_be(unsigned char *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) {
        p[i] = (unsigned char)(v >> (8 * (bytes - 1 - i)));
    }
}

static inline uint64_t msg_get_be(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* One item of a READ reply. */
struct msg_item {
    int found;             /* 0: the replica holds nothing for the key */
    struct msg_record rec; /* when found */
};

/* A decoded request; every pointer borrows from the argv given to the decoder. */
struct msg_request {
    int verb;                    /* enum msg_verb */
    unsigned db;                 /* 0..MSG_MAX_DB */
    const struct kv_slice *keys; /* READ: nkeys keys; WRITE: the one key; MWRITE:
                                    nkeys (key, record) pairs, 2 * nkeys slices,
                                    each record checked (msg_record_parse) */
    size_t nkeys;
    struct msg_record rec;       /* WRITE */
};

/* One write of an MWRITE. */
struct msg_write {
    const char *key;
    size_t klen;
    const struct msg_record *rec;
};

/* An encoded request: argc arguments for redisAsyncCommandArgv. Owned; free with
 * msg_argv_free. The first argument is MSG_COMMAND. */
struct msg_argv {
    int argc;
    const char **argv;
    size_t *argvlen;
    char *buf; /* numbers and the record bytes the argv points into */
};

/* A growable byte buffer for replies. Free with msg_buf_free. */
struct msg_buf {
    char *p;
    size_t len, cap;
};

/* READ db keys[0..n): n is 1..MSG_MAX_KEYS (asserted by the caller), db <= MSG_MAX_DB. */
void msg_encode_read(struct msg_argv *out, unsigned db, const struct kv_slice *keys,
                     size_t n);
/* WRITE db key record; the record's value is copied into out->buf. */
void msg_encode_write(struct msg_argv *out, unsigned db, const char *key, size_t klen,
                      const struct msg_record *rec);
/* MWRITE db (key, record) for w[0..n): n is 1..MSG_MAX_KEYS; values copied. */
void msg_encode_mwrite(struct msg_argv *out, unsigned db, const struct msg_write *w, size_t n);
void msg_argv_free(struct msg_argv *a);

/* 1 when s is word, in any case (a peer verb). */
int msg_word_is(struct kv_slice s, const char *word);
/* A db argument: decimal 0..MSG_MAX_DB, no sign, no leading zero. 0, or -1. */
int msg_parse_db(struct kv_slice s, unsigned *db);

/* Decodes argv[0..argc) (argv[0] is MSG_COMMAND, any case) into *out, borrowing from
 * argv. Returns MSG_OK or MSG_INVALID with err ("KVD.PEER READ: bad db"). */
int msg_decode_request(const struct kv_slice *argv, size_t argc, struct msg_request *out,
                       char *err, size_t errlen);

/* Record bytes (MSG_REC_HDR header then the value). */
void msg_record_header(const struct msg_record *rec, unsigned char out[MSG_REC_HDR]);
/* Parses p[0..len) as record bytes, *out borrowing the value from p. MSG_OK or
 * MSG_INVALID (too short, unknown flag bits, expire_at >= 2^63, a tombstone with
 * a value, a FIELDS record that is a tombstone or whose value fields_check
 * refuses). */
int msg_record_parse(const char *p, size_t len, struct msg_record *out);

/* Replies in RESP2, appended to b. A READ reply is items[0..n), or written one item
 * at a time: msg_reply_read_begin(b, n) then exactly n msg_reply_read_item. */
void msg_reply_read(struct msg_buf *b, const struct msg_item *items, size_t n);
void msg_reply_read_begin(struct msg_buf *b, size_t n);
void msg_reply_read_item(struct msg_buf *b, const struct msg_item *item);
void msg_reply_write(struct msg_buf *b, int applied);
/* -ERR text; CR and LF in text become spaces. */
void msg_reply_error(struct msg_buf *b, const char *text);
/* The RESP2 bytes of a request (what hiredis would send): tests and the simulator. */
void msg_argv_to_resp(const struct msg_argv *a, struct msg_buf *b);
/* Appends n bytes (p may be NULL when n is 0), growing the buffer by doubling. */
void msg_buf_put(struct msg_buf *b, const void *p, size_t n);
/* Appends a RESP bulk string's header "$<n>\r\n" (its n bytes and CRLF follow). */
void msg_buf_bulk_header(struct msg_buf *b, size_t n);
/* Appends p[0..n) as a RESP bulk string. */
void msg_buf_bulk(struct msg_buf *b, const void *p, size_t n);
/* Writes the formatted text to err (when err and errlen) and returns code: the
 * decoders' "fail with why" step. */
int msg_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void msg_buf_free(struct msg_buf *b);

/* Decodes a READ reply for nkeys keys into items[0..nkeys), borrowing values from r.
 * MSG_OK, MSG_REMOTE (an error reply: err gets its text) or MSG_INVALID (not an
 * array of nkeys nil-or-record items). */
int msg_decode_read_reply(const redisReply *r, size_t nkeys, struct msg_item *items,
                          char *err, size_t errlen);
/* Decodes a WRITE reply: MSG_OK with *applied 0/1, MSG_REMOTE or MSG_INVALID. */
int msg_decode_write_reply(const redisReply *r, int *applied, char *err, size_t errlen);
/* Decodes an MWRITE reply for n writes: MSG_OK with applied[0..n) 0/1, MSG_REMOTE
 * (an error reply) or MSG_INVALID (not an array of n :0 / :1). */
int msg_decode_mwrite_reply(const redisReply *r, size_t n, int *applied, char *err,
                            size_t errlen);

#endif
