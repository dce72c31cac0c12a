/* Storage: the node's RocksDB database behind a small interface of keys,
 * values, write batches, iterators and snapshots.  The ledger state machine
 * sees only this header, never RocksDB's.  Keys and values are byte strings;
 * every value returned by a get is malloc'd and owned by the caller. */
#ifndef COALITION_STORE_H
#define COALITION_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by the get functions when the key is absent (not an error). */
#define STORE_NOT_FOUND 1

struct store;          /* an open database */
struct store_batch;    /* pending writes, readable before they are written */
struct store_iter;     /* a cursor over the keys that share a prefix */
struct store_snapshot; /* a frozen, consistent view of the database */

/* Opens (creating if needed) the database in directory `dir` (borrowed).
 * Returns 0 and *out, or COALITION_E_STORAGE with a malloc'd message in
 * *errmsg (caller frees; may be NULL). */
int store_open(const char *dir, struct store **out, char **errmsg);
/* Closes the database.  Every batch, iterator and snapshot must be released
 * first. */
void store_close(struct store *s);

/* Reads `key` from the committed database, or from `snap` if non-NULL.
 * Returns 0 with *val (malloc'd, caller frees) and *vlen, STORE_NOT_FOUND, or
 * COALITION_E_STORAGE. */
int store_get(struct store *s, const struct store_snapshot *snap, const void *key, size_t klen,
              void **val, size_t *vlen);

/* Forces everything written so far (with or without sync) to stable storage
 * (fsync of the write-ahead log).  Safe to call from another thread while
 * the loop thread keeps writing. */
int store_sync(struct store *s);

/* Write batches.  Reads through a batch see its own pending writes over the
 * committed database.  A savepoint lets one transaction of a batch be undone
 * without touching the others. */
int store_batch_create(struct store *s, struct store_batch **out);
void store_batch_destroy(struct store_batch *b);
void store_batch_clear(struct store_batch *b);
int store_batch_get(struct store_batch *b, const void *key, size_t klen, void **val, size_t *vlen);
void store_batch_put(struct store_batch *b, const void *key, size_t klen, const void *val,
                     size_t vlen);
void store_batch_delete(struct store_batch *b, const void *key, size_t klen);
void store_batch_savepoint(struct store_batch *b);
/* Undoes every write since the last savepoint and drops that savepoint. */
void store_batch_rollback(struct store_batch *b);
/* Drops the last savepoint, keeping its writes. */
void store_batch_release_savepoint(struct store_batch *b);
size_t store_batch_count(const struct store_batch *b);
/* Writes the whole batch atomically; `sync` waits for fsync.  The batch is
 * left as it was (clear it to reuse). */
int store_batch_write(struct store *s, struct store_batch *b, bool sync);

/* Iterators over the keys beginning with `prefix` (copied), in byte order.
 * With `b` they also see b's pending writes; with `snap` they read that
 * snapshot instead of the latest state (not both).  Destroy before the batch
 * or snapshot they use. */
int store_iter_create(struct store *s, struct store_batch *b, const struct store_snapshot *snap,
                      const void *prefix, size_t plen, struct store_iter **out);
void store_iter_destroy(struct store_iter *it);
void store_iter_seek_first(struct store_iter *it);
void store_iter_seek_last(struct store_iter *it);
/* Positions at the first key >= `key` (a whole key, prefix included). */
void store_iter_seek(struct store_iter *it, const void *key, size_t klen);
bool store_iter_valid(const struct store_iter *it);
void store_iter_next(struct store_iter *it);
void store_iter_prev(struct store_iter *it);
/* Borrowed pointers, valid until the iterator moves. */
const void *store_iter_key(const struct store_iter *it, size_t *klen);
const void *store_iter_value(const struct store_iter *it, size_t *vlen);
/* 0 or COALITION_E_STORAGE if iteration stopped on an I/O error. */
int store_iter_status(const struct store_iter *it);

struct store_snapshot *store_snapshot_create(struct store *s);
void store_snapshot_release(struct store *s, struct store_snapshot *snap);

#endif
