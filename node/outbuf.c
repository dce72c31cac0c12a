/* The double-buffered output of a libuv stream (contract in outbuf.h). */
#include "outbuf.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define OUTBUF_CAP_MIN 4096

void outbuf_init(struct outbuf *o)
{
    memset(o, 0, sizeof(*o));
}

void outbuf_close(struct outbuf *o)
{
    assert(!o->writing);
    free(o->out);
    free(o->wbuf);
    memset(o, 0, sizeof(*o));
}

uint8_t *outbuf_reserve(struct outbuf *o, size_t len)
{
    if (len > SIZE_MAX / 2 - o->out_len) {
        return NULL;
    }
    if (o->out_len + len > o->out_cap) {
        size_t cap = o->out_cap > 0 ? o->out_cap : OUTBUF_CAP_MIN;
        while (cap < o->out_len + len) {
            cap *= 2;
        }
        uint8_t *p = realloc(o->out, cap);
        if (p == NULL) {
            return NULL;
        }
        o->out = p;
        o->out_cap = cap;
    }
    return o->out + o->out_len;
}

void outbuf_commit(struct outbuf *o, size_t len)
{
    assert(o->out_len + len <= o->out_cap);
    o->out_len += len;
}

size_t outbuf_pending(const struct outbuf *o)
{
    return o->out_len;
}

int outbuf_flush(struct outbuf *o, uv_stream_t *stream, void *data, uv_write_cb cb)
{
    if (o->writing || o->out_len == 0) {
        return 0;
    }
    if (o->out_len > UINT_MAX) {
        return UV_E2BIG; /* callers bound their output well below this */
    }
    /* Swap: the appended bytes become the write's, the old write buffer
     * (done with) takes the next appends. */
    uint8_t *tmp = o->wbuf;
    size_t tcap = o->wcap;
    o->wbuf = o->out;
    o->wcap = o->out_cap;
    uv_buf_t buf = uv_buf_init((char *)o->wbuf, (unsigned)o->out_len);
    o->out = tmp;
    o->out_cap = tcap;
    o->out_len = 0;
    o->wreq.data = data;
    int rv = uv_write(&o->wreq, stream, &buf, 1, cb);
    if (rv != 0) {
        return rv;
    }
    o->writing = true;
    return 1;
}

void outbuf_written(struct outbuf *o)
{
    assert(o->writing);
    o->writing = false;
}
