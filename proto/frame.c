/* The frame codec of proto/frame.h: length-prefixed protobuf messages, packed
 * into fresh buffers and cut out of a byte stream by an incremental decoder
 * whose buffer is bounded by the payload limit.  No I/O lives here. */
#include "frame.h"

#include "bytes.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

/* First allocation of a decoder buffer; it then doubles as needed. */
#define FRAME_DECODER_CAP_MIN ((size_t)4096)

_Static_assert(FRAME_HEADER_LEN == 4, "the header is one big-endian uint32");
_Static_assert(FRAME_PAYLOAD_MAX <= UINT32_MAX, "the payload length must fit the header");

/* Packs any message into header + payload.  An empty message would give a
 * zero-length payload, which every decoder rejects as BAD_FRAME, so it is
 * refused here rather than sent. */
static int frame_pack_message(const ProtobufCMessage *msg, uint8_t **out, size_t *out_len)
{
    assert(msg != NULL);
    assert(out != NULL && out_len != NULL);

    size_t payload_len = protobuf_c_message_get_packed_size(msg);
    if (payload_len > FRAME_PAYLOAD_MAX) {
        return COALITION_E_FRAME_TOO_LARGE;
    }
    if (payload_len == 0) {
        return COALITION_E_BAD_FRAME;
    }
    uint8_t *buf = malloc(FRAME_HEADER_LEN + payload_len);
    if (buf == NULL) {
        return COALITION_E_NOMEM;
    }
    bytes_put_be32(buf, (uint32_t)payload_len);
    size_t packed = protobuf_c_message_pack(msg, buf + FRAME_HEADER_LEN);
    assert(packed == payload_len);
    (void)packed;

    *out = buf;
    *out_len = FRAME_HEADER_LEN + payload_len;
    return 0;
}

int frame_pack_request(const Coalition__Request *req, uint8_t **out, size_t *out_len)
{
    assert(req != NULL);
    assert(req->base.descriptor == &coalition__request__descriptor);
    return frame_pack_message(&req->base, out, out_len);
}

int frame_pack_response(const Coalition__Response *resp, uint8_t **out, size_t *out_len)
{
    assert(resp != NULL);
    assert(resp->base.descriptor == &coalition__response__descriptor);
    return frame_pack_message(&resp->base, out, out_len);
}

void frame_decoder_init(struct frame_decoder *d, size_t payload_max)
{
    assert(d != NULL);
    assert(payload_max > 0 && payload_max <= UINT32_MAX);
    d->buf = NULL;
    d->start = 0;
    d->len = 0;
    d->cap = 0;
    d->payload_max = payload_max;
}

void frame_decoder_close(struct frame_decoder *d)
{
    assert(d != NULL);
    free(d->buf);
    d->buf = NULL;
    d->start = 0;
    d->len = 0;
    d->cap = 0;
}

/* Makes room for `more` bytes after the buffered ones: first by moving the
 * unconsumed bytes to the front, then by growing geometrically.  Growth stops
 * at one largest frame plus the chunk being fed, so a decoder that is drained
 * between feeds never holds more than payload_max + header + one chunk. */
static int frame_decoder_reserve(struct frame_decoder *d, size_t more)
{
    size_t pending = d->len - d->start;
    if (d->start > 0 && d->cap - d->len < more) {
        memmove(d->buf, d->buf + d->start, pending);
        d->start = 0;
        d->len = pending;
    }
    if (more > SIZE_MAX - pending) {
        return COALITION_E_NOMEM;
    }
    size_t need = pending + more;
    if (need <= d->cap) {
        return 0;
    }

    size_t cap = d->cap > 0 ? d->cap : FRAME_DECODER_CAP_MIN;
    while (cap < need && cap <= SIZE_MAX / 2) {
        cap *= 2;
    }
    size_t bound = d->payload_max + FRAME_HEADER_LEN + more;
    if (cap > bound) {
        cap = bound > need ? bound : need;
    }
    if (cap < need) {
        cap = need;
    }
    uint8_t *buf = realloc(d->buf, cap);
    if (buf == NULL) {
        return COALITION_E_NOMEM;
    }
    d->buf = buf;
    d->cap = cap;
    assert(d->start == 0);
    return 0;
}

int frame_decoder_feed(struct frame_decoder *d, const void *data, size_t len)
{
    assert(d != NULL);
    assert(data != NULL || len == 0);
    assert(d->start <= d->len && d->len <= d->cap);

    if (len == 0) {
        return 0;
    }
    if (d->start == d->len) {
        d->start = 0;
        d->len = 0;
    }
    int rv = frame_decoder_reserve(d, len);
    if (rv != 0) {
        return rv;
    }
    memcpy(d->buf + d->len, data, len);
    d->len += len;

    assert(d->start <= d->len && d->len <= d->cap);
    return 0;
}

int frame_decoder_next(struct frame_decoder *d, const uint8_t **payload, size_t *payload_len)
{
    assert(d != NULL);
    assert(payload != NULL && payload_len != NULL);
    assert(d->start <= d->len && d->len <= d->cap);

    size_t avail = d->len - d->start;
    if (avail < FRAME_HEADER_LEN) {
        return 0;
    }
    const uint8_t *p = d->buf + d->start;
    uint32_t n = bytes_get_be32(p);
    if (n == 0) {
        return COALITION_E_BAD_FRAME;
    }
    /* Judged on the header alone: a peer announcing a huge frame is refused
     * before any of its bytes are buffered. */
    if (n > d->payload_max) {
        return COALITION_E_FRAME_TOO_LARGE;
    }
    if (avail - FRAME_HEADER_LEN < n) {
        return 0;
    }
    *payload = p + FRAME_HEADER_LEN;
    *payload_len = n;
    d->start += FRAME_HEADER_LEN + (size_t)n;

    assert(d->start <= d->len);
    return 1;
}

size_t frame_decoder_pending(const struct frame_decoder *d)
{
    assert(d != NULL);
    assert(d->start <= d->len);
    return d->len - d->start;
}

/* True if no message inside m (m included) kept an unknown field numbered
 * 0.  Protobuf has no field 0; protobuf-c refuses it in a one-byte tag but
 * keeps it when the tag is written in two bytes, and such a message does not
 * unpack again once packed (it would break a forwarding connection). */
static bool message_fields_valid(const ProtobufCMessage *m, int depth)
{
    if (depth > 32) {
        return false;
    }
    for (unsigned i = 0; i < m->n_unknown_fields; i++) {
        if (m->unknown_fields[i].tag == 0) {
            return false;
        }
    }
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
            continue;
        }
        const char *base = (const char *)m;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
            ProtobufCMessage *const *items =
                *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
            for (size_t k = 0; k < n; k++) {
                if (!message_fields_valid(items[k], depth + 1)) {
                    return false;
                }
            }
            continue;
        }
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
            *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id) {
            continue; /* another member of the oneof shares the slot */
        }
        const ProtobufCMessage *sub =
            *(const ProtobufCMessage *const *)(const void *)(base + f->offset);
        if (sub != NULL && !message_fields_valid(sub, depth + 1)) {
            return false;
        }
    }
    return true;
}

int frame_unpack_request(const uint8_t *payload, size_t len, Coalition__Request **out)
{
    assert(payload != NULL || len == 0);
    assert(out != NULL);
    Coalition__Request *req = coalition__request__unpack(NULL, len, payload);
    if (req == NULL) {
        return COALITION_E_BAD_FRAME;
    }
    if (!message_fields_valid(&req->base, 0)) {
        coalition__request__free_unpacked(req, NULL);
        return COALITION_E_BAD_FRAME;
    }
    *out = req;
    return 0;
}

int frame_unpack_response(const uint8_t *payload, size_t len, Coalition__Response **out)
{
    assert(payload != NULL || len == 0);
    assert(out != NULL);
    Coalition__Response *resp = coalition__response__unpack(NULL, len, payload);
    if (resp == NULL) {
        return COALITION_E_BAD_FRAME;
    }
    if (!message_fields_valid(&resp->base, 0)) {
        coalition__response__free_unpacked(resp, NULL);
        return COALITION_E_BAD_FRAME;
    }
    *out = resp;
    return 0;
}

void frame_free_request(Coalition__Request *req)
{
    if (req != NULL) {
        coalition__request__free_unpacked(req, NULL);
    }
}

void frame_free_response(Coalition__Response *resp)
{
    if (resp != NULL) {
        coalition__response__free_unpacked(resp, NULL);
    }
}
