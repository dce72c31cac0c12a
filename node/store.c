/* Storage over RocksDB: open/close, point reads, indexed write batches with
 * savepoints, prefix iterators and snapshots (contract in store.h).  This is
 * the only file of the node that includes RocksDB's header. */
#include "store.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "errors.h"

struct store {
    rocksdb_t *db;
    rocksdb_options_t *options;
    rocksdb_readoptions_t *read_options;
    rocksdb_writeoptions_t *write_async;
    rocksdb_writeoptions_t *write_sync;
    rocksdb_block_based_table_options_t *table_options;
    rocksdb_cache_t *cache;
    rocksdb_filterpolicy_t *filter; /* owned by table_options */
};

/* Savepoints that may be open at once in one batch (nesting depth). */
#define STORE_SAVEPOINTS_MAX 16

struct store_batch {
    struct store *store;
    rocksdb_writebatch_wi_t *wb;
    /* The C API cannot pop a RocksDB savepoint, so a released savepoint stays
     * on RocksDB's stack.  marks[i] counts the RocksDB savepoints that open
     * savepoint i spans (itself plus the released ones above it): rolling i
     * back rolls RocksDB back that many times.  A savepoint released with no
     * open one below it is never rolled back to; clear drops it. */
    uint32_t marks[STORE_SAVEPOINTS_MAX];
    /* The batch's write count when savepoint i was set.  A RocksDB rollback
     * rebuilds the index of the whole batch, so a rollback with nothing to
     * undo (the common rejection) must not do one: batches would cost time
     * quadratic in their length. */
    size_t counts[STORE_SAVEPOINTS_MAX];
    size_t savepoints; /* open savepoints */
};

struct store_iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *read_options;
    uint8_t *prefix; /* owned */
    size_t plen;
    uint8_t *upper; /* owned: smallest key after every prefixed key */
    size_t ulen;
    bool has_upper;
};

int store_open(const char *dir, struct store **out, char **errmsg)
{
    assert(dir != NULL && out != NULL);
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return COALITION_E_NOMEM;
    }
    s->options = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->options, 1);
    rocksdb_options_set_max_background_jobs(s->options, 2);
    rocksdb_options_set_write_buffer_size(s->options, 16u << 20);
    /* A bloom filter over whole keys in the memtable: most lookups of the
     * apply path (idempotency keys) are for keys that do not exist. */
    rocksdb_options_set_memtable_whole_key_filtering(s->options, 1);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(s->options, 0.05);
    rocksdb_options_set_compression(s->options, rocksdb_lz4_compression);
    /* A torn last WAL record (crash mid-write) is dropped; everything before
     * it, including every synced batch, is recovered. */
    rocksdb_options_set_wal_recovery_mode(s->options, rocksdb_point_in_time_recovery);
    /* Reuse old WAL files instead of appending to new ones: overwriting
     * preallocated blocks makes fdatasync a data-only flush, without the
     * filesystem journal commit that an append needs (p99 0.3 ms instead of
     * 4 ms on our disks, see shared/bench/fsync_probe.sh).  Recycled logs are
     * compatible with point-in-time recovery. */
    rocksdb_options_set_recycle_log_file_num(s->options, 4);
    /* WAL records of unsynced writes stay in RocksDB's buffer; store_sync
     * writes and syncs them.  The loop thread that writes batches thus never
     * makes a write(2) that could wait behind an fdatasync in progress. */
    rocksdb_options_set_manual_wal_flush(s->options, 1);
    /* Write SST files back in small steps so that a memtable flush does not
     * dump megabytes on the disk at once, in the way of the next WAL sync. */
    rocksdb_options_set_bytes_per_sync(s->options, 1u << 20);
    s->table_options = rocksdb_block_based_options_create();
    s->cache = rocksdb_cache_create_lru(128u << 20);
    rocksdb_block_based_options_set_block_cache(s->table_options, s->cache);
    s->filter = rocksdb_filterpolicy_create_bloom_full(10);
    rocksdb_block_based_options_set_filter_policy(s->table_options, s->filter);
    rocksdb_options_set_block_based_table_factory(s->options, s->table_options);

    /* Per-thread perf counters cost a TLS lookup on every memtable
     * operation; we do not read them.  (Set for the opening thread, which is
     * the thread that applies batches.) */
    rocksdb_set_perf_level(rocksdb_disable);
    char *err = NULL;
    s->db = rocksdb_open(s->options, dir, &err);
    if (err != NULL) {
        if (errmsg != NULL) {
            *errmsg = err;
        } else {
            free(err);
        }
        s->db = NULL;
        store_close(s);
        return COALITION_E_STORAGE;
    }
    s->read_options = rocksdb_readoptions_create();
    s->write_async = rocksdb_writeoptions_create();
    s->write_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->write_sync, 1);
    *out = s;
    return 0;
}

void store_close(struct store *s)
{
    if (s == NULL) {
        return;
    }
    if (s->db != NULL) {
        rocksdb_close(s->db);
    }
    if (s->read_options != NULL) {
        rocksdb_readoptions_destroy(s->read_options);
    }
    if (s->write_async != NULL) {
        rocksdb_writeoptions_destroy(s->write_async);
        rocksdb_writeoptions_destroy(s->write_sync);
    }
    rocksdb_options_destroy(s->options);
    rocksdb_block_based_options_destroy(s->table_options);
    rocksdb_cache_destroy(s->cache);
    free(s);
}

/* Turns a RocksDB (value, error) pair into our return convention. */
static int store_get_result_(char *val, size_t vlen, char *err, void **out, size_t *out_len)
{
    if (err != NULL) {
        free(err);
        free(val);
        return COALITION_E_STORAGE;
    }
    if (val == NULL) {
        return STORE_NOT_FOUND;
    }
    *out = val;
    *out_len = vlen;
    return 0;
}

int store_get(struct store *s, const struct store_snapshot *snap, const void *key, size_t klen,
              void **val, size_t *vlen)
{
    assert(s != NULL && key != NULL && val != NULL && vlen != NULL);
    rocksdb_readoptions_t *ro = s->read_options;
    rocksdb_readoptions_t *snap_ro = NULL;
    if (snap != NULL) {
        snap_ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_snapshot(snap_ro, (const rocksdb_snapshot_t *)snap);
        ro = snap_ro;
    }
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get(s->db, ro, key, klen, &len, &err);
    if (snap_ro != NULL) {
        rocksdb_readoptions_destroy(snap_ro);
    }
    return store_get_result_(v, len, err, val, vlen);
}

int store_sync(struct store *s)
{
    char *err = NULL;
    rocksdb_flush_wal(s->db, 1, &err);
    if (err != NULL) {
        free(err);
        return COALITION_E_STORAGE;
    }
    return 0;
}

int store_batch_create(struct store *s, struct store_batch **out)
{
    struct store_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return COALITION_E_NOMEM;
    }
    b->store = s;
    /* overwrite_key = 1: a read through the batch sees the last write. */
    b->wb = rocksdb_writebatch_wi_create(0, 1);
    *out = b;
    return 0;
}

void store_batch_destroy(struct store_batch *b)
{
    if (b == NULL) {
        return;
    }
    rocksdb_writebatch_wi_destroy(b->wb);
    free(b);
}

void store_batch_clear(struct store_batch *b)
{
    rocksdb_writebatch_wi_clear(b->wb);
    b->savepoints = 0;
}

int store_batch_get(struct store_batch *b, const void *key, size_t klen, void **val, size_t *vlen)
{
    assert(b != NULL && key != NULL);
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_writebatch_wi_get_from_batch_and_db(
        b->wb, b->store->db, b->store->read_options, key, klen, &len, &err);
    return store_get_result_(v, len, err, val, vlen);
}

void store_batch_put(struct store_batch *b, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    rocksdb_writebatch_wi_put(b->wb, key, klen, val, vlen);
}

void store_batch_delete(struct store_batch *b, const void *key, size_t klen)
{
    rocksdb_writebatch_wi_delete(b->wb, key, klen);
}

void store_batch_savepoint(struct store_batch *b)
{
    assert(b->savepoints < STORE_SAVEPOINTS_MAX);
    rocksdb_writebatch_wi_set_save_point(b->wb);
    b->counts[b->savepoints] = store_batch_count(b);
    b->marks[b->savepoints++] = 1;
}

void store_batch_rollback(struct store_batch *b)
{
    assert(b->savepoints > 0);
    assert(store_batch_count(b) >= b->counts[b->savepoints - 1]);
    if (store_batch_count(b) == b->counts[b->savepoints - 1]) {
        /* Nothing written since: as good as undone. */
        store_batch_release_savepoint(b);
        return;
    }
    uint32_t n = b->marks[--b->savepoints];
    assert(n > 0);
    for (uint32_t i = 0; i < n; i++) {
        char *err = NULL;
        rocksdb_writebatch_wi_rollback_to_save_point(b->wb, &err);
        /* Only fails without a savepoint, which marks[] excludes. */
        assert(err == NULL);
        free(err);
    }
}

void store_batch_release_savepoint(struct store_batch *b)
{
    assert(b->savepoints > 0);
    /* The C API has no PopSavePoint: the RocksDB savepoint stays, and the
     * open savepoint below (if any) now spans it, so that rolling that one
     * back also undoes the writes made after this one. */
    uint32_t n = b->marks[--b->savepoints];
    if (b->savepoints > 0) {
        b->marks[b->savepoints - 1] += n;
    }
}

size_t store_batch_count(const struct store_batch *b)
{
    return (size_t)rocksdb_writebatch_wi_count(b->wb);
}

int store_batch_write(struct store *s, struct store_batch *b, bool sync)
{
    char *err = NULL;
    rocksdb_write_writebatch_wi(s->db, sync ? s->write_sync : s->write_async, b->wb, &err);
    if (err != NULL) {
        free(err);
        return COALITION_E_STORAGE;
    }
    return 0;
}

int store_iter_create(struct store *s, struct store_batch *b, const struct store_snapshot *snap,
                      const void *prefix, size_t plen, struct store_iter **out)
{
    assert(!(b != NULL && snap != NULL));
    struct store_iter *it = calloc(1, sizeof(*it));
    if (it == NULL) {
        return COALITION_E_NOMEM;
    }
    it->prefix = malloc(plen > 0 ? plen : 1);
    it->upper = malloc(plen > 0 ? plen : 1);
    if (it->prefix == NULL || it->upper == NULL) {
        free(it->prefix);
        free(it->upper);
        free(it);
        return COALITION_E_NOMEM;
    }
    memcpy(it->prefix, prefix, plen);
    it->plen = plen;
    /* The upper bound is the prefix with its last non-0xff byte incremented
     * and what follows dropped; an all-0xff prefix has none. */
    memcpy(it->upper, prefix, plen);
    it->ulen = plen;
    while (it->ulen > 0 && it->upper[it->ulen - 1] == 0xff) {
        it->ulen--;
    }
    if (it->ulen > 0) {
        it->upper[it->ulen - 1]++;
        it->has_upper = true;
    }
    it->read_options = rocksdb_readoptions_create();
    if (it->has_upper) {
        rocksdb_readoptions_set_iterate_upper_bound(it->read_options, (const char *)it->upper,
                                                    it->ulen);
    }
    if (snap != NULL) {
        rocksdb_readoptions_set_snapshot(it->read_options, (const rocksdb_snapshot_t *)snap);
    }
    rocksdb_iterator_t *base = rocksdb_create_iterator(s->db, it->read_options);
    it->it = b != NULL ? rocksdb_writebatch_wi_create_iterator_with_base(b->wb, base) : base;
    *out = it;
    return 0;
}

void store_iter_destroy(struct store_iter *it)
{
    if (it == NULL) {
        return;
    }
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->read_options);
    free(it->prefix);
    free(it->upper);
    free(it);
}

void store_iter_seek_first(struct store_iter *it)
{
    rocksdb_iter_seek(it->it, (const char *)it->prefix, it->plen);
}

void store_iter_seek_last(struct store_iter *it)
{
    if (it->has_upper) {
        rocksdb_iter_seek_for_prev(it->it, (const char *)it->upper, it->ulen);
        /* A pending write in a batch is not bounded by the base iterator's
         * upper bound; step back over the bound key itself if present. */
        size_t klen = 0;
        if (rocksdb_iter_valid(it->it)) {
            const char *k = rocksdb_iter_key(it->it, &klen);
            if (klen == it->ulen && memcmp(k, it->upper, klen) == 0) {
                rocksdb_iter_prev(it->it);
            }
        }
    } else {
        rocksdb_iter_seek_to_last(it->it);
    }
}

void store_iter_seek(struct store_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
}

bool store_iter_valid(const struct store_iter *it)
{
    if (!rocksdb_iter_valid(it->it)) {
        return false;
    }
    size_t klen = 0;
    const char *k = rocksdb_iter_key(it->it, &klen);
    return klen >= it->plen && memcmp(k, it->prefix, it->plen) == 0;
}

void store_iter_next(struct store_iter *it)
{
    rocksdb_iter_next(it->it);
}

void store_iter_prev(struct store_iter *it)
{
    rocksdb_iter_prev(it->it);
}

const void *store_iter_key(const struct store_iter *it, size_t *klen)
{
    return rocksdb_iter_key(it->it, klen);
}

const void *store_iter_value(const struct store_iter *it, size_t *vlen)
{
    return rocksdb_iter_value(it->it, vlen);
}

int store_iter_status(const struct store_iter *it)
{
    char *err = NULL;
    rocksdb_iter_get_error(it->it, &err);
    if (err != NULL) {
        free(err);
        return COALITION_E_STORAGE;
    }
    return 0;
}

struct store_snapshot *store_snapshot_create(struct store *s)
{
    return (struct store_snapshot *)rocksdb_create_snapshot(s->db);
}

void store_snapshot_release(struct store *s, struct store_snapshot *snap)
{
    rocksdb_release_snapshot(s->db, (const rocksdb_snapshot_t *)snap);
}
