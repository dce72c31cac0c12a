/* The output of one libuv stream (a client connection, the forwarder's
 * connection to the leader): bytes appended while a write is in flight are
 * sent together by the next write.  Two buffers swap roles, so nothing is
 * copied twice and at most one write is in flight.  Framing and connection
 * state stay with the caller. */
#ifndef COALITION_OUTBUF_H
#define COALITION_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct outbuf {
    uint8_t *out; /* private: appended, not yet handed to libuv */
    size_t out_len, out_cap;
    uint8_t *wbuf; /* private: the bytes of the write in flight */
    size_t wcap;
    uv_write_t wreq; /* private; wreq.data is the flush's data */
    bool writing;    /* read-only: a write is in flight */
};

void outbuf_init(struct outbuf *o);
/* Frees the buffers.  No write may be in flight (libuv has called back). */
void outbuf_close(struct outbuf *o);

/* Room for `len` more bytes at the end of the output: returns where to put
 * them (valid until the next call on `o`), or NULL if memory ran out.  Make
 * them part of the output with outbuf_commit. */
uint8_t *outbuf_reserve(struct outbuf *o, size_t len);
void outbuf_commit(struct outbuf *o, size_t len);

/* Bytes appended and not yet being written. */
size_t outbuf_pending(const struct outbuf *o);

/* Starts writing everything appended, unless a write is in flight or there
 * is nothing to write.  Returns 1 if a write started (cb(&o->wreq, status)
 * will run, with wreq.data = data; it must call outbuf_written first), 0 if
 * none did, or a negative libuv error. */
int outbuf_flush(struct outbuf *o, uv_stream_t *stream, void *data, uv_write_cb cb);

/* Marks the write in flight as finished (from its callback). */
void outbuf_written(struct outbuf *o);

#endif
