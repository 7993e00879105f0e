/* engine/iterator_test.c: the merging iterator yields every version of every key
 * from all its children in internal-key order (user key ascending, newest first),
 * and seeks land on the first entry at or after the target. */
#include "engine/iterator.h"

#include <stdio.h>

#include "tests/test.h"

static void add(struct memtable *mt, const char *k, uint64_t seq, const char *v)
{
    memtable_add(mt, seq, LSM_KIND_VALUE, k, strlen(k), v, strlen(v));
}

/* Appends "key@seq " for each entry of it from its current position on. */
static void dump(struct iiter *it, char *out, size_t n)
{
    out[0] = '\0';
    for (; iiter_valid(it); iiter_next(it)) {
        size_t ul = it->key_len - IKEY_TRAILER_LEN;
        uint64_t seq = ikey_trailer_of(it->key, it->key_len) >> 8;
        size_t used = strlen(out);
        snprintf(out + used, n - used, "%.*s@%llu ", (int)ul, it->key,
                 (unsigned long long)seq);
    }
}

static void test_iterator_merge_orders_keys_then_newest_first(void)
{
    struct memtable *a = memtable_create(NULL), *b = memtable_create(NULL);
    struct memtable *c = memtable_create(NULL);
    add(a, "b", 4, "x");
    add(a, "d", 1, "x");
    add(b, "a", 2, "x");
    add(b, "b", 7, "x");
    add(b, "e", 3, "x");
    add(c, "b", 5, "x");
    add(c, "c", 6, "x");
    struct iiter *kids[3] = {iiter_memtable(a), iiter_memtable(b), iiter_memtable(c)};
    memtable_unref(a); /* the iterators hold their own references */
    memtable_unref(b);
    memtable_unref(c);
    struct iiter *m = iiter_merge(kids, 3);
    char out[256];
    iiter_seek_first(m);
    dump(m, out, sizeof(out));
    CHECK_EQ_STR(out, "a@2 b@7 b@5 b@4 c@6 d@1 e@3 ");
    char target[16];
    size_t tl = ikey_encode(target, "b", 1, 5, LSM_KIND_SEEK);
    iiter_seek(m, target, tl);
    dump(m, out, sizeof(out));
    CHECK_EQ_STR(out, "b@5 b@4 c@6 d@1 e@3 ");
    tl = ikey_encode(target, "bb", 2, LSM_MAX_SEQNO, LSM_KIND_SEEK);
    iiter_seek(m, target, tl);
    dump(m, out, sizeof(out));
    CHECK_EQ_STR(out, "c@6 d@1 e@3 ");
    tl = ikey_encode(target, "f", 1, LSM_MAX_SEQNO, LSM_KIND_SEEK);
    iiter_seek(m, target, tl);
    CHECK(!iiter_valid(m));
    CHECK_EQ_INT(iiter_status(m, NULL), LSM_OK);
    iiter_destroy(&m);
    CHECK(m == NULL);
}

static void test_iterator_merge_of_nothing_and_empty_children(void)
{
    struct iiter *m = iiter_merge(NULL, 0);
    iiter_seek_first(m);
    CHECK(!iiter_valid(m));
    iiter_destroy(&m);
    struct memtable *e = memtable_create(NULL), *one = memtable_create(NULL);
    add(one, "k", 9, "v");
    struct iiter *kids[2] = {iiter_memtable(e), iiter_memtable(one)};
    memtable_unref(e);
    memtable_unref(one);
    m = iiter_merge(kids, 2);
    char out[64];
    iiter_seek_first(m);
    dump(m, out, sizeof(out));
    CHECK_EQ_STR(out, "k@9 ");
    iiter_destroy(&m);
}

int main(void)
{
    TEST_RUN(test_iterator_merge_orders_keys_then_newest_first);
    TEST_RUN(test_iterator_merge_of_nothing_and_empty_children);
    TEST_MAIN_END();
}
