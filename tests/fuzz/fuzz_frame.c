/* libFuzzer target for the frame decoder (proto/frame.h): arbitrary bytes are
 * fed in chunks of sizes derived from the input, every complete frame is
 * unpacked as a Request and as a Response, and what the decoder returns is
 * compared with a reference model of the header contract.  No I/O, no
 * ledger here.
 *
 * Input layout: byte 0 picks the payload limit (below 0x80: the production
 * FRAME_PAYLOAD_MAX; else a small one, so that small inputs reach the
 * too-large path), byte 1 the largest chunk (2^(b % 21)) and whether frames
 * are drained after every feed (bit 7 clear) or one per feed, bytes 2-3 seed
 * the chunk sizes; the rest is the byte stream. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "errors.h"
#include "frame.h"

/* Harness checks stay on whatever NDEBUG says. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_PARAMS_LEN 4

/* The reference model: the whole stream fed so far and where the next frame
 * starts in it. */
struct model {
    const uint8_t *stream;
    size_t fed;
    size_t pos;
    size_t payload_max;
};

/* What frame_decoder_next must return, from the header contract alone. */
static int model_next(struct model *m, const uint8_t **payload, size_t *payload_len)
{
    size_t avail = m->fed - m->pos;
    if (avail < FRAME_HEADER_LEN) {
        return 0;
    }
    uint32_t n = bytes_get_be32(m->stream + m->pos);
    if (n == 0) {
        return COALITION_E_BAD_FRAME;
    }
    if (n > m->payload_max) {
        return COALITION_E_FRAME_TOO_LARGE;
    }
    if (avail - FRAME_HEADER_LEN < n) {
        return 0;
    }
    *payload = m->stream + m->pos + FRAME_HEADER_LEN;
    *payload_len = n;
    m->pos += FRAME_HEADER_LEN + (size_t)n;
    return 1;
}

/* A message that unpacked must pack again (rv and `frame` from
 * frame_pack_*; the frame is freed here); its frame must decode, in one
 * piece, to the same bytes. */
static void check_repacked_frame(int rv, uint8_t *frame, size_t frame_len,
                                 const ProtobufCMessage *msg)
{
    size_t packed_len = protobuf_c_message_get_packed_size(msg);
    if (packed_len == 0) {
        CHECK(rv == COALITION_E_BAD_FRAME);
        return;
    }
    if (packed_len > FRAME_PAYLOAD_MAX) {
        CHECK(rv == COALITION_E_FRAME_TOO_LARGE);
        return;
    }
    CHECK(rv == 0);
    CHECK(frame_len == FRAME_HEADER_LEN + packed_len);

    struct frame_decoder d;
    frame_decoder_init(&d, FRAME_PAYLOAD_MAX);
    CHECK(frame_decoder_feed(&d, frame, frame_len) == 0);
    const uint8_t *p = NULL;
    size_t n = 0;
    CHECK(frame_decoder_next(&d, &p, &n) == 1);
    CHECK(n == packed_len);
    CHECK(bytes_get_be32(frame) == packed_len);
    CHECK(memcmp(p, frame + FRAME_HEADER_LEN, n) == 0);
    CHECK(frame_decoder_next(&d, &p, &n) == 0);
    CHECK(frame_decoder_pending(&d) == 0);
    frame_decoder_close(&d);
    free(frame);
}

/* Unpacks one payload both ways (the node reads Requests, the client
 * Responses) and round-trips what unpacks. */
static void unpack_payload(const uint8_t *payload, size_t len)
{
    Coalition__Request *req = NULL;
    int rv = frame_unpack_request(payload, len, &req);
    CHECK(rv == 0 || rv == COALITION_E_BAD_FRAME);
    if (rv == 0) {
        CHECK(req != NULL && protobuf_c_message_check(&req->base));
        uint8_t *frame = NULL;
        size_t frame_len = 0;
        rv = frame_pack_request(req, &frame, &frame_len);
        check_repacked_frame(rv, frame, frame_len, &req->base);
        frame_free_request(req);
    }

    Coalition__Response *resp = NULL;
    rv = frame_unpack_response(payload, len, &resp);
    CHECK(rv == 0 || rv == COALITION_E_BAD_FRAME);
    if (rv == 0) {
        CHECK(resp != NULL && protobuf_c_message_check(&resp->base));
        uint8_t *frame = NULL;
        size_t frame_len = 0;
        rv = frame_pack_response(resp, &frame, &frame_len);
        check_repacked_frame(rv, frame, frame_len, &resp->base);
        frame_free_response(resp);
    }
}

/* xorshift32: chunk sizes that depend on the input only. */
static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* Takes frames until the decoder has none, or one if `one`, comparing each
 * result with the model.  Returns the decoder's error, or 0. */
static int drain(struct frame_decoder *d, struct model *m, bool one)
{
    for (;;) {
        const uint8_t *payload = NULL;
        size_t payload_len = 0;
        const uint8_t *want = NULL;
        size_t want_len = 0;
        int rv = frame_decoder_next(d, &payload, &payload_len);
        int expect = model_next(m, &want, &want_len);
        CHECK(rv == expect);
        if (rv != 1) {
            if (rv == 0) {
                CHECK(frame_decoder_pending(d) == m->fed - m->pos);
            }
            return rv;
        }
        CHECK(payload_len == want_len);
        CHECK(payload_len >= 1 && payload_len <= d->payload_max);
        CHECK(memcmp(payload, want, payload_len) == 0);
        CHECK(frame_decoder_pending(d) == m->fed - m->pos);
        unpack_payload(payload, payload_len);
        if (one) {
            return 0;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_PARAMS_LEN) {
        return 0;
    }
    size_t payload_max = data[0] < 0x80 ? FRAME_PAYLOAD_MAX : 1 + ((size_t)(data[0] & 0x7f) << 2);
    size_t chunk_max = (size_t)1 << (data[1] % 21);
    bool one_per_feed = (data[1] & 0x80) != 0;
    uint32_t seed = ((uint32_t)data[2] << 8 | data[3]) + 1;

    struct model m = {
        .stream = data + FUZZ_PARAMS_LEN,
        .fed = 0,
        .pos = 0,
        .payload_max = payload_max,
    };
    size_t total = size - FUZZ_PARAMS_LEN;

    struct frame_decoder d;
    frame_decoder_init(&d, payload_max);
    CHECK(d.payload_max == payload_max);
    CHECK(frame_decoder_pending(&d) == 0);

    size_t chunk_largest = 0;
    int err = 0;
    while (m.fed < total) {
        size_t chunk = 1 + next_rand(&seed) % chunk_max;
        if (chunk > total - m.fed) {
            chunk = total - m.fed;
        }
        chunk_largest = chunk > chunk_largest ? chunk : chunk_largest;
        CHECK(frame_decoder_feed(&d, m.stream + m.fed, chunk) == 0);
        m.fed += chunk;
        /* Feeding nothing changes nothing. */
        CHECK(frame_decoder_feed(&d, NULL, 0) == 0);
        CHECK(frame_decoder_pending(&d) == m.fed - m.pos);

        err = drain(&d, &m, one_per_feed);
        if (err < 0) {
            break;
        }
        /* frame.c's memory bound (private field, read for this check only):
         * a decoder drained between feeds holds at most one largest frame
         * plus one chunk. */
        if (!one_per_feed) {
            CHECK(d.cap <= payload_max + FRAME_HEADER_LEN + chunk_largest);
        }
    }
    if (err == 0) {
        err = drain(&d, &m, false);
    }

    if (err < 0) {
        /* The error is sticky: the stream is unusable, more bytes do not
         * revive it and nothing past the bad header is ever returned. */
        CHECK(err == COALITION_E_BAD_FRAME || err == COALITION_E_FRAME_TOO_LARGE);
        const uint8_t *p = NULL;
        size_t n = 0;
        CHECK(frame_decoder_next(&d, &p, &n) == err);
        static const uint8_t more[8] = {0, 0, 0, 1, 'x', 0, 0, 0};
        CHECK(frame_decoder_feed(&d, more, sizeof(more)) == 0);
        CHECK(frame_decoder_next(&d, &p, &n) == err);
        CHECK(frame_decoder_next(&d, &p, &n) == err);
    } else {
        CHECK(err == 0);
        CHECK(m.fed == total);
        CHECK(frame_decoder_pending(&d) == total - m.pos);
        CHECK(total - m.pos < FRAME_HEADER_LEN ||
              bytes_get_be32(m.stream + m.pos) > total - m.pos - FRAME_HEADER_LEN);
    }

    frame_decoder_close(&d);
    return 0;
}
