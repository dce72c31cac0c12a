/* libFuzzer target for the earning rules (node/rules.h): a Program and Rules
 * unpacked from the input are validated, and the award, tier, expiry,
 * unlock and hold timeout are computed with values taken from the input.
 * Every result is compared with a model written from the header's contract
 * (128-bit arithmetic for the award); UBSan catches any overflow.  Nothing
 * but rules.h is exercised here.
 *
 * Input layout (integers big-endian):
 *   0  time_ms u64         8  purchase_cents i64   16 paid_points_cents i64
 *   24 earned i64 (tier)   32 earned_ms u64        40 tier_pct u32 (raw mode)
 *   44 requested_s u32     48 category selector    49 mode (see below)
 *   50 program_len u16     52 packed Program (program_len bytes), then the
 *                             packed Rules (the rest)
 * mode bits 0-1: tier from nothing (name NULL), nothing (name ""), the rules
 * (rules_tier_index on `earned`), or "gold" at the raw tier_pct; bit 2: the
 * partner has no program (NULL). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "date.h"
#include "errors.h"
#include "rules.h"

/* Harness checks stay on whatever NDEBUG says. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FUZZ_PARAMS_LEN 52
#define MS_PER_DAY      UINT64_C(86400000)

__extension__ typedef unsigned __int128 u128;

struct params {
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

static bool empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

/* rules_text_valid as its header states it. */
static bool model_text(const char *s)
{
    if (s == NULL) {
        return false;
    }
    size_t n = strlen(s);
    if (n < 1 || n > RULES_TEXT_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-')) {
            return false;
        }
    }
    return true;
}

static bool text(const char *s)
{
    bool ok = model_text(s);
    CHECK(rules_text_valid(s) == ok);
    return ok;
}

/* rules_program_validate's list of conditions. */
static bool model_program_ok(const Coalition__Program *p)
{
    bool ok = p->base.n_unknown_fields == 0 && p->n_categories <= RULES_CATEGORIES_MAX &&
              p->n_campaigns <= RULES_CAMPAIGNS_MAX && p->point_value_mc >= 1 &&
              p->point_value_mc <= RULES_POINT_VALUE_MC_MAX &&
              p->base_rate_milli <= RULES_BASE_RATE_MILLI_MAX && p->min_purchase_cents >= 0 &&
              p->min_purchase_cents <= RULES_CENTS_MAX && p->lock_days <= RULES_LOCK_DAYS_MAX;
    for (size_t i = 0; i < p->n_categories; i++) {
        const Coalition__CategoryRate *c = p->categories[i];
        ok &= c->base.n_unknown_fields == 0 && text(c->category) && c->multiplier_pct >= 1 &&
              c->multiplier_pct <= RULES_PCT_MAX;
        for (size_t j = 0; j < i; j++) {
            ok &= strcmp(p->categories[j]->category, c->category) != 0;
        }
    }
    for (size_t i = 0; i < p->n_campaigns; i++) {
        const Coalition__Campaign *c = p->campaigns[i];
        ok &= c->base.n_unknown_fields == 0 && text(c->id) &&
              (empty(c->category) || text(c->category)) && c->multiplier_pct <= RULES_PCT_MAX &&
              c->start_ms < c->end_ms && c->bonus_points >= 0 &&
              c->bonus_points <= RULES_POINTS_MAX;
        for (size_t j = 0; j < i; j++) {
            ok &= strcmp(p->campaigns[j]->id, c->id) != 0;
        }
    }
    return ok;
}

/* rules_validate's list of conditions. */
static bool model_rules_ok(const Coalition__Rules *r)
{
    bool ok = r->base.n_unknown_fields == 0 && r->n_tiers <= RULES_TIERS_MAX &&
              r->expiry_months <= RULES_EXPIRY_MONTHS_MAX &&
              r->hold_timeout_s <= RULES_HOLD_TIMEOUT_MAX_S;
    for (size_t i = 0; i < r->n_tiers; i++) {
        const Coalition__Tier *t = r->tiers[i];
        ok &= t->base.n_unknown_fields == 0 && text(t->name) && t->threshold >= 1 &&
              t->multiplier_pct >= 1 && t->multiplier_pct <= RULES_PCT_MAX;
        if (i > 0) {
            ok &= r->tiers[i - 1]->threshold < t->threshold;
        }
        for (size_t j = 0; j < i; j++) {
            ok &= strcmp(r->tiers[j]->name, t->name) != 0;
        }
    }
    return ok;
}

/* rules_award_points as its header states it, for a valid or NULL program. */
static int model_award(const Coalition__Program *prog, const struct params *in,
                       const char *category, const char *tier_name, uint32_t tier_pct,
                       int64_t *points, char *rule, size_t cap)
{
    *points = 0;
    rule[0] = '\0';
    int64_t purchase = in->purchase_cents;
    int64_t paid = in->paid_points_cents;
    if (purchase < 1 || purchase > RULES_CENTS_MAX || paid < 0 || paid > purchase ||
        (!empty(category) && !model_text(category)) ||
        (!empty(tier_name) && !model_text(tier_name)) || tier_pct < 1 || tier_pct > RULES_PCT_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (prog != NULL && purchase < prog->min_purchase_cents) {
        return COALITION_E_NO_POINTS_EARNED;
    }
    int64_t eligible = purchase - paid;
    if (eligible == 0) {
        return COALITION_E_NO_POINTS_EARNED;
    }
    uint64_t base_rate = prog != NULL ? prog->base_rate_milli : RULES_DEFAULT_BASE_RATE_MILLI;
    uint32_t cat_pct = 100;
    const char *matched = NULL;
    for (size_t i = 0; prog != NULL && !empty(category) && i < prog->n_categories; i++) {
        if (strcmp(prog->categories[i]->category, category) == 0) {
            cat_pct = prog->categories[i]->multiplier_pct;
            matched = category;
            break;
        }
    }
    const u128 divisor = (u128)100 * 1000 * 100 * 100 * 100;
    u128 core = (u128)eligible * base_rate * cat_pct * tier_pct;
    u128 best = core * 100 / divisor;
    const Coalition__Campaign *won = NULL;
    for (size_t i = 0; prog != NULL && i < prog->n_campaigns; i++) {
        const Coalition__Campaign *c = prog->campaigns[i];
        bool applies =
            c->start_ms <= in->time_ms && in->time_ms < c->end_ms &&
            (empty(c->category) || (!empty(category) && strcmp(c->category, category) == 0));
        if (!applies) {
            continue;
        }
        uint32_t c_pct = c->multiplier_pct != 0 ? c->multiplier_pct : 100;
        u128 pts = core * c_pct / divisor + (u128)c->bonus_points;
        if (pts > best) {
            best = pts;
            won = c;
        }
    }
    if (best > (u128)RULES_POINTS_MAX) {
        return COALITION_E_INVALID_AMOUNT;
    }
    if (best == 0) {
        return COALITION_E_NO_POINTS_EARNED;
    }
    *points = (int64_t)best;
    int n = 0;
    if (matched != NULL && won != NULL) {
        n = snprintf(rule, cap, "category:%s,campaign:%s", matched, won->id);
    } else if (matched != NULL) {
        n = snprintf(rule, cap, "category:%s", matched);
    } else if (won != NULL) {
        n = snprintf(rule, cap, "campaign:%s", won->id);
    } else {
        n = snprintf(rule, cap, "base");
    }
    CHECK(n > 0 && (size_t)n < cap);
    if (tier_pct != 100) {
        int m = snprintf(rule + n, cap - (size_t)n, ",tier:%s", tier_name != NULL ? tier_name : "");
        CHECK(m > 0 && (size_t)(n + m) < cap);
    }
    return 0;
}

/* The purchase's category, as picked by the input: none, a bad one, one
 * the program does not know, or one the program names. */
static const char *pick_category(const Coalition__Program *p, uint8_t sel)
{
    switch (sel) {
    case 0:
        return NULL;
    case 1:
        return "";
    case 2:
        return "other";
    case 3:
        return "not valid!";
    default:
        break;
    }
    size_t i = (size_t)sel - 4;
    if (p != NULL && i < p->n_categories) {
        return p->categories[i]->category;
    }
    i -= p != NULL ? p->n_categories : 0;
    if (p != NULL && i < p->n_campaigns) {
        return p->campaigns[i]->category;
    }
    return "other";
}

static void check_award(const Coalition__Program *prog, bool prog_ok, const struct params *in,
                        const char *category, const char *tier_name, uint32_t tier_pct)
{
    /* Exactly the buffer the header asks for, on the heap for ASan. */
    char *rule = malloc(RULES_RULE_LEN);
    CHECK(rule != NULL);
    memset(rule, 'X', RULES_RULE_LEN);
    int64_t points = -1;
    int rv = rules_award_points(prog, in->time_ms, in->purchase_cents, in->paid_points_cents,
                                category, tier_name, tier_pct, &points, rule, RULES_RULE_LEN);
    CHECK(memchr(rule, '\0', RULES_RULE_LEN) != NULL);
    if (rv == 0) {
        CHECK(points >= 1 && points <= RULES_POINTS_MAX);
        CHECK(rule[0] != '\0');
    } else {
        CHECK(rv == COALITION_E_INVALID_ARGUMENT || rv == COALITION_E_NO_POINTS_EARNED ||
              rv == COALITION_E_INVALID_AMOUNT);
        CHECK(points == 0 && rule[0] == '\0');
    }
    if (prog == NULL || prog_ok) {
        char want_rule[RULES_RULE_LEN];
        int64_t want_points = -1;
        int want = model_award(prog, in, category, tier_name, tier_pct, &want_points, want_rule,
                               sizeof(want_rule));
        if (rv != want || points != want_points || strcmp(rule, want_rule) != 0) {
            fprintf(stderr, "award: got %d %lld \"%s\", model %d %lld \"%s\"\n", rv,
                    (long long)points, rule, want, (long long)want_points, want_rule);
            CHECK(!"rules_award_points differs from its contract");
        }
    }
    free(rule);
}

static void check_tier(const Coalition__Rules *r, bool rules_ok, int64_t earned)
{
    int idx = rules_tier_index(r, earned);
    CHECK(idx >= -1 && (r == NULL || idx < (int)r->n_tiers));
    if (r == NULL || rules_ok) {
        int want = -1;
        for (size_t i = 0; r != NULL && i < r->n_tiers; i++) {
            if (r->tiers[i]->threshold <= earned) {
                want = (int)i;
            }
        }
        CHECK(idx == want);
    }
}

static void check_times(const Coalition__Program *prog, bool prog_ok, const Coalition__Rules *r,
                        bool rules_ok, const struct params *in)
{
    uint64_t expiry = rules_expiry_ms(r, in->earned_ms);
    if (r == NULL || r->expiry_months == 0) {
        CHECK(expiry == 0);
    } else if (rules_ok) {
        CHECK(expiry == date_add_months(in->earned_ms, (int)r->expiry_months));
        CHECK(expiry > in->earned_ms || in->earned_ms == UINT64_MAX);
    }

    uint64_t unlock = rules_unlock_ms(prog, in->earned_ms);
    if (prog == NULL || prog->lock_days == 0) {
        CHECK(unlock == in->earned_ms);
    } else if (prog_ok) {
        u128 want = (u128)in->earned_ms + (u128)prog->lock_days * MS_PER_DAY;
        CHECK(unlock == (want > UINT64_MAX ? UINT64_MAX : (uint64_t)want));
    }

    uint32_t timeout_s = 0;
    int rv = rules_hold_timeout_s(r, in->requested_s, &timeout_s);
    CHECK(rv == 0 || rv == COALITION_E_INVALID_ARGUMENT);
    if (rv == 0) {
        CHECK(timeout_s >= 1 && timeout_s <= RULES_HOLD_TIMEOUT_MAX_S);
    }
    if (r == NULL || rules_ok) {
        uint32_t def =
            r != NULL && r->hold_timeout_s != 0 ? r->hold_timeout_s : RULES_HOLD_TIMEOUT_DEFAULT_S;
        if (in->requested_s > RULES_HOLD_TIMEOUT_MAX_S) {
            CHECK(rv == COALITION_E_INVALID_ARGUMENT);
        } else {
            CHECK(rv == 0 && timeout_s == (in->requested_s != 0 ? in->requested_s : def));
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_PARAMS_LEN) {
        return 0;
    }
    struct params in = {
        .time_ms = bytes_get_be64(data),
        .purchase_cents = (int64_t)bytes_get_be64(data + 8),
        .paid_points_cents = (int64_t)bytes_get_be64(data + 16),
        .earned = (int64_t)bytes_get_be64(data + 24),
        .earned_ms = bytes_get_be64(data + 32),
        .tier_pct = bytes_get_be32(data + 40),
        .requested_s = bytes_get_be32(data + 44),
        .category_sel = data[48],
        .mode = data[49],
    };
    size_t program_len = (size_t)data[50] << 8 | data[51];
    const uint8_t *rest = data + FUZZ_PARAMS_LEN;
    size_t rest_len = size - FUZZ_PARAMS_LEN;
    if (program_len > rest_len) {
        return 0;
    }
    Coalition__Program *prog = coalition__program__unpack(NULL, program_len, rest);
    Coalition__Rules *rules =
        coalition__rules__unpack(NULL, rest_len - program_len, rest + program_len);
    if (prog == NULL || rules == NULL) {
        coalition__program__free_unpacked(prog, NULL);
        coalition__rules__free_unpacked(rules, NULL);
        return 0;
    }

    int prv = rules_program_validate(prog);
    CHECK(prv == 0 || prv == COALITION_E_INVALID_ARGUMENT);
    CHECK((prv == 0) == model_program_ok(prog));
    CHECK(rules_program_validate(NULL) == COALITION_E_INVALID_ARGUMENT);
    int rrv = rules_validate(rules);
    CHECK(rrv == 0 || rrv == COALITION_E_INVALID_ARGUMENT);
    CHECK((rrv == 0) == model_rules_ok(rules));
    CHECK(rules_validate(NULL) == COALITION_E_INVALID_ARGUMENT);

    const Coalition__Program *p = (in.mode & 4) != 0 ? NULL : prog;
    bool prog_ok = p == NULL || prv == 0;
    bool rules_ok = rrv == 0;

    check_tier(rules, rules_ok, in.earned);
    check_tier(NULL, true, in.earned);
    check_times(p, prog_ok, rules, rules_ok, &in);
    check_times(p, prog_ok, NULL, true, &in);

    /* The member's tier, as the ledger would pass it. */
    const char *tier_name = NULL;
    uint32_t tier_pct = 100;
    switch (in.mode & 3) {
    case 0:
        break;
    case 1:
        tier_name = "";
        break;
    case 2: {
        int idx = rules_tier_index(rules, in.earned);
        if (rules_ok && idx >= 0) {
            tier_name = rules->tiers[idx]->name;
            tier_pct = rules->tiers[idx]->multiplier_pct;
        }
        break;
    }
    default:
        tier_name = "gold";
        tier_pct = in.tier_pct;
        break;
    }
    const char *category = pick_category(p, in.category_sel);
    check_award(p, prog_ok, &in, category, tier_name, tier_pct);

    coalition__program__free_unpacked(prog, NULL);
    coalition__rules__free_unpacked(rules, NULL);
    return 0;
}
