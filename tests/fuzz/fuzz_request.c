/* libFuzzer target for what a node does with a Request payload before any
 * state is touched: unpack (proto/frame.h), read every field of the variant
 * present, check a carried Txn with ledger_validate (node/ledger.h), and pack
 * it again.  The input is one packed coalition.Request, without the frame
 * header.  No store, no network here. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "frame.h"
#include "ledger.h"

/* Harness checks stay on whatever NDEBUG says. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Nesting of the schema is at most a few levels; this only guards a walk
 * that went wrong. */
#define WALK_DEPTH_MAX 16

/* Former finding (tests/fuzz/crashes/request-field0-repack): protobuf-c 1.4
 * refuses field number 0 in a one-byte tag but accepts it written in more
 * bytes (0x82 0x00) and packs it back as the one-byte tag, which it then
 * refuses.  frame_unpack_request now refuses field 0 anywhere, so an accepted
 * request must never hold one and must always unpack again once packed. */

/* What a walk saw: a sum over every byte read, and whether an unknown field
 * with number 0 is anywhere in the tree. */
struct walk {
    size_t sum;
    bool field0;
};

/* Reads every byte of every field present, through the descriptors, so that
 * ASan sees any string or byte array that is not what it claims to be. */
static void walk(const ProtobufCMessage *m, int depth, struct walk *w)
{
    CHECK(m != NULL && m->descriptor != NULL);
    CHECK(m->descriptor->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    CHECK(depth < WALK_DEPTH_MAX);
    const ProtobufCMessageDescriptor *desc = m->descriptor;
    const char *base = (const char *)m;
    CHECK(m->n_unknown_fields == 0 || m->unknown_fields != NULL);
    for (size_t i = 0; i < m->n_unknown_fields; i++) {
        const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];
        CHECK(u->len == 0 || u->data != NULL);
        for (size_t j = 0; j < u->len; j++) {
            w->sum += u->data[j];
        }
        w->field0 |= u->tag == 0;
    }

    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[i];
        const void *at = base + f->offset;
        size_t count = 1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            count = *(const size_t *)(base + f->quantifier_offset);
            const void *const *arr = at;
            CHECK(count == 0 || *arr != NULL);
            at = *arr;
        } else if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
            uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
            if (which != f->id) {
                continue;
            }
        }
        for (size_t k = 0; k < count; k++) {
            switch (f->type) {
            case PROTOBUF_C_TYPE_STRING: {
                const char *s = ((const char *const *)at)[k];
                CHECK(s != NULL);
                w->sum += strlen(s);
                break;
            }
            case PROTOBUF_C_TYPE_BYTES: {
                const ProtobufCBinaryData *b = &((const ProtobufCBinaryData *)at)[k];
                CHECK(b->len == 0 || b->data != NULL);
                for (size_t j = 0; j < b->len; j++) {
                    w->sum += b->data[j];
                }
                break;
            }
            case PROTOBUF_C_TYPE_MESSAGE: {
                const ProtobufCMessage *sub = ((const ProtobufCMessage *const *)at)[k];
                if (f->label == PROTOBUF_C_LABEL_REPEATED) {
                    CHECK(sub != NULL);
                }
                if (sub != NULL) {
                    CHECK(sub->descriptor == f->descriptor);
                    walk(sub, depth + 1, w);
                }
                break;
            }
            default:
                w->sum += 1; /* scalars: nothing that can dangle */
                break;
            }
        }
    }
}

/* The one variant present must be there, of its own type.  Read through
 * the descriptor, so a variant added to Request.op is checked as soon as it
 * exists (a switch here stopped the fuzzer twice on a new variant). */
static const ProtobufCMessage *variant(const Coalition__Request *req)
{
    if (req->op_case == COALITION__REQUEST__OP__NOT_SET) {
        return NULL;
    }
    const ProtobufCFieldDescriptor *fd =
        protobuf_c_message_descriptor_get_field(&coalition__request__descriptor, req->op_case);
    /* protobuf-c sets op_case only to a field it knows, a message of the oneof. */
    CHECK(fd != NULL && fd->type == PROTOBUF_C_TYPE_MESSAGE &&
          (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0 &&
          fd->quantifier_offset == offsetof(Coalition__Request, op_case));
    const ProtobufCMessage *m = *(const ProtobufCMessage *const *)((const char *)req + fd->offset);
    CHECK(m != NULL && m->descriptor == fd->descriptor);
    return m;
}

/* A Txn that validates goes into a Batch (node/cluster.c), which every node
 * must unpack again: one that does not decode stops every node for good. */
static void check_batch_roundtrip(Coalition__Txn *t, int code)
{
    Coalition__Txn *txns[] = {t};
    Coalition__Batch b = COALITION__BATCH__INIT;
    b.time_ms = 1700000000000;
    b.n_txns = 1;
    b.txns = txns;
    size_t len = coalition__batch__get_packed_size(&b);
    uint8_t *buf = malloc(len > 0 ? len : 1);
    CHECK(buf != NULL);
    CHECK(coalition__batch__pack(&b, buf) == len);
    Coalition__Batch *again = coalition__batch__unpack(NULL, len, buf);
    CHECK(again != NULL);
    CHECK(again->n_txns == 1 && again->txns[0] != NULL);
    CHECK(ledger_validate(again->txns[0]) == code);
    CHECK(coalition__txn__get_packed_size(again->txns[0]) == coalition__txn__get_packed_size(t));
    coalition__batch__free_unpacked(again, NULL);
    free(buf);
}

static bool id_len_ok(const char *s)
{
    return strlen(s) <= LEDGER_ID_MAX;
}

/* ledger_validate on `t`: 0 or a code from the table, the same every time,
 * and 0 only for what the header promises it checked (ids, lengths,
 * amounts) and for what survives the trip through a Batch. */
static int validate(Coalition__Txn *t)
{
    int code = ledger_validate(t);
    CHECK(code <= 0);
    CHECK(strcmp(coalition_errname(code), "UNKNOWN_ERROR") != 0);
    CHECK(ledger_validate(t) == code);
    if (code == 0) {
        CHECK(t->kind != COALITION__TXN_KIND__TXN_NONE);
        CHECK(t->base.n_unknown_fields == 0);
        CHECK(id_len_ok(t->partner) && id_len_ok(t->txn_id) && id_len_ok(t->member) &&
              id_len_ok(t->member_to) && id_len_ok(t->of_txn) && id_len_ok(t->card));
        CHECK(strlen(t->reason) <= LEDGER_REASON_MAX && strlen(t->name) <= LEDGER_REASON_MAX);
        CHECK(t->points >= 0 && t->points <= LEDGER_POINTS_MAX);
        check_batch_roundtrip(t, code);
    }
    return code;
}

/* Everything a node reads of a request; returns ledger_validate's code for a
 * Txn, 1 for any other variant, 2 for none.  Sets *field0 as walk does. */
static int visit(Coalition__Request *req, bool *field0)
{
    CHECK(req->base.descriptor == &coalition__request__descriptor);
    CHECK(protobuf_c_message_check(&req->base));
    struct walk w = {0, false};
    walk(&req->base, 0, &w);
    *field0 = w.field0;
    const ProtobufCMessage *v = variant(req);
    if (v == NULL) {
        return 2;
    }
    CHECK(v->descriptor != NULL && v->descriptor->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    if (req->op_case == COALITION__REQUEST__OP_TXN) {
        CHECK(v->descriptor == &coalition__txn__descriptor);
        return validate(req->txn);
    }
    return 1;
}

/* Packs `req` into a new buffer of *len bytes (caller frees). */
static uint8_t *pack(const Coalition__Request *req, size_t *len)
{
    *len = coalition__request__get_packed_size(req);
    uint8_t *buf = malloc(*len > 0 ? *len : 1);
    CHECK(buf != NULL);
    CHECK(coalition__request__pack(req, buf) == *len);
    return buf;
}

/* The framed form is what a client would send. */
static void check_frame(const Coalition__Request *req, const uint8_t *packed, size_t len)
{
    uint8_t *frame = NULL;
    size_t frame_len = 0;
    int rv = frame_pack_request(req, &frame, &frame_len);
    if (len == 0) {
        CHECK(rv == COALITION_E_BAD_FRAME);
    } else if (len > FRAME_PAYLOAD_MAX) {
        CHECK(rv == COALITION_E_FRAME_TOO_LARGE);
    } else {
        CHECK(rv == 0 && frame_len == FRAME_HEADER_LEN + len);
        CHECK(memcmp(frame + FRAME_HEADER_LEN, packed, len) == 0);
        free(frame);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Coalition__Request *req = NULL;
    int rv = frame_unpack_request(data, size, &req);
    CHECK(rv == 0 || rv == COALITION_E_BAD_FRAME);
    if (rv != 0) {
        return 0;
    }
    bool field0 = false;
    int code = visit(req, &field0);

    /* Re-packed, it unpacks again to the same request: same variant, same
     * verdict, and from then on the same bytes (the first pack may differ
     * from the input: duplicate fields merged, strings cut at a NUL). */
    size_t len = 0;
    uint8_t *packed = pack(req, &len);
    check_frame(req, packed, len);
    Coalition__Request *again = NULL;
    CHECK(!field0);
    rv = frame_unpack_request(packed, len, &again);
    CHECK(rv == 0);
    CHECK(again->id == req->id && again->op_case == req->op_case);
    CHECK(again->consistent == req->consistent && again->forwarded == req->forwarded);
    bool field0_again = false;
    CHECK(visit(again, &field0_again) == code);
    CHECK(field0_again == field0);
    size_t len2 = 0;
    uint8_t *packed2 = pack(again, &len2);
    CHECK(len2 == len && memcmp(packed2, packed, len) == 0);

    free(packed2);
    free(packed);
    frame_free_request(again);
    frame_free_request(req);
    return 0;
}
