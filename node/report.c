/* Settlement statements and KPI reports (contract in report.h).  One scan of
 * the entries in sequence order from a store snapshot fills per-partner,
 * per-flow and (for KPIs) per-member tallies, then the results are built from
 * them in sorted order.  Only the entries are read ('e' seq8 -> hash(32) +
 * packed Entry, layout in node/ledger.c), never the ledger's derived state, so
 * that a report is explained by the hash-chained entries alone.  Checking the
 * chain is ledger_verify's job, not this file's. */
#include "report.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "errors.h"
#include "rules.h"

#define REPORT_HASH_LEN      32 /* stored in front of every packed entry */
#define REPORT_TALLY_CAP_MIN 64

_Static_assert((REPORT_TALLY_CAP_MIN & (REPORT_TALLY_CAP_MIN - 1)) == 0, "a power of two");
_Static_assert(RULES_DEFAULT_POINT_VALUE_MC <= INT64_MAX, "a point value fits int64");

/* ---------------------------------------------------------------------------
 * Tallies: an open-addressing table from a byte-string key to a dense index
 * (0, 1, 2... in order of first sight), with one fixed-size record per index,
 * zeroed when its key is added.  Records move when the table grows: look them
 * up by index after every insertion. */

struct tally {
    uint32_t *slots;     /* [cap]: 0 empty, else index + 1 */
    size_t cap;          /* a power of two, or 0 before the first key */
    char **keys;         /* [len]: malloc'd copies, NUL-terminated */
    size_t *klens;       /* [len] */
    unsigned char *recs; /* [len * rec_size] */
    size_t len, room;    /* keys held, keys the arrays have room for */
    size_t rec_size;
};

static void tally_init(struct tally *t, size_t rec_size)
{
    memset(t, 0, sizeof(*t));
    t->rec_size = rec_size;
}

static void tally_free(struct tally *t)
{
    for (size_t i = 0; i < t->len; i++) {
        free(t->keys[i]);
    }
    free(t->slots);
    free(t->keys);
    free(t->klens);
    free(t->recs);
    memset(t, 0, sizeof(*t));
}

static uint64_t tally_hash(const void *key, size_t klen)
{
    return bytes_fnv1a(BYTES_FNV1A_INIT, key, klen);
}

/* The slot holding `key`, or the empty slot where it would go. */
static size_t tally_slot(const struct tally *t, const void *key, size_t klen)
{
    assert(t->cap > 0 && (t->cap & (t->cap - 1)) == 0);
    size_t i = tally_hash(key, klen) & (t->cap - 1);
    for (;;) {
        uint32_t s = t->slots[i];
        if (s == 0 || (t->klens[s - 1] == klen && memcmp(t->keys[s - 1], key, klen) == 0)) {
            return i;
        }
        i = (i + 1) & (t->cap - 1);
    }
}

/* Room for one more key: slots kept under 70% full, arrays grown by half. */
static int tally_reserve(struct tally *t)
{
    if (t->len >= UINT32_MAX - 1) {
        return COALITION_E_NOMEM;
    }
    if ((t->len + 1) * 10 >= t->cap * 7) {
        size_t cap = t->cap == 0 ? REPORT_TALLY_CAP_MIN : t->cap * 2;
        uint32_t *slots = calloc(cap, sizeof(*slots));
        if (slots == NULL) {
            return COALITION_E_NOMEM;
        }
        free(t->slots);
        t->slots = slots;
        t->cap = cap;
        for (size_t i = 0; i < t->len; i++) {
            t->slots[tally_slot(t, t->keys[i], t->klens[i])] = (uint32_t)(i + 1);
        }
    }
    if (t->len == t->room) {
        size_t room = t->room == 0 ? REPORT_TALLY_CAP_MIN : t->room + t->room / 2;
        char **keys = realloc(t->keys, room * sizeof(*keys));
        if (keys == NULL) {
            return COALITION_E_NOMEM;
        }
        t->keys = keys;
        size_t *klens = realloc(t->klens, room * sizeof(*klens));
        if (klens == NULL) {
            return COALITION_E_NOMEM;
        }
        t->klens = klens;
        unsigned char *recs = realloc(t->recs, room * t->rec_size);
        if (recs == NULL) {
            return COALITION_E_NOMEM;
        }
        t->recs = recs;
        t->room = room;
    }
    return 0;
}

/* Finds `key` (klen bytes, borrowed) and sets *idx.  If it is absent and `add`
 * is set, adds it with a zeroed record.  Returns 0, 1 (absent, not added) or
 * NOMEM. */
static int tally_find(struct tally *t, const void *key, size_t klen, bool add, uint32_t *idx)
{
    if (t->cap > 0) {
        uint32_t s = t->slots[tally_slot(t, key, klen)];
        if (s != 0) {
            *idx = s - 1;
            return 0;
        }
    }
    if (!add) {
        return 1;
    }
    int rv = tally_reserve(t);
    if (rv != 0) {
        return rv;
    }
    char *copy = malloc(klen + 1);
    if (copy == NULL) {
        return COALITION_E_NOMEM;
    }
    memcpy(copy, key, klen);
    copy[klen] = '\0';
    size_t i = t->len++;
    t->keys[i] = copy;
    t->klens[i] = klen;
    memset(t->recs + i * t->rec_size, 0, t->rec_size);
    t->slots[tally_slot(t, key, klen)] = (uint32_t)(i + 1);
    *idx = (uint32_t)i;
    return 0;
}

static void *tally_rec(const struct tally *t, uint32_t idx)
{
    assert(idx < t->len);
    return t->recs + (size_t)idx * t->rec_size;
}

static const char *tally_key(const struct tally *t, uint32_t idx)
{
    assert(idx < t->len);
    return t->keys[idx];
}

/* ---------------------------------------------------------------------------
 * The scan */

/* What the entries say about one partner, as an issuer and as a redeemer.
 * Unsuffixed figures are the window's, *_total from the first entry on. */
struct partner {
    bool admitted;     /* by a PARTNER_ADD before to_ms */
    uint64_t value_mc; /* point value as of the entry being scanned */
    int64_t issued, issued_total;
    int64_t redeemed, redeemed_total; /* at this partner, any issuer */
    int64_t expired, expired_total;
    int64_t spent_total; /* this issuer's points redeemed anywhere */
};

/* One (issuer, redeemer) pair, keyed by the two partner indexes. */
struct flow {
    uint32_t issuer, redeemer; /* partner indexes */
    int64_t points, value_mc;  /* in the window */
    int64_t points_total;
};

/* One member in a KPI report. */
struct member {
    uint32_t purchases; /* purchase awards in the window */
    bool active;        /* in the window */
    bool active_prev;   /* in the previous window */
};

struct scan {
    uint64_t from_ms, to_ms;
    uint64_t prev_from_ms;   /* start of the previous window (KPI) */
    bool kpi;                /* tally members and purchases too */
    const char *kpi_partner; /* borrowed; NULL: every partner */
    uint64_t through_seq;    /* last entry before to_ms */
    struct tally partners;   /* struct partner by id */
    struct tally flows;      /* struct flow by (issuer, redeemer) indexes */
    struct tally members;    /* struct member by id (KPI only) */
    uint64_t purchases;      /* in the window (KPI only) */
    int64_t purchase_cents;
};

static bool add_to(int64_t *acc, int64_t delta)
{
    return !__builtin_add_overflow(*acc, delta, acc);
}

static bool mul_value(int64_t points, uint64_t value_mc, int64_t *out)
{
    return value_mc <= (uint64_t)INT64_MAX &&
           !__builtin_mul_overflow(points, (int64_t)value_mc, out);
}

/* The id of `account` if it is of kind `kind` ("<kind>:<id>"), else NULL. */
static const char *account_id(const char *account, char kind)
{
    if (account != NULL && account[0] == kind && account[1] == ':') {
        return account + 2;
    }
    return NULL;
}

/* The index of partner `id`, added with the default point value if new. */
static int scan_partner(struct scan *sc, const char *id, uint32_t *idx)
{
    size_t before = sc->partners.len;
    int rv = tally_find(&sc->partners, id, strlen(id), true, idx);
    if (rv == 0 && sc->partners.len > before) {
        struct partner *p = tally_rec(&sc->partners, *idx);
        p->value_mc = RULES_DEFAULT_POINT_VALUE_MC;
    }
    return rv;
}

/* `points` (signed) of `issuer` redeemed at `redeemer`. */
static int scan_flow(struct scan *sc, const char *issuer, const char *redeemer, int64_t points,
                     bool in_window)
{
    if (issuer == NULL || issuer[0] == '\0') {
        return COALITION_E_VERIFY_FAILED;
    }
    uint32_t pi = 0, qi = 0, fi = 0;
    int rv = scan_partner(sc, issuer, &pi);
    if (rv == 0) {
        rv = scan_partner(sc, redeemer, &qi);
    }
    if (rv != 0) {
        return rv;
    }
    uint32_t key[2] = {pi, qi};
    rv = tally_find(&sc->flows, key, sizeof(key), true, &fi);
    if (rv != 0) {
        return rv;
    }
    struct flow *f = tally_rec(&sc->flows, fi);
    struct partner *p = tally_rec(&sc->partners, pi);
    struct partner *q = tally_rec(&sc->partners, qi);
    f->issuer = pi;
    f->redeemer = qi;
    int64_t value_mc = 0;
    bool ok = mul_value(points, p->value_mc, &value_mc) && add_to(&f->points_total, points) &&
              add_to(&p->spent_total, points) && add_to(&q->redeemed_total, points);
    if (ok && in_window) {
        ok = add_to(&f->points, points) && add_to(&f->value_mc, value_mc) &&
             add_to(&q->redeemed, points);
    }
    return ok ? 0 : COALITION_E_OVERFLOW;
}

/* Adds `delta` to a partner's issued or expired figures. */
static int scan_partner_add(struct scan *sc, const char *id, bool expired, int64_t delta,
                            bool in_window)
{
    uint32_t pi = 0;
    int rv = scan_partner(sc, id, &pi);
    if (rv != 0) {
        return rv;
    }
    struct partner *p = tally_rec(&sc->partners, pi);
    int64_t *win = expired ? &p->expired : &p->issued;
    int64_t *total = expired ? &p->expired_total : &p->issued_total;
    bool ok = add_to(total, delta) && (!in_window || add_to(win, delta));
    return ok ? 0 : COALITION_E_OVERFLOW;
}

/* One posting: issuance (i:X), breakage (x:X) and redemptions (r:Q, with the
 * posting's issuer).  Member-to-member postings change none of them. */
static int scan_posting(struct scan *sc, const Coalition__Posting *p, bool in_window)
{
    if (p->amount <= 0 || p->debit == NULL || p->credit == NULL) {
        return COALITION_E_VERIFY_FAILED;
    }
    const char *id = NULL;
    int rv = 0;
    if ((id = account_id(p->debit, 'i')) != NULL) {
        rv = scan_partner_add(sc, id, false, p->amount, in_window);
    }
    if (rv == 0 && (id = account_id(p->credit, 'i')) != NULL) {
        rv = scan_partner_add(sc, id, false, -p->amount, in_window);
    }
    if (rv == 0 && (id = account_id(p->credit, 'x')) != NULL) {
        rv = scan_partner_add(sc, id, true, p->amount, in_window);
    }
    if (rv == 0 && (id = account_id(p->debit, 'x')) != NULL) {
        rv = scan_partner_add(sc, id, true, -p->amount, in_window);
    }
    if (rv == 0 && (id = account_id(p->credit, 'r')) != NULL) {
        rv = scan_flow(sc, p->issuer, id, p->amount, in_window);
    }
    if (rv == 0 && (id = account_id(p->debit, 'r')) != NULL) {
        rv = scan_flow(sc, p->issuer, id, -p->amount, in_window);
    }
    return rv;
}

static bool scan_kpi_partner(const struct scan *sc, const char *id)
{
    return sc->kpi_partner == NULL || strcmp(sc->kpi_partner, id) == 0;
}

/* Marks `member` active in the window or the previous one, counting a
 * purchase if `purchase`. */
static int scan_member(struct scan *sc, const char *member, bool in_window, bool purchase)
{
    uint32_t mi = 0;
    int rv = tally_find(&sc->members, member, strlen(member), true, &mi);
    if (rv != 0) {
        return rv;
    }
    struct member *m = tally_rec(&sc->members, mi);
    if (!in_window) {
        m->active_prev = true;
        return 0;
    }
    m->active = true;
    if (purchase && m->purchases < UINT32_MAX) {
        m->purchases++;
    }
    return 0;
}

/* KPI figures of one entry in the window or the previous one: purchase
 * awards by the partner, and redemptions (REDEEM, CAPTURE) at it. */
static int scan_kpi(struct scan *sc, const Coalition__Entry *e, bool in_window)
{
    const Coalition__Txn *t = e->txn;
    if (t == NULL) {
        return 0;
    }
    if (t->kind == COALITION__TXN_KIND__TXN_AWARD && t->purchase_cents > 0 && t->member != NULL &&
        t->member[0] != '\0' && t->partner != NULL && scan_kpi_partner(sc, t->partner)) {
        if (in_window) {
            if (__builtin_add_overflow(sc->purchase_cents, t->purchase_cents,
                                       &sc->purchase_cents)) {
                return COALITION_E_OVERFLOW;
            }
            sc->purchases++;
        }
        return scan_member(sc, t->member, in_window, true);
    }
    if (t->kind != COALITION__TXN_KIND__TXN_REDEEM && t->kind != COALITION__TXN_KIND__TXN_CAPTURE) {
        return 0;
    }
    for (size_t i = 0; i < e->n_postings; i++) {
        const Coalition__Posting *p = e->postings[i];
        const char *at = account_id(p->credit, 'r');
        const char *member = account_id(p->debit, 'm');
        if (member == NULL) {
            member = account_id(p->debit, 'h');
        }
        if (at != NULL && member != NULL && member[0] != '\0' && scan_kpi_partner(sc, at)) {
            int rv = scan_member(sc, member, in_window, false);
            if (rv != 0) {
                return rv;
            }
        }
    }
    return 0;
}

/* One entry before to_ms. */
static int scan_entry(struct scan *sc, const Coalition__Entry *e)
{
    assert(e->time_ms < sc->to_ms);
    bool in_window = e->time_ms >= sc->from_ms;
    const Coalition__Txn *t = e->txn;
    int rv = 0;
    uint32_t pi = 0;
    if (t != NULL && t->partner != NULL && t->partner[0] != '\0') {
        if (t->kind == COALITION__TXN_KIND__TXN_PARTNER_ADD) {
            rv = scan_partner(sc, t->partner, &pi);
            if (rv == 0) {
                ((struct partner *)tally_rec(&sc->partners, pi))->admitted = true;
            }
        } else if (t->kind == COALITION__TXN_KIND__TXN_PROGRAM_SET) {
            rv = scan_partner(sc, t->partner, &pi);
            if (rv == 0) {
                struct partner *p = tally_rec(&sc->partners, pi);
                p->value_mc =
                    t->program != NULL ? t->program->point_value_mc : RULES_DEFAULT_POINT_VALUE_MC;
            }
        }
    }
    for (size_t i = 0; rv == 0 && i < e->n_postings; i++) {
        rv = scan_posting(sc, e->postings[i], in_window);
    }
    if (rv == 0 && sc->kpi && e->time_ms >= sc->prev_from_ms) {
        rv = scan_kpi(sc, e, in_window);
    }
    return rv;
}

/* Scans every entry before to_ms, in sequence order, from a snapshot. */
static int scan_run(struct store *s, struct scan *sc)
{
    struct store_snapshot *snap = store_snapshot_create(s);
    if (snap == NULL) {
        return COALITION_E_STORAGE;
    }
    struct store_iter *it = NULL;
    int rv = store_iter_create(s, NULL, snap, "e", 1, &it);
    if (rv != 0) {
        store_snapshot_release(s, snap);
        return rv;
    }
    for (store_iter_seek_first(it); rv == 0 && store_iter_valid(it); store_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const uint8_t *kp = store_iter_key(it, &klen);
        const uint8_t *vp = store_iter_value(it, &vlen);
        if (klen != 9 || vlen < REPORT_HASH_LEN) {
            rv = COALITION_E_VERIFY_FAILED;
            break;
        }
        uint64_t seq = bytes_get_be64(kp + 1);
        Coalition__Entry *e =
            coalition__entry__unpack(NULL, vlen - REPORT_HASH_LEN, vp + REPORT_HASH_LEN);
        if (e == NULL || e->seq != seq) {
            rv = COALITION_E_VERIFY_FAILED;
        } else if (e->time_ms >= sc->to_ms) {
            /* Times never decrease with seq: nothing later is in range. */
            coalition__entry__free_unpacked(e, NULL);
            break;
        } else {
            sc->through_seq = seq;
            rv = scan_entry(sc, e);
        }
        if (e != NULL) {
            coalition__entry__free_unpacked(e, NULL);
        }
    }
    if (rv == 0) {
        rv = store_iter_status(it);
    }
    store_iter_destroy(it);
    store_snapshot_release(s, snap);
    return rv;
}

static void scan_init(struct scan *sc, uint64_t from_ms, uint64_t to_ms)
{
    assert(from_ms < to_ms);
    memset(sc, 0, sizeof(*sc));
    sc->from_ms = from_ms;
    sc->to_ms = to_ms;
    sc->prev_from_ms = from_ms;
    tally_init(&sc->partners, sizeof(struct partner));
    tally_init(&sc->flows, sizeof(struct flow));
    tally_init(&sc->members, sizeof(struct member));
}

static void scan_free(struct scan *sc)
{
    tally_free(&sc->partners);
    tally_free(&sc->flows);
    tally_free(&sc->members);
}

/* ---------------------------------------------------------------------------
 * From the tallies to results */

/* A flow or a partner with its names, for sorting (borrowed from the scan). */
struct flow_row {
    const char *issuer, *redeemer;
    const struct flow *f;
};

struct partner_row {
    const char *id;
    const struct partner *p;
    int64_t receivable_mc, payable_mc;
};

static int flow_row_cmp_names(const void *a, const void *b)
{
    const struct flow_row *x = a, *y = b;
    int c = strcmp(x->issuer, y->issuer);
    return c != 0 ? c : strcmp(x->redeemer, y->redeemer);
}

static int flow_row_cmp_points(const void *a, const void *b)
{
    const struct flow_row *x = a, *y = b;
    if (x->f->points != y->f->points) {
        return x->f->points > y->f->points ? -1 : 1;
    }
    return flow_row_cmp_names(a, b);
}

static int partner_row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct partner_row *)a)->id, ((const struct partner_row *)b)->id);
}

/* The window's flows that pass the filter: every flow with nonzero points or
 * value (`top` false), or the cross-partner flows with positive points that
 * involve `partner` (NULL: any) (`top` true); sorted for the purpose.  *rows
 * is malloc'd (caller frees; NULL when *n is 0). */
static int flow_rows(const struct scan *sc, bool top, const char *partner, struct flow_row **rows,
                     size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (sc->flows.len == 0) {
        return 0;
    }
    struct flow_row *r = malloc(sc->flows.len * sizeof(*r));
    if (r == NULL) {
        return COALITION_E_NOMEM;
    }
    size_t k = 0;
    for (uint32_t i = 0; i < sc->flows.len; i++) {
        const struct flow *f = tally_rec(&sc->flows, i);
        struct flow_row row = {.issuer = tally_key(&sc->partners, f->issuer),
                               .redeemer = tally_key(&sc->partners, f->redeemer),
                               .f = f};
        bool keep = f->points != 0 || f->value_mc != 0;
        if (top) {
            keep = f->issuer != f->redeemer && f->points > 0 &&
                   (partner == NULL || strcmp(row.issuer, partner) == 0 ||
                    strcmp(row.redeemer, partner) == 0);
        }
        if (keep) {
            r[k++] = row;
        }
    }
    qsort(r, k, sizeof(*r), top ? flow_row_cmp_points : flow_row_cmp_names);
    *rows = r;
    *n = k;
    return 0;
}

/* Admitted partners in id order with their receivable and payable (window
 * flows between different partners).  *rows is malloc'd (caller frees). */
static int partner_rows(const struct scan *sc, struct partner_row **rows, size_t *n)
{
    *rows = NULL;
    *n = 0;
    if (sc->partners.len == 0) {
        return 0;
    }
    struct partner_row *r = calloc(sc->partners.len, sizeof(*r));
    int64_t *recv = calloc(sc->partners.len, sizeof(*recv));
    int64_t *pay = calloc(sc->partners.len, sizeof(*pay));
    int rv = r != NULL && recv != NULL && pay != NULL ? 0 : COALITION_E_NOMEM;
    for (uint32_t i = 0; rv == 0 && i < sc->flows.len; i++) {
        const struct flow *f = tally_rec(&sc->flows, i);
        if (f->issuer != f->redeemer &&
            (!add_to(&recv[f->redeemer], f->value_mc) || !add_to(&pay[f->issuer], f->value_mc))) {
            rv = COALITION_E_OVERFLOW;
        }
    }
    size_t k = 0;
    for (uint32_t i = 0; rv == 0 && i < sc->partners.len; i++) {
        const struct partner *p = tally_rec(&sc->partners, i);
        if (p->admitted) {
            r[k++] = (struct partner_row){.id = tally_key(&sc->partners, i),
                                          .p = p,
                                          .receivable_mc = recv[i],
                                          .payable_mc = pay[i]};
        }
    }
    free(recv);
    free(pay);
    if (rv != 0) {
        free(r);
        return rv;
    }
    qsort(r, k, sizeof(*r), partner_row_cmp);
    *rows = r;
    *n = k;
    return 0;
}

/* outstanding = issued - redeemed anywhere - expired, all through to_ms;
 * liability at the point value as of to_ms. */
static bool partner_outstanding(const struct partner *p, int64_t *outstanding,
                                int64_t *liability_mc)
{
    return !__builtin_sub_overflow(p->issued_total, p->spent_total, outstanding) &&
           !__builtin_sub_overflow(*outstanding, p->expired_total, outstanding) &&
           mul_value(*outstanding, p->value_mc, liability_mc);
}

static Coalition__SettlementFlow *flow_message(const struct flow_row *row)
{
    Coalition__SettlementFlow *m = malloc(sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    coalition__settlement_flow__init(m);
    m->points = row->f->points;
    m->value_mc = row->f->value_mc;
    m->issuer = strdup(row->issuer);
    if (m->issuer == NULL) {
        coalition__settlement_flow__free_unpacked(m, NULL);
        return NULL;
    }
    m->redeemer = strdup(row->redeemer);
    if (m->redeemer == NULL) {
        coalition__settlement_flow__free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

/* Fills r->flows from `rows` (at most `max`). */
static int flow_messages(const struct flow_row *rows, size_t n, size_t max,
                         Coalition__SettlementFlow ***flows, size_t *n_flows)
{
    n = n < max ? n : max;
    if (n == 0) {
        return 0;
    }
    *flows = calloc(n, sizeof(**flows));
    if (*flows == NULL) {
        return COALITION_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        (*flows)[i] = flow_message(&rows[i]);
        if ((*flows)[i] == NULL) {
            return COALITION_E_NOMEM;
        }
        (*n_flows)++;
    }
    return 0;
}

static int position_message(const struct partner_row *row, Coalition__PartnerPosition **out)
{
    const struct partner *p = row->p;
    Coalition__PartnerPosition *m = malloc(sizeof(*m));
    if (m == NULL) {
        return COALITION_E_NOMEM;
    }
    coalition__partner_position__init(m);
    m->issued = p->issued;
    m->redeemed_at = p->redeemed;
    m->expired = p->expired;
    m->issued_total = p->issued_total;
    m->redeemed_total = p->redeemed_total;
    m->expired_total = p->expired_total;
    m->receivable_mc = row->receivable_mc;
    m->payable_mc = row->payable_mc;
    int rv = 0;
    if (!partner_outstanding(p, &m->outstanding, &m->liability_mc) ||
        __builtin_sub_overflow(m->receivable_mc, m->payable_mc, &m->net_mc)) {
        rv = COALITION_E_OVERFLOW;
    } else if ((m->partner = strdup(row->id)) == NULL) {
        rv = COALITION_E_NOMEM;
    }
    if (rv != 0) {
        coalition__partner_position__free_unpacked(m, NULL);
        return rv;
    }
    *out = m;
    return 0;
}

/* The value of flow issuer -> redeemer among r's flows (0 if none). */
static int64_t flow_value(const Coalition__SettlementResult *r, const char *issuer,
                          const char *redeemer)
{
    for (size_t i = 0; i < r->n_flows; i++) {
        if (strcmp(r->flows[i]->issuer, issuer) == 0 &&
            strcmp(r->flows[i]->redeemer, redeemer) == 0) {
            return r->flows[i]->value_mc;
        }
    }
    return 0;
}

static int payment_message(const char *payer, const char *payee, int64_t value_mc,
                           Coalition__SettlementPayment **out)
{
    assert(value_mc > 0);
    Coalition__SettlementPayment *m = malloc(sizeof(*m));
    if (m == NULL) {
        return COALITION_E_NOMEM;
    }
    coalition__settlement_payment__init(m);
    m->value_mc = value_mc;
    m->payer = strdup(payer);
    m->payee = m->payer != NULL ? strdup(payee) : NULL;
    if (m->payee == NULL) {
        coalition__settlement_payment__free_unpacked(m, NULL);
        return COALITION_E_NOMEM;
    }
    *out = m;
    return 0;
}

/* Fills r->payments from r->flows: for partners A and B, A owes B the value
 * of A's points redeemed at B and B owes A the other way; whoever owes more
 * pays the difference.  Even pairs and a partner's own points redeemed at
 * itself are left out.  One payment per pair, in the order of the pair's
 * first flow, so at most n_flows.  Returns 0, OVERFLOW or NOMEM. */
static int settlement_payments(Coalition__SettlementResult *r)
{
    assert(r->n_payments == 0 && r->payments == NULL);
    if (r->n_flows == 0) {
        return 0;
    }
    r->payments = calloc(r->n_flows, sizeof(*r->payments));
    if (r->payments == NULL) {
        return COALITION_E_NOMEM;
    }
    for (size_t i = 0; i < r->n_flows; i++) {
        const Coalition__SettlementFlow *f = r->flows[i];
        if (strcmp(f->issuer, f->redeemer) == 0) {
            continue;
        }
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            seen = strcmp(r->flows[j]->issuer, f->redeemer) == 0 &&
                   strcmp(r->flows[j]->redeemer, f->issuer) == 0;
        }
        if (seen) {
            continue; /* the pair was netted at its first flow */
        }
        int64_t net = 0;
        if (__builtin_sub_overflow(f->value_mc, flow_value(r, f->redeemer, f->issuer), &net) ||
            net == INT64_MIN) {
            return COALITION_E_OVERFLOW;
        }
        if (net == 0) {
            continue;
        }
        int rv = net > 0
                     ? payment_message(f->issuer, f->redeemer, net, &r->payments[r->n_payments])
                     : payment_message(f->redeemer, f->issuer, -net, &r->payments[r->n_payments]);
        if (rv != 0) {
            return rv;
        }
        r->n_payments++;
    }
    assert(r->n_payments <= r->n_flows);
    return 0;
}

static int settlement_build(const struct scan *sc, Coalition__SettlementResult *r)
{
    r->from_ms = sc->from_ms;
    r->to_ms = sc->to_ms;
    r->through_seq = sc->through_seq;
    struct flow_row *frows = NULL;
    struct partner_row *prows = NULL;
    size_t nf = 0, np = 0;
    int rv = flow_rows(sc, false, NULL, &frows, &nf);
    if (rv == 0) {
        rv = flow_messages(frows, nf, nf, &r->flows, &r->n_flows);
    }
    if (rv == 0) {
        rv = settlement_payments(r);
    }
    if (rv == 0) {
        rv = partner_rows(sc, &prows, &np);
    }
    if (rv == 0 && np > 0) {
        r->partners = calloc(np, sizeof(*r->partners));
        rv = r->partners != NULL ? 0 : COALITION_E_NOMEM;
    }
    for (size_t i = 0; rv == 0 && i < np; i++) {
        rv = position_message(&prows[i], &r->partners[i]);
        if (rv == 0) {
            r->n_partners++;
        }
    }
    free(frows);
    free(prows);
    return rv;
}

int report_settlement(struct store *s, uint64_t from_ms, uint64_t to_ms,
                      Coalition__SettlementResult **out)
{
    assert(s != NULL && out != NULL);
    if (from_ms >= to_ms) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct scan sc;
    scan_init(&sc, from_ms, to_ms);
    Coalition__SettlementResult *r = NULL;
    int rv = scan_run(s, &sc);
    if (rv == 0) {
        r = malloc(sizeof(*r));
        rv = r != NULL ? 0 : COALITION_E_NOMEM;
    }
    if (rv == 0) {
        coalition__settlement_result__init(r);
        rv = settlement_build(&sc, r);
    }
    scan_free(&sc);
    if (rv != 0) {
        report_settlement_free(r);
        return rv;
    }
    *out = r;
    return 0;
}

void report_settlement_free(Coalition__SettlementResult *r)
{
    /* Every string and message of a result is malloc'd (or the generated
     * default), which is what protobuf-c's system allocator frees. */
    if (r != NULL) {
        coalition__settlement_result__free_unpacked(r, NULL);
    }
}

/* Point figures of the KPI report: one partner's, or the sum over every
 * admitted partner. */
static int kpi_points(const struct scan *sc, Coalition__ReportResult *r)
{
    for (uint32_t i = 0; i < sc->partners.len; i++) {
        const struct partner *p = tally_rec(&sc->partners, i);
        if (!p->admitted || (sc->kpi_partner != NULL &&
                             strcmp(tally_key(&sc->partners, i), sc->kpi_partner) != 0)) {
            continue;
        }
        int64_t outstanding = 0, liability_mc = 0;
        if (!partner_outstanding(p, &outstanding, &liability_mc) ||
            !add_to(&r->points_issued, p->issued) || !add_to(&r->points_redeemed, p->redeemed) ||
            !add_to(&r->points_expired, p->expired) || !add_to(&r->outstanding, outstanding) ||
            !add_to(&r->liability_mc, liability_mc)) {
            return COALITION_E_OVERFLOW;
        }
    }
    return 0;
}

static int kpi_build(const struct scan *sc, Coalition__ReportResult *r)
{
    r->from_ms = sc->from_ms;
    r->to_ms = sc->to_ms;
    r->through_seq = sc->through_seq;
    r->purchases = sc->purchases;
    r->purchase_cents = sc->purchase_cents;
    for (uint32_t i = 0; i < sc->members.len; i++) {
        const struct member *m = tally_rec(&sc->members, i);
        r->active_members += m->active;
        r->previous_active += m->active_prev;
        r->retained_members += m->active && m->active_prev;
        r->purchasers += m->purchases >= 1;
        r->repeat_purchasers += m->purchases >= 2;
    }
    r->partner = strdup(sc->kpi_partner != NULL ? sc->kpi_partner : "");
    if (r->partner == NULL) {
        return COALITION_E_NOMEM;
    }
    int rv = kpi_points(sc, r);
    struct flow_row *rows = NULL;
    size_t n = 0;
    if (rv == 0) {
        rv = flow_rows(sc, true, sc->kpi_partner, &rows, &n);
    }
    if (rv == 0) {
        rv = flow_messages(rows, n, REPORT_TOP_FLOWS_MAX, &r->top_flows, &r->n_top_flows);
    }
    free(rows);
    return rv;
}

int report_kpi(struct store *s, const char *partner, uint64_t from_ms, uint64_t to_ms,
               Coalition__ReportResult **out)
{
    assert(s != NULL && out != NULL);
    if (from_ms >= to_ms) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    struct scan sc;
    scan_init(&sc, from_ms, to_ms);
    sc.kpi = true;
    sc.kpi_partner = partner != NULL && partner[0] != '\0' ? partner : NULL;
    /* The previous window has the same length, clamped at time 0. */
    uint64_t len_ms = to_ms - from_ms;
    sc.prev_from_ms = from_ms > len_ms ? from_ms - len_ms : 0;
    Coalition__ReportResult *r = NULL;
    int rv = scan_run(s, &sc);
    if (rv == 0 && sc.kpi_partner != NULL) {
        uint32_t pi = 0;
        if (tally_find(&sc.partners, sc.kpi_partner, strlen(sc.kpi_partner), false, &pi) != 0 ||
            !((const struct partner *)tally_rec(&sc.partners, pi))->admitted) {
            rv = COALITION_E_UNKNOWN_PARTNER;
        }
    }
    if (rv == 0) {
        r = malloc(sizeof(*r));
        rv = r != NULL ? 0 : COALITION_E_NOMEM;
    }
    if (rv == 0) {
        coalition__report_result__init(r);
        rv = kpi_build(&sc, r);
    }
    scan_free(&sc);
    if (rv != 0) {
        report_kpi_free(r);
        return rv;
    }
    *out = r;
    return 0;
}

void report_kpi_free(Coalition__ReportResult *r)
{
    if (r != NULL) {
        coalition__report_result__free_unpacked(r, NULL);
    }
}
