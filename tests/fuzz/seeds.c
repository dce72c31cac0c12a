/* Writes the seed corpora of the fuzz targets (tests/fuzz/fuzz_*.c): a few
 * small, valid inputs per target, one file each, so that the fuzzers start
 * from every request variant and transaction kind instead of from nothing.
 * Usage: fuzz_seeds DIR (writes DIR/request/, DIR/frame/ and DIR/rules/;
 * the committed copy is tests/fuzz/corpus). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "coalition.pb-c.h"
#include "frame.h"
#include "rules.h"

/* Large enough for every seed here. */
#define SEED_LEN_MAX 4096

struct seed_buf {
    uint8_t data[SEED_LEN_MAX];
    size_t len;
};

static void die(const char *what, const char *path)
{
    fprintf(stderr, "fuzz_seeds: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        die("mkdir", path);
    }
}

static void write_file(const char *dir, const char *sub, const char *name, const void *data,
                       size_t len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        die("open", path);
    }
    if (fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        die("write", path);
    }
}

static void append(struct seed_buf *b, const void *data, size_t len)
{
    if (len > sizeof(b->data) - b->len) {
        fprintf(stderr, "fuzz_seeds: seed too large\n");
        exit(1);
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

/* Appends header + packed message, as frame_pack_* would. */
static void append_frame(struct seed_buf *b, const ProtobufCMessage *m)
{
    uint8_t hdr[FRAME_HEADER_LEN];
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *payload = malloc(len);
    if (payload == NULL) {
        exit(1);
    }
    protobuf_c_message_pack(m, payload);
    bytes_put_be32(hdr, (uint32_t)len);
    append(b, hdr, sizeof(hdr));
    append(b, payload, len);
    free(payload);
}

static void write_request(const char *dir, const char *name, const Coalition__Request *req)
{
    struct seed_buf b = {.len = 0};
    append_frame(&b, &req->base);
    write_file(dir, "request", name, b.data + FRAME_HEADER_LEN, b.len - FRAME_HEADER_LEN);
}

static void txn_seed(const char *dir, const char *name, Coalition__Txn *t)
{
    Coalition__Request req = COALITION__REQUEST__INIT;
    req.id = 7;
    req.op_case = COALITION__REQUEST__OP_TXN;
    req.txn = t;
    write_request(dir, name, &req);
}

static void request_seeds(const char *dir)
{
    Coalition__Txn t = COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_PARTNER_ADD;
    t.partner = "coffee";
    t.name = "Coffee Chain";
    txn_seed(dir, "txn_partner_add", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_MEMBER_ADD;
    t.member = "m-1";
    t.card = "card:0001";
    txn_seed(dir, "txn_member_add", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_AWARD;
    t.partner = "coffee";
    t.txn_id = "t1";
    t.member = "m-1";
    t.points = 120;
    t.reason = "latte";
    txn_seed(dir, "txn_award", &t);

    t.kind = COALITION__TXN_KIND__TXN_REDEEM;
    t.txn_id = "t2";
    t.reason = "";
    txn_seed(dir, "txn_redeem", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_REVERSE;
    t.partner = "coffee";
    t.txn_id = "t3";
    t.of_txn = "t1";
    txn_seed(dir, "txn_reverse", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_TRANSFER;
    t.partner = "coffee";
    t.txn_id = "t4";
    t.member = "m-1";
    t.member_to = "m-2";
    t.points = 5;
    txn_seed(dir, "txn_transfer", &t);

    /* A purchase award (points from the program) and the program itself. */
    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_AWARD;
    t.partner = "books";
    t.txn_id = "p1";
    t.member = "m-1";
    t.purchase_cents = 2599;
    t.paid_points_cents = 100;
    t.category = "novels";
    txn_seed(dir, "txn_award_purchase", &t);

    Coalition__CategoryRate rate = COALITION__CATEGORY_RATE__INIT;
    rate.category = "novels";
    rate.multiplier_pct = 200;
    Coalition__CategoryRate *rates[] = {&rate};
    Coalition__Campaign camp = COALITION__CAMPAIGN__INIT;
    camp.id = "spring";
    camp.start_ms = 1700000000000;
    camp.end_ms = 1710000000000;
    camp.bonus_points = 50;
    Coalition__Campaign *camps[] = {&camp};
    Coalition__Program prog = COALITION__PROGRAM__INIT;
    prog.point_value_mc = 1000;
    prog.base_rate_milli = 1000;
    prog.n_categories = 1;
    prog.categories = rates;
    prog.n_campaigns = 1;
    prog.campaigns = camps;
    prog.min_purchase_cents = 100;
    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_PROGRAM_SET;
    t.partner = "books";
    t.txn_id = "prog1";
    t.program = &prog;
    txn_seed(dir, "txn_program_set", &t);

    Coalition__Tier silver = COALITION__TIER__INIT;
    silver.name = "silver";
    silver.threshold = 1000;
    silver.multiplier_pct = 125;
    Coalition__Tier *tiers[] = {&silver};
    Coalition__Rules rules = COALITION__RULES__INIT;
    rules.n_tiers = 1;
    rules.tiers = tiers;
    rules.expiry_months = 24;
    rules.hold_timeout_s = 600;
    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_RULES_SET;
    t.txn_id = "rules1";
    t.rules = &rules;
    txn_seed(dir, "txn_rules_set", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_HOLD;
    t.partner = "coffee";
    t.txn_id = "h1";
    t.member = "m-1";
    t.points = 40;
    t.timeout_s = 120;
    txn_seed(dir, "txn_hold", &t);

    /* Five keys, one more than a member may have, one of them short. */
    uint8_t key[32];
    memset(key, 0xab, sizeof(key));
    ProtobufCBinaryData keys[] = {{sizeof(key), key},
                                  {sizeof(key), key},
                                  {sizeof(key), key},
                                  {sizeof(key), key},
                                  {sizeof(key) - 1, key}};
    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_IDENTIFY;
    t.txn_id = "id1";
    t.member = "m-1";
    t.n_lookup_keys = 1;
    t.lookup_keys = keys;
    txn_seed(dir, "txn_identify", &t);
    t.n_lookup_keys = 5;
    txn_seed(dir, "txn_identify_keys", &t);

    /* The other kinds, each with the fields it needs and no more. */
    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_CAPTURE;
    t.partner = "coffee";
    t.txn_id = "c1";
    t.of_txn = "h1";
    t.points = 30;
    txn_seed(dir, "txn_capture", &t);

    t.kind = COALITION__TXN_KIND__TXN_RELEASE;
    t.txn_id = "r1";
    t.points = 0;
    txn_seed(dir, "txn_release", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_CARD_REPLACE;
    t.txn_id = "cr1";
    t.member = "m-1";
    t.card = "card:0002";
    t.old_card = "card:0001";
    txn_seed(dir, "txn_card_replace", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_MERGE;
    t.txn_id = "mg1";
    t.member = "m-2";
    t.member_to = "m-1";
    txn_seed(dir, "txn_merge", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_ERASE;
    t.txn_id = "er1";
    t.member = "m-2";
    txn_seed(dir, "txn_erase", &t);

    /* Scheduled by the leader; validated again when applied. */
    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_HOLD_TIMEOUT;
    t.partner = "coffee";
    t.of_txn = "h1";
    txn_seed(dir, "txn_hold_timeout", &t);

    t = (Coalition__Txn)COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_EXPIRE;
    t.member = "m-1";
    txn_seed(dir, "txn_expire", &t);

    /* Every other request variant, once. */
    Coalition__Request req = COALITION__REQUEST__INIT;
    Coalition__StatusRequest status = COALITION__STATUS_REQUEST__INIT;
    req.id = 1;
    req.op_case = COALITION__REQUEST__OP_STATUS;
    req.status = &status;
    write_request(dir, "status", &req);

    Coalition__BalanceRequest bal = COALITION__BALANCE_REQUEST__INIT;
    bal.member = "m-1";
    req = (Coalition__Request)COALITION__REQUEST__INIT;
    req.id = 2;
    req.consistent = true;
    req.op_case = COALITION__REQUEST__OP_BALANCE;
    req.balance = &bal;
    write_request(dir, "balance", &req);

    Coalition__HistoryRequest hist = COALITION__HISTORY_REQUEST__INIT;
    hist.member = "m-1";
    hist.limit = 5;
    req = (Coalition__Request)COALITION__REQUEST__INIT;
    req.id = 3;
    req.op_case = COALITION__REQUEST__OP_HISTORY;
    req.history = &hist;
    write_request(dir, "history", &req);

    Coalition__ClusterChangeRequest change = COALITION__CLUSTER_CHANGE_REQUEST__INIT;
    change.op = COALITION__CLUSTER_CHANGE_REQUEST__OP__JOIN;
    change.id = 4;
    change.raft_addr = "127.0.0.1:9001";
    change.client_addr = "127.0.0.1:7001";
    req = (Coalition__Request)COALITION__REQUEST__INIT;
    req.id = 4;
    req.forwarded = true;
    req.op_case = COALITION__REQUEST__OP_CLUSTER_CHANGE;
    req.cluster_change = &change;
    write_request(dir, "cluster_change", &req);

    Coalition__EntryHashRequest eh = COALITION__ENTRY_HASH_REQUEST__INIT;
    eh.seq = 42;
    req = (Coalition__Request)COALITION__REQUEST__INIT;
    req.id = 5;
    req.op_case = COALITION__REQUEST__OP_ENTRY_HASH;
    req.entry_hash = &eh;
    write_request(dir, "entry_hash", &req);

    Coalition__IdentifyRequest ident = COALITION__IDENTIFY_REQUEST__INIT;
    ident.member = "m-1";
    ident.phone = "+44 20 7946 0000";
    ident.email = "someone@example.org";
    ident.txn_id = "id2";
    req = (Coalition__Request)COALITION__REQUEST__INIT;
    req.id = 6;
    req.op_case = COALITION__REQUEST__OP_IDENTIFY;
    req.identify = &ident;
    write_request(dir, "identify", &req);

    Coalition__ReportRequest rep = COALITION__REPORT_REQUEST__INIT;
    rep.partner = "coffee";
    rep.from_ms = 1700000000000;
    rep.to_ms = 1710000000000;
    req = (Coalition__Request)COALITION__REQUEST__INIT;
    req.id = 8;
    req.op_case = COALITION__REQUEST__OP_REPORT;
    req.report = &rep;
    write_request(dir, "report", &req);
}

/* The four parameter bytes of fuzz_frame: limit, chunking, chunk seed. */
static void frame_params(struct seed_buf *b, uint8_t limit, uint8_t chunking, uint16_t seed)
{
    uint8_t p[4] = {limit, chunking, (uint8_t)(seed >> 8), (uint8_t)seed};
    append(b, p, sizeof(p));
}

static void frame_seeds(const char *dir)
{
    Coalition__StatusRequest status = COALITION__STATUS_REQUEST__INIT;
    Coalition__Request req_status = COALITION__REQUEST__INIT;
    req_status.id = 1;
    req_status.op_case = COALITION__REQUEST__OP_STATUS;
    req_status.status = &status;

    Coalition__Txn t = COALITION__TXN__INIT;
    t.kind = COALITION__TXN_KIND__TXN_AWARD;
    t.partner = "coffee";
    t.txn_id = "t1";
    t.member = "m-1";
    t.points = 120;
    Coalition__Request req_award = COALITION__REQUEST__INIT;
    req_award.id = 2;
    req_award.op_case = COALITION__REQUEST__OP_TXN;
    req_award.txn = &t;

    Coalition__TxnResult tr = COALITION__TXN_RESULT__INIT;
    tr.txn_id = "t1";
    tr.seq = 9;
    tr.points = 120;
    Coalition__Response resp = COALITION__RESPONSE__INIT;
    resp.id = 2;
    resp.result_case = COALITION__RESPONSE__RESULT_TXN;
    resp.txn = &tr;

    /* Three pipelined requests fed a byte at a time. */
    struct seed_buf b = {.len = 0};
    frame_params(&b, 0x00, 0x00, 1);
    append_frame(&b, &req_status.base);
    append_frame(&b, &req_award.base);
    append_frame(&b, &req_status.base);
    write_file(dir, "frame", "pipelined_bytewise", b.data, b.len);

    /* The same in random chunks of up to 16 bytes, one frame per feed. */
    b.len = 0;
    frame_params(&b, 0x00, 0x80 | 4, 77);
    append_frame(&b, &req_award.base);
    append_frame(&b, &req_status.base);
    append_frame(&b, &resp.base);
    write_file(dir, "frame", "pipelined_chunks", b.data, b.len);

    /* A response, then a truncated frame (EOF mid-payload). */
    b.len = 0;
    frame_params(&b, 0x00, 20, 3);
    append_frame(&b, &resp.base);
    append_frame(&b, &req_award.base);
    b.len -= 3;
    write_file(dir, "frame", "truncated", b.data, b.len);

    /* A zero-length header after a good frame. */
    b.len = 0;
    frame_params(&b, 0x00, 2, 5);
    append_frame(&b, &req_status.base);
    static const uint8_t zero[4] = {0, 0, 0, 0};
    append(&b, zero, sizeof(zero));
    append_frame(&b, &req_status.base);
    write_file(dir, "frame", "zero_length", b.data, b.len);

    /* A small limit (1 + 4 * 4 = 17 bytes): the award frame is too large. */
    b.len = 0;
    frame_params(&b, 0x84, 3, 9);
    append_frame(&b, &req_status.base);
    append_frame(&b, &req_award.base);
    write_file(dir, "frame", "too_large", b.data, b.len);
}

/* fuzz_rules' parameter block (see its input layout), then Program and
 * Rules. */
struct rules_params {
    uint64_t time_ms;
    int64_t purchase_cents;
    int64_t paid_points_cents;
    int64_t earned;
    uint64_t earned_ms;
    uint32_t tier_pct;
    uint32_t requested_s;
    uint8_t category_sel;
    uint8_t mode;
};

static void rules_seed(const char *dir, const char *name, const struct rules_params *p,
                       const Coalition__Program *prog, const Coalition__Rules *rules)
{
    struct seed_buf b = {.len = 0};
    uint8_t hdr[52];
    bytes_put_be64(hdr, p->time_ms);
    bytes_put_be64(hdr + 8, (uint64_t)p->purchase_cents);
    bytes_put_be64(hdr + 16, (uint64_t)p->paid_points_cents);
    bytes_put_be64(hdr + 24, (uint64_t)p->earned);
    bytes_put_be64(hdr + 32, p->earned_ms);
    bytes_put_be32(hdr + 40, p->tier_pct);
    bytes_put_be32(hdr + 44, p->requested_s);
    hdr[48] = p->category_sel;
    hdr[49] = p->mode;
    size_t plen = protobuf_c_message_get_packed_size(&prog->base);
    hdr[50] = (uint8_t)(plen >> 8);
    hdr[51] = (uint8_t)plen;
    append(&b, hdr, sizeof(hdr));
    struct seed_buf m = {.len = 0};
    append_frame(&m, &prog->base);
    append(&b, m.data + FRAME_HEADER_LEN, m.len - FRAME_HEADER_LEN);
    m.len = 0;
    append_frame(&m, &rules->base);
    append(&b, m.data + FRAME_HEADER_LEN, m.len - FRAME_HEADER_LEN);
    write_file(dir, "rules", name, b.data, b.len);
}

static void rules_seeds(const char *dir)
{
    Coalition__CategoryRate novels = COALITION__CATEGORY_RATE__INIT;
    novels.category = "novels";
    novels.multiplier_pct = 200;
    Coalition__CategoryRate maps = COALITION__CATEGORY_RATE__INIT;
    maps.category = "maps";
    maps.multiplier_pct = 100;
    Coalition__CategoryRate *rates[] = {&novels, &maps};
    Coalition__Campaign spring = COALITION__CAMPAIGN__INIT;
    spring.id = "spring";
    spring.start_ms = 1700000000000;
    spring.end_ms = 1710000000000;
    spring.multiplier_pct = 300;
    spring.category = "novels";
    Coalition__Campaign bonus = COALITION__CAMPAIGN__INIT;
    bonus.id = "welcome";
    bonus.start_ms = 1600000000000;
    bonus.end_ms = 1800000000000;
    bonus.bonus_points = 25;
    Coalition__Campaign *camps[] = {&spring, &bonus};
    Coalition__Program prog = COALITION__PROGRAM__INIT;
    prog.point_value_mc = 1000;
    prog.base_rate_milli = 1500;
    prog.n_categories = 2;
    prog.categories = rates;
    prog.n_campaigns = 2;
    prog.campaigns = camps;
    prog.min_purchase_cents = 100;
    prog.lock_days = 14;

    Coalition__Tier silver = COALITION__TIER__INIT;
    silver.name = "silver";
    silver.threshold = 1000;
    silver.multiplier_pct = 125;
    Coalition__Tier gold = COALITION__TIER__INIT;
    gold.name = "gold";
    gold.threshold = 5000;
    gold.multiplier_pct = 150;
    Coalition__Tier *tiers[] = {&silver, &gold};
    Coalition__Rules rules = COALITION__RULES__INIT;
    rules.n_tiers = 2;
    rules.tiers = tiers;
    rules.expiry_months = 24;
    rules.hold_timeout_s = 600;

    /* A novel in the spring campaign, by a silver member. */
    struct rules_params p = {
        .time_ms = 1705000000000,
        .purchase_cents = 2599,
        .paid_points_cents = 100,
        .earned = 1500,
        .earned_ms = 1705000000000,
        .tier_pct = 100,
        .requested_s = 0,
        .category_sel = 4,
        .mode = 2,
    };
    rules_seed(dir, "campaign_tier", &p, &prog, &rules);

    /* No program: the default rate, a raw tier, a hold of 120 s. */
    p.category_sel = 1;
    p.mode = 4 | 3;
    p.tier_pct = 110;
    p.requested_s = 120;
    rules_seed(dir, "no_program", &p, &prog, &rules);

    /* At the bounds: the largest purchase at the largest rate and
     * multipliers overflows the points limit. */
    Coalition__Program big = prog;
    big.base_rate_milli = 1000000000;
    novels.multiplier_pct = 100000;
    p.purchase_cents = 1000000000000;
    p.paid_points_cents = 0;
    p.category_sel = 4;
    p.mode = 3;
    p.tier_pct = 100000;
    p.earned_ms = 253402300799999;
    rules_seed(dir, "bounds", &p, &big, &rules);
    novels.multiplier_pct = 200;

    /* Broken: a category twice, tiers out of order. */
    Coalition__CategoryRate *twice[] = {&novels, &novels};
    Coalition__Program bad = prog;
    bad.categories = twice;
    Coalition__Tier *reversed[] = {&gold, &silver};
    Coalition__Rules bad_rules = rules;
    bad_rules.tiers = reversed;
    p = (struct rules_params){.time_ms = 1, .purchase_cents = 500, .earned = 7000, .mode = 2};
    rules_seed(dir, "invalid", &p, &bad, &bad_rules);

    /* One more category, campaign and tier than allowed. */
    Coalition__CategoryRate *many_rates[RULES_CATEGORIES_MAX + 1];
    Coalition__Campaign *many_camps[RULES_CAMPAIGNS_MAX + 1];
    Coalition__Tier *many_tiers[RULES_TIERS_MAX + 1];
    for (size_t i = 0; i < RULES_CATEGORIES_MAX + 1; i++) {
        many_rates[i] = &maps;
    }
    for (size_t i = 0; i < RULES_CAMPAIGNS_MAX + 1; i++) {
        many_camps[i] = &bonus;
    }
    for (size_t i = 0; i < RULES_TIERS_MAX + 1; i++) {
        many_tiers[i] = &silver;
    }
    Coalition__Program many = prog;
    many.n_categories = RULES_CATEGORIES_MAX + 1;
    many.categories = many_rates;
    many.n_campaigns = RULES_CAMPAIGNS_MAX + 1;
    many.campaigns = many_camps;
    Coalition__Rules many_rules = rules;
    many_rules.n_tiers = RULES_TIERS_MAX + 1;
    many_rules.tiers = many_tiers;
    rules_seed(dir, "too_many", &p, &many, &many_rules);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char path[4096];
    make_dir(dir);
    snprintf(path, sizeof(path), "%s/request", dir);
    make_dir(path);
    snprintf(path, sizeof(path), "%s/frame", dir);
    make_dir(path);
    snprintf(path, sizeof(path), "%s/rules", dir);
    make_dir(path);
    request_seeds(dir);
    frame_seeds(dir);
    rules_seeds(dir);
    return 0;
}
