/* Unit tests of node/store.c on a real RocksDB in a fresh temporary directory:
 * point reads and writes through a batch and its read-your-writes overlay,
 * savepoints (stacked, released, rolled back), atomic batch writes, prefix
 * iterators (forward, backward, bounded, over pending writes, on a snapshot),
 * snapshot isolation, durability across close and reopen, and the
 * STORE_NOT_FOUND convention. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir.h"

#include "errors.h"
#include "store.h"

/* A fresh database in its own temporary directory, removed afterwards. */
struct store_fixture {
    char dir[PATH_MAX];
    struct store *s;
};

static void fixture_open(struct store_fixture *f)
{
    char *err = NULL;
    int rv = store_open(f->dir, &f->s, &err);
    if (rv != 0) {
        fprintf(stderr, "store_open: %s\n", err != NULL ? err : "?");
        free(err);
    }
    assert_int_equal(rv, 0);
    assert_non_null(f->s);
}

static void fixture_reopen(struct store_fixture *f)
{
    store_close(f->s);
    f->s = NULL;
    fixture_open(f);
}

static int setup(void **state)
{
    struct store_fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(tmpdir_make(f->dir, sizeof(f->dir), "test_store"), 0);
    fixture_open(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct store_fixture *f = *state;
    store_close(f->s);
    tmpdir_remove(f->dir);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------------------
 * Helpers: string keys and values */

static void bput(struct store_batch *b, const char *k, const char *v)
{
    store_batch_put(b, k, strlen(k), v, strlen(v));
}

static void bdel(struct store_batch *b, const char *k)
{
    store_batch_delete(b, k, strlen(k));
}

/* Commits one key/value. */
static void commit_put(struct store *s, const char *k, const char *v)
{
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(s, &b), 0);
    bput(b, k, v);
    assert_int_equal(store_batch_write(s, b, false), 0);
    store_batch_destroy(b);
}

/* Asserts that the committed value (or the snapshot's) of k is v, or that k
 * is absent when v is NULL. */
static void expect_get(struct store *s, const struct store_snapshot *snap, const char *k,
                       const char *v)
{
    void *val = NULL;
    size_t vlen = 0;
    int rv = store_get(s, snap, k, strlen(k), &val, &vlen);
    if (v == NULL) {
        assert_int_equal(rv, STORE_NOT_FOUND);
        assert_null(val);
        return;
    }
    assert_int_equal(rv, 0);
    assert_int_equal(vlen, strlen(v));
    assert_memory_equal(val, v, vlen);
    free(val);
}

/* The same through a batch (its pending writes over the database). */
static void expect_bget(struct store_batch *b, const char *k, const char *v)
{
    void *val = NULL;
    size_t vlen = 0;
    int rv = store_batch_get(b, k, strlen(k), &val, &vlen);
    if (v == NULL) {
        assert_int_equal(rv, STORE_NOT_FOUND);
        assert_null(val);
        return;
    }
    assert_int_equal(rv, 0);
    assert_int_equal(vlen, strlen(v));
    assert_memory_equal(val, v, vlen);
    free(val);
}

/* Walks an iterator over `prefix` and compares the keys seen with the
 * space-separated list `want`. */
static void expect_iter(struct store *s, struct store_batch *b, const struct store_snapshot *snap,
                        const char *prefix, bool backward, const char *want)
{
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(s, b, snap, prefix, strlen(prefix), &it), 0);
    char seen[512] = "";
    size_t used = 0;
    if (backward) {
        store_iter_seek_last(it);
    } else {
        store_iter_seek_first(it);
    }
    for (; store_iter_valid(it); backward ? store_iter_prev(it) : store_iter_next(it)) {
        size_t klen = 0;
        const char *k = store_iter_key(it, &klen);
        assert_true(klen >= strlen(prefix));
        assert_memory_equal(k, prefix, strlen(prefix));
        assert_true(used + klen + 2 < sizeof(seen));
        if (used > 0) {
            seen[used++] = ' ';
        }
        memcpy(seen + used, k, klen);
        used += klen;
        seen[used] = '\0';
    }
    assert_int_equal(store_iter_status(it), 0);
    store_iter_destroy(it);
    assert_string_equal(seen, want);
}

/* ---------------------------------------------------------------------------
 * Point reads and writes */

static void test_store_get_missing_is_not_found(void **state)
{
    struct store_fixture *f = *state;
    void *val = (void *)&val;
    size_t vlen = 1234;
    assert_int_equal(store_get(f->s, NULL, "nope", 4, &val, &vlen), STORE_NOT_FOUND);
    /* Not found is not an error and leaves the outputs alone. */
    assert_true(val == (void *)&val);
    assert_int_equal(vlen, 1234);
    assert_true(STORE_NOT_FOUND > 0);

    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    assert_int_equal(store_batch_get(b, "nope", 4, &val, &vlen), STORE_NOT_FOUND);
    assert_true(val == (void *)&val);
    store_batch_destroy(b);
}

static void test_store_batch_put_get_delete_overlay(void **state)
{
    struct store_fixture *f = *state;
    commit_put(f->s, "old", "committed");

    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    assert_int_equal(store_batch_count(b), 0);
    bput(b, "k1", "one");
    bput(b, "k2", "two");
    /* The batch reads its own writes; the database does not see them yet. */
    expect_bget(b, "k1", "one");
    expect_bget(b, "k2", "two");
    expect_get(f->s, NULL, "k1", NULL);
    /* Reads through the batch fall through to committed data. */
    expect_bget(b, "old", "committed");
    /* The last write of a key wins. */
    bput(b, "k1", "uno");
    expect_bget(b, "k1", "uno");
    /* A pending delete hides a committed key. */
    bdel(b, "old");
    expect_bget(b, "old", NULL);
    expect_get(f->s, NULL, "old", "committed");
    assert_true(store_batch_count(b) >= 3);

    assert_int_equal(store_batch_write(f->s, b, false), 0);
    expect_get(f->s, NULL, "k1", "uno");
    expect_get(f->s, NULL, "k2", "two");
    expect_get(f->s, NULL, "old", NULL);

    /* Delete through a new batch. */
    store_batch_clear(b);
    assert_int_equal(store_batch_count(b), 0);
    bdel(b, "k2");
    expect_bget(b, "k2", NULL);
    expect_get(f->s, NULL, "k2", "two");
    assert_int_equal(store_batch_write(f->s, b, true), 0);
    expect_get(f->s, NULL, "k2", NULL);
    expect_get(f->s, NULL, "k1", "uno");
    store_batch_destroy(b);
}

static void test_store_binary_keys_and_empty_values(void **state)
{
    struct store_fixture *f = *state;
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    const uint8_t k1[] = {'x', 0, 1, 0xff};
    const uint8_t k2[] = {'x', 0, 1};
    const uint8_t v1[] = {0, 0, 7, 0};
    store_batch_put(b, k1, sizeof(k1), v1, sizeof(v1));
    store_batch_put(b, k2, sizeof(k2), "", 0);
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    store_batch_destroy(b);

    void *val = NULL;
    size_t vlen = 99;
    assert_int_equal(store_get(f->s, NULL, k1, sizeof(k1), &val, &vlen), 0);
    assert_int_equal(vlen, sizeof(v1));
    assert_memory_equal(val, v1, sizeof(v1));
    free(val);
    /* An empty value is present, not absent. */
    val = NULL;
    assert_int_equal(store_get(f->s, NULL, k2, sizeof(k2), &val, &vlen), 0);
    assert_int_equal(vlen, 0);
    free(val);
    /* A key that is a prefix of a stored key is a different key. */
    assert_int_equal(store_get(f->s, NULL, k2, 2, &val, &vlen), STORE_NOT_FOUND);
}

/* ---------------------------------------------------------------------------
 * Savepoints */

static void test_store_savepoint_rollback_undoes_later_writes(void **state)
{
    struct store_fixture *f = *state;
    commit_put(f->s, "c", "committed");
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    bput(b, "a", "1");
    store_batch_savepoint(b);
    bput(b, "a", "2");
    bput(b, "b", "1");
    bdel(b, "c");
    expect_bget(b, "a", "2");
    expect_bget(b, "c", NULL);
    store_batch_rollback(b);
    /* Only the writes after the savepoint are gone. */
    expect_bget(b, "a", "1");
    expect_bget(b, "b", NULL);
    expect_bget(b, "c", "committed");
    assert_int_equal(store_batch_count(b), 1);
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    expect_get(f->s, NULL, "a", "1");
    expect_get(f->s, NULL, "b", NULL);
    expect_get(f->s, NULL, "c", "committed");
    store_batch_destroy(b);
}

static void test_store_savepoints_stacked(void **state)
{
    struct store_fixture *f = *state;
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    bput(b, "k0", "0");
    store_batch_savepoint(b); /* sp1 */
    bput(b, "k1", "1");
    store_batch_savepoint(b); /* sp2 */
    bput(b, "k2", "2");
    bput(b, "k0", "changed");
    store_batch_rollback(b); /* back to sp2 */
    expect_bget(b, "k0", "0");
    expect_bget(b, "k1", "1");
    expect_bget(b, "k2", NULL);
    bput(b, "k3", "3");
    store_batch_rollback(b); /* back to sp1 */
    expect_bget(b, "k0", "0");
    expect_bget(b, "k1", NULL);
    expect_bget(b, "k3", NULL);
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    expect_get(f->s, NULL, "k0", "0");
    expect_get(f->s, NULL, "k1", NULL);
    expect_get(f->s, NULL, "k2", NULL);
    expect_get(f->s, NULL, "k3", NULL);
    store_batch_destroy(b);
}

/* Releasing the inner savepoint keeps its writes but merges them into the
 * outer one: rolling back the outer savepoint undoes both. */
static void test_store_release_savepoint_then_rollback_outer(void **state)
{
    struct store_fixture *f = *state;
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    bput(b, "k0", "0");
    store_batch_savepoint(b); /* outer */
    bput(b, "k1", "1");
    store_batch_savepoint(b); /* inner */
    bput(b, "k2", "2");
    store_batch_release_savepoint(b);
    expect_bget(b, "k2", "2");
    bput(b, "k3", "3");
    store_batch_rollback(b); /* the outer one: the last one left */
    expect_bget(b, "k0", "0");
    expect_bget(b, "k1", NULL);
    expect_bget(b, "k2", NULL);
    expect_bget(b, "k3", NULL);
    assert_int_equal(store_batch_count(b), 1);
    store_batch_destroy(b);
}

/* A rollback with nothing written since its savepoint (cheap: no RocksDB
 * rollback) still drops that savepoint, so the next rollback goes to the
 * one below. */
static void test_store_rollback_without_writes_drops_the_savepoint(void **state)
{
    struct store_fixture *f = *state;
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    bput(b, "k0", "0");
    store_batch_savepoint(b); /* sp1 */
    bput(b, "k1", "1");
    store_batch_savepoint(b); /* sp2 */
    store_batch_rollback(b);  /* nothing to undo */
    expect_bget(b, "k1", "1");
    bput(b, "k2", "2");
    store_batch_savepoint(b); /* sp3 */
    store_batch_savepoint(b); /* sp4 */
    store_batch_release_savepoint(b);
    store_batch_rollback(b); /* sp3: nothing to undo */
    expect_bget(b, "k2", "2");
    store_batch_rollback(b); /* sp1 */
    expect_bget(b, "k0", "0");
    expect_bget(b, "k1", NULL);
    expect_bget(b, "k2", NULL);
    assert_int_equal(store_batch_count(b), 1);
    /* Savepoints still work afterwards. */
    store_batch_savepoint(b);
    bput(b, "k3", "3");
    store_batch_rollback(b);
    expect_bget(b, "k3", NULL);
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    expect_iter(f->s, NULL, NULL, "k", false, "k0");
    store_batch_destroy(b);
}

/* The ledger's pattern: one savepoint per transaction, released when the
 * transaction is accepted, rolled back when it is rejected. */
static void test_store_savepoint_per_item_release_or_rollback(void **state)
{
    struct store_fixture *f = *state;
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    char k[16];
    for (int i = 0; i < 50; i++) {
        store_batch_savepoint(b);
        snprintf(k, sizeof(k), "t%02d", i);
        bput(b, k, "x");
        if (i % 3 == 0) {
            store_batch_rollback(b);
        } else {
            store_batch_release_savepoint(b);
        }
    }
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof(k), "t%02d", i);
        expect_get(f->s, NULL, k, i % 3 == 0 ? NULL : "x");
    }
    /* Clearing drops writes and savepoints; the batch is reusable. */
    store_batch_savepoint(b);
    bput(b, "z", "z");
    store_batch_clear(b);
    assert_int_equal(store_batch_count(b), 0);
    expect_bget(b, "z", NULL);
    store_batch_savepoint(b);
    bput(b, "y", "y");
    store_batch_rollback(b);
    expect_bget(b, "y", NULL);
    store_batch_destroy(b);
}

/* ---------------------------------------------------------------------------
 * Batch writes */

static void test_store_batch_write_is_atomic_and_visible_after(void **state)
{
    struct store_fixture *f = *state;
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    char k[16], v[16];
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof(k), "w%03d", i);
        snprintf(v, sizeof(v), "%d", i * 7);
        bput(b, k, v);
    }
    struct store_snapshot *before = store_snapshot_create(f->s);
    assert_non_null(before);
    expect_get(f->s, NULL, "w000", NULL);
    expect_get(f->s, NULL, "w499", NULL);
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    struct store_snapshot *after = store_snapshot_create(f->s);
    /* All of the batch or none of it: each view holds 0 or 500 keys. */
    expect_iter(f->s, NULL, before, "w", false, "");
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(f->s, NULL, after, "w", 1, &it), 0);
    int n = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t vlen = 0;
        const char *val = store_iter_value(it, &vlen);
        snprintf(v, sizeof(v), "%d", n * 7);
        assert_int_equal(vlen, strlen(v));
        assert_memory_equal(val, v, vlen);
        n++;
    }
    store_iter_destroy(it);
    assert_int_equal(n, 500);
    /* The batch is left as it was: writing it again is harmless. */
    assert_int_equal(store_batch_count(b), 500);
    assert_int_equal(store_batch_write(f->s, b, true), 0);
    expect_get(f->s, NULL, "w123", "861");
    store_snapshot_release(f->s, before);
    store_snapshot_release(f->s, after);
    store_batch_destroy(b);
}

/* ---------------------------------------------------------------------------
 * Iterators */

static void commit_keys(struct store *s, const char *const *keys, size_t n)
{
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(s, &b), 0);
    for (size_t i = 0; i < n; i++) {
        char v[64];
        snprintf(v, sizeof(v), "v%s", keys[i]);
        bput(b, keys[i], v);
    }
    assert_int_equal(store_batch_write(s, b, false), 0);
    store_batch_destroy(b);
}

static void test_store_iter_prefix_forward_and_backward(void **state)
{
    struct store_fixture *f = *state;
    static const char *const keys[] = {"a1", "a2", "a3", "b", "b1", "b2", "b3", "c", "c1", "d"};
    commit_keys(f->s, keys, sizeof(keys) / sizeof(keys[0]));

    expect_iter(f->s, NULL, NULL, "b", false, "b b1 b2 b3");
    expect_iter(f->s, NULL, NULL, "b", true, "b3 b2 b1 b");
    /* Bounded at both ends: nothing of the neighbouring prefixes. */
    expect_iter(f->s, NULL, NULL, "a", true, "a3 a2 a1");
    expect_iter(f->s, NULL, NULL, "c", false, "c c1");
    expect_iter(f->s, NULL, NULL, "c", true, "c1 c");
    expect_iter(f->s, NULL, NULL, "d", true, "d");
    expect_iter(f->s, NULL, NULL, "b2", true, "b2");
    expect_iter(f->s, NULL, NULL, "e", false, "");
    expect_iter(f->s, NULL, NULL, "e", true, "");
    expect_iter(f->s, NULL, NULL, "0", true, "");
    expect_iter(f->s, NULL, NULL, "", false, "a1 a2 a3 b b1 b2 b3 c c1 d");
    expect_iter(f->s, NULL, NULL, "", true, "d c1 c b3 b2 b1 b a3 a2 a1");

    /* Values travel with keys; seek positions inside the prefix. */
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(f->s, NULL, NULL, "b", 1, &it), 0);
    store_iter_seek(it, "b15", 3);
    assert_true(store_iter_valid(it));
    size_t klen = 0, vlen = 0;
    const char *k = store_iter_key(it, &klen);
    const char *v = store_iter_value(it, &vlen);
    assert_int_equal(klen, 2);
    assert_memory_equal(k, "b2", 2);
    assert_int_equal(vlen, 3);
    assert_memory_equal(v, "vb2", 3);
    store_iter_prev(it);
    k = store_iter_key(it, &klen);
    assert_memory_equal(k, "b1", 2);
    store_iter_seek(it, "b4", 2);
    assert_false(store_iter_valid(it));
    store_iter_destroy(it);
}

/* Prefixes ending in 0xff bytes have an upper bound further up (or none). */
static void test_store_iter_prefix_with_ff_bytes(void **state)
{
    struct store_fixture *f = *state;
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    const char *keys[] = {"x\xfe", "x\xff", "x\xff\x01", "x\xff\xff", "y", "\xff", "\xff\xff\x02"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        bput(b, keys[i], "v");
    }
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    expect_iter(f->s, NULL, NULL, "x\xff", false, "x\xff x\xff\x01 x\xff\xff");
    expect_iter(f->s, NULL, NULL, "x\xff", true, "x\xff\xff x\xff\x01 x\xff");
    expect_iter(f->s, NULL, NULL, "\xff", true, "\xff\xff\x02 \xff");
    expect_iter(f->s, NULL, NULL, "\xff\xff", true, "\xff\xff\x02");
    expect_iter(f->s, b, NULL, "\xff\xff", true, "\xff\xff\x02");
    store_batch_destroy(b);
}

static void test_store_iter_overlays_pending_batch_writes(void **state)
{
    struct store_fixture *f = *state;
    static const char *const keys[] = {"a9", "b1", "b3", "b5", "c1"};
    commit_keys(f->s, keys, sizeof(keys) / sizeof(keys[0]));

    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    bput(b, "b2", "new");
    bput(b, "b6", "new");
    bput(b, "b3", "changed");
    bdel(b, "b1");
    /* Pending keys just outside the prefix, including the bound itself. */
    bput(b, "c", "bound");
    bput(b, "c0", "after");
    bput(b, "a", "before");
    bput(b, "b", "exact");

    expect_iter(f->s, b, NULL, "b", false, "b b2 b3 b5 b6");
    expect_iter(f->s, b, NULL, "b", true, "b6 b5 b3 b2 b");
    expect_iter(f->s, b, NULL, "c", false, "c c0 c1");
    expect_iter(f->s, b, NULL, "c", true, "c1 c0 c");
    expect_iter(f->s, b, NULL, "a", true, "a9 a");
    /* Without the batch, only committed keys. */
    expect_iter(f->s, NULL, NULL, "b", false, "b1 b3 b5");
    expect_iter(f->s, NULL, NULL, "b", true, "b5 b3 b1");

    /* The pending value wins over the committed one. */
    struct store_iter *it = NULL;
    assert_int_equal(store_iter_create(f->s, b, NULL, "b3", 2, &it), 0);
    store_iter_seek_first(it);
    assert_true(store_iter_valid(it));
    size_t vlen = 0;
    const char *v = store_iter_value(it, &vlen);
    assert_int_equal(vlen, strlen("changed"));
    assert_memory_equal(v, "changed", vlen);
    store_iter_next(it);
    assert_false(store_iter_valid(it));
    store_iter_destroy(it);

    /* A batch whose only keys in the prefix are pending or deleted. */
    store_batch_clear(b);
    bdel(b, "b1");
    bdel(b, "b3");
    bdel(b, "b5");
    expect_iter(f->s, b, NULL, "b", false, "");
    expect_iter(f->s, b, NULL, "b", true, "");
    bput(b, "b4", "x");
    expect_iter(f->s, b, NULL, "b", true, "b4");
    /* Rolled-back writes are not seen by a later iterator. */
    store_batch_savepoint(b);
    bput(b, "b7", "x");
    expect_iter(f->s, b, NULL, "b", true, "b7 b4");
    store_batch_rollback(b);
    expect_iter(f->s, b, NULL, "b", true, "b4");
    store_batch_destroy(b);
}

/* ---------------------------------------------------------------------------
 * Snapshots */

static void test_store_snapshot_isolation(void **state)
{
    struct store_fixture *f = *state;
    commit_put(f->s, "s1", "before");
    commit_put(f->s, "s2", "before");
    struct store_snapshot *snap = store_snapshot_create(f->s);
    assert_non_null(snap);

    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    bput(b, "s1", "after");
    bdel(b, "s2");
    bput(b, "s3", "after");
    assert_int_equal(store_batch_write(f->s, b, true), 0);
    store_batch_destroy(b);

    /* The snapshot sees none of the later writes. */
    expect_get(f->s, snap, "s1", "before");
    expect_get(f->s, snap, "s2", "before");
    expect_get(f->s, snap, "s3", NULL);
    expect_iter(f->s, NULL, snap, "s", false, "s1 s2");
    expect_iter(f->s, NULL, snap, "s", true, "s2 s1");
    /* The latest state sees all of them. */
    expect_get(f->s, NULL, "s1", "after");
    expect_get(f->s, NULL, "s2", NULL);
    expect_get(f->s, NULL, "s3", "after");
    expect_iter(f->s, NULL, NULL, "s", false, "s1 s3");
    store_snapshot_release(f->s, snap);
}

/* ---------------------------------------------------------------------------
 * Durability */

static void test_store_reopen_keeps_everything(void **state)
{
    struct store_fixture *f = *state;
    struct store_batch *b = NULL;
    assert_int_equal(store_batch_create(f->s, &b), 0);
    /* Written with sync. */
    bput(b, "sync", "1");
    assert_int_equal(store_batch_write(f->s, b, true), 0);
    store_batch_clear(b);
    /* Written without sync, then forced out with store_sync. */
    bput(b, "async-synced", "2");
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    assert_int_equal(store_sync(f->s), 0);
    store_batch_clear(b);
    /* Written without sync and never synced: a clean close keeps it. */
    bput(b, "async", "3");
    bdel(b, "sync-deleted");
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    store_batch_destroy(b);

    fixture_reopen(f);
    expect_get(f->s, NULL, "sync", "1");
    expect_get(f->s, NULL, "async-synced", "2");
    expect_get(f->s, NULL, "async", "3");
    expect_iter(f->s, NULL, NULL, "", false, "async async-synced sync");

    /* A delete survives a reopen too, and so does a second reopen. */
    assert_int_equal(store_batch_create(f->s, &b), 0);
    bdel(b, "async");
    assert_int_equal(store_batch_write(f->s, b, false), 0);
    store_batch_destroy(b);
    assert_int_equal(store_sync(f->s), 0);
    fixture_reopen(f);
    fixture_reopen(f);
    expect_get(f->s, NULL, "async", NULL);
    expect_iter(f->s, NULL, NULL, "", true, "sync async-synced");
}

static void test_store_open_fails_on_a_file(void **state)
{
    struct store_fixture *f = *state;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/plain-file", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("not a database\n", fp);
    fclose(fp);
    struct store *s = NULL;
    char *err = NULL;
    assert_int_equal(store_open(path, &s, &err), COALITION_E_STORAGE);
    assert_non_null(err);
    assert_true(strlen(err) > 0);
    free(err);
    /* errmsg may be NULL. */
    assert_int_equal(store_open(path, &s, NULL), COALITION_E_STORAGE);
    remove(path);
    /* A database already open (RocksDB's lock file) cannot be opened twice. */
    err = NULL;
    assert_int_equal(store_open(f->dir, &s, &err), COALITION_E_STORAGE);
    assert_non_null(err);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_store_get_missing_is_not_found),
        T(test_store_batch_put_get_delete_overlay),
        T(test_store_binary_keys_and_empty_values),
        T(test_store_savepoint_rollback_undoes_later_writes),
        T(test_store_savepoints_stacked),
        T(test_store_release_savepoint_then_rollback_outer),
        T(test_store_rollback_without_writes_drops_the_savepoint),
        T(test_store_savepoint_per_item_release_or_rollback),
        T(test_store_batch_write_is_atomic_and_visible_after),
        T(test_store_iter_prefix_forward_and_backward),
        T(test_store_iter_prefix_with_ff_bytes),
        T(test_store_iter_overlays_pending_batch_writes),
        T(test_store_snapshot_isolation),
        T(test_store_reopen_keeps_everything),
        T(test_store_open_fails_on_a_file),
#undef T
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
