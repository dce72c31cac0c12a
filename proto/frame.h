/* The frame codec shared by node and client: a frame is a 4-byte big-endian
 * payload length followed by that many bytes of one packed protobuf message
 * (coalition.Request from client to node, coalition.Response back).  This
 * module does framing and (un)packing only; no I/O lives here. */
#ifndef COALITION_FRAME_H
#define COALITION_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "coalition.pb-c.h"

#define FRAME_HEADER_LEN 4
/* Largest payload a node or client accepts; bigger frames are an error. */
#define FRAME_PAYLOAD_MAX ((size_t)1 << 20)

/* Packs `req` into a new frame (header + payload).  On success returns 0 and
 * *out is a malloc'd buffer of *out_len bytes that the caller frees.  Returns
 * COALITION_E_FRAME_TOO_LARGE if the payload would exceed FRAME_PAYLOAD_MAX,
 * COALITION_E_NOMEM on allocation failure; *out is then untouched. */
int frame_pack_request(const Coalition__Request *req, uint8_t **out, size_t *out_len);
int frame_pack_response(const Coalition__Response *resp, uint8_t **out, size_t *out_len);

/* Incremental decoder for a byte stream of frames.  Caller-allocated; init
 * before use, close to free its buffer. */
struct frame_decoder {
    uint8_t *buf;       /* private: bytes received and not yet consumed */
    size_t start;       /* private: offset of the first unconsumed byte */
    size_t len;         /* private: offset one past the last byte */
    size_t cap;         /* private */
    size_t payload_max; /* read-only: limit given to init */
};

void frame_decoder_init(struct frame_decoder *d, size_t payload_max);
void frame_decoder_close(struct frame_decoder *d);

/* Appends `len` bytes (borrowed) to the decoder.  Returns 0 or
 * COALITION_E_NOMEM. */
int frame_decoder_feed(struct frame_decoder *d, const void *data, size_t len);

/* Takes the next complete frame.  Returns 1 and points *payload at its bytes
 * (borrowed: valid until the next feed, next or close) with *payload_len set;
 * 0 if no complete frame is buffered yet; COALITION_E_FRAME_TOO_LARGE if the
 * header announces more than payload_max, COALITION_E_BAD_FRAME for a zero
 * length.  After an error the stream is unusable: close the connection. */
int frame_decoder_next(struct frame_decoder *d, const uint8_t **payload, size_t *payload_len);

/* Bytes buffered but not yet returned by frame_decoder_next (0 at a clean
 * frame boundary; non-zero at EOF means the stream was truncated). */
size_t frame_decoder_pending(const struct frame_decoder *d);

/* Unpacks a payload.  Returns 0 and a message the caller frees with
 * frame_free_request/frame_free_response, or COALITION_E_BAD_FRAME. */
int frame_unpack_request(const uint8_t *payload, size_t len, Coalition__Request **out);
int frame_unpack_response(const uint8_t *payload, size_t len, Coalition__Response **out);
void frame_free_request(Coalition__Request *req);
void frame_free_response(Coalition__Response *resp);

#endif
