/* The coalition's earning rules (node/rules.h): validation of programs and
 * rules, the purchase award formula, tiers, expiry, unlock and hold
 * timeouts.  Pure functions of their arguments; integer arithmetic only (the
 * award in unsigned 128 bits).  Storage and the ledger's accounts live in
 * node/ledger.c, not here. */
#include "rules.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "date.h"
#include "errors.h"

#define RULES_MS_PER_DAY UINT64_C(86400000)

/* The award formula's denominator: 100 cents per unit, base rate x1000 and
 * three multipliers in percent. */
#define RULES_AWARD_DIVISOR ((u128)100 * 1000 * 100 * 100 * 100)

__extension__ typedef unsigned __int128 u128;

/* The largest product of the formula fits in 128 bits with room to spare:
 * cents * base rate * three multipliers < 2^40 * 2^30 * 3 * 2^17 = 2^121. */
_Static_assert(RULES_CENTS_MAX < (INT64_C(1) << 40), "cents bound");
_Static_assert(RULES_BASE_RATE_MILLI_MAX < (UINT64_C(1) << 30), "base rate bound");
_Static_assert(RULES_PCT_MAX < (1 << 17), "multiplier bound");
_Static_assert(RULES_RULE_LEN >= sizeof("category:,campaign:,tier:") + 3 * RULES_TEXT_MAX,
               "the longest rule description fits");
_Static_assert(RULES_HOLD_TIMEOUT_DEFAULT_S <= RULES_HOLD_TIMEOUT_MAX_S, "default within max");
_Static_assert(RULES_EXPIRY_MONTHS_MAX <= 12 * 1000, "expiry months fit an int");

/* A protobuf-c string field is never NULL after unpacking, but a message
 * built by hand may leave one NULL: both mean "". */
static const char *str_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

bool rules_text_valid(const char *s)
{
    if (s == NULL) {
        return false;
    }
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-';
        if (!ok || n >= RULES_TEXT_MAX) {
            return false;
        }
    }
    return n >= 1;
}

static bool pct_valid(uint32_t pct)
{
    return pct >= 1 && pct <= RULES_PCT_MAX;
}

static int validate_categories(const Coalition__Program *p)
{
    if (p->n_categories > RULES_CATEGORIES_MAX || (p->n_categories > 0 && p->categories == NULL)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < p->n_categories; i++) {
        const Coalition__CategoryRate *c = p->categories[i];
        if (c == NULL || c->base.n_unknown_fields != 0 || !rules_text_valid(c->category) ||
            !pct_valid(c->multiplier_pct)) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->categories[j]->category, c->category) == 0) {
                return COALITION_E_INVALID_ARGUMENT;
            }
        }
    }
    return 0;
}

static int validate_campaigns(const Coalition__Program *p)
{
    if (p->n_campaigns > RULES_CAMPAIGNS_MAX || (p->n_campaigns > 0 && p->campaigns == NULL)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < p->n_campaigns; i++) {
        const Coalition__Campaign *c = p->campaigns[i];
        if (c == NULL || c->base.n_unknown_fields != 0 || !rules_text_valid(c->id)) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        const char *cat = str_or_empty(c->category);
        if ((cat[0] != '\0' && !rules_text_valid(cat)) || c->multiplier_pct > RULES_PCT_MAX ||
            c->start_ms >= c->end_ms || c->bonus_points < 0 || c->bonus_points > RULES_POINTS_MAX) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->campaigns[j]->id, c->id) == 0) {
                return COALITION_E_INVALID_ARGUMENT;
            }
        }
    }
    return 0;
}

int rules_program_validate(const Coalition__Program *p)
{
    if (p == NULL || p->base.n_unknown_fields != 0) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (p->point_value_mc < 1 || p->point_value_mc > RULES_POINT_VALUE_MC_MAX ||
        p->base_rate_milli > RULES_BASE_RATE_MILLI_MAX || p->min_purchase_cents < 0 ||
        p->min_purchase_cents > RULES_CENTS_MAX || p->lock_days > RULES_LOCK_DAYS_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    int rc = validate_categories(p);
    if (rc != 0) {
        return rc;
    }
    return validate_campaigns(p);
}

int rules_validate(const Coalition__Rules *r)
{
    if (r == NULL || r->base.n_unknown_fields != 0 || r->expiry_months > RULES_EXPIRY_MONTHS_MAX ||
        r->hold_timeout_s > RULES_HOLD_TIMEOUT_MAX_S) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (r->n_tiers > RULES_TIERS_MAX || (r->n_tiers > 0 && r->tiers == NULL)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < r->n_tiers; i++) {
        const Coalition__Tier *t = r->tiers[i];
        if (t == NULL || t->base.n_unknown_fields != 0 || !rules_text_valid(t->name) ||
            t->threshold < 1 || !pct_valid(t->multiplier_pct)) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        if (i > 0 && t->threshold <= r->tiers[i - 1]->threshold) {
            return COALITION_E_INVALID_ARGUMENT;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(r->tiers[j]->name, t->name) == 0) {
                return COALITION_E_INVALID_ARGUMENT;
            }
        }
    }
    return 0;
}

int rules_tier_index(const Coalition__Rules *r, int64_t earned)
{
    if (r == NULL || r->tiers == NULL) {
        return -1;
    }
    int best = -1;
    for (size_t i = 0; i < r->n_tiers; i++) {
        const Coalition__Tier *t = r->tiers[i];
        if (t != NULL && t->threshold <= earned) {
            best = (int)i;
        }
    }
    assert(best >= -1 && (best == -1 || (size_t)best < r->n_tiers));
    return best;
}

/* The CategoryRate named `category` in `prog`, or NULL when none. */
static const Coalition__CategoryRate *find_category(const Coalition__Program *prog,
                                                    const char *category)
{
    if (prog == NULL || category[0] == '\0' || prog->categories == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < prog->n_categories; i++) {
        const Coalition__CategoryRate *c = prog->categories[i];
        if (c != NULL && c->category != NULL && strcmp(c->category, category) == 0) {
            return c;
        }
    }
    return NULL;
}

static bool campaign_applies(const Coalition__Campaign *c, uint64_t time_ms, const char *category)
{
    const char *cat = str_or_empty(c->category);
    return c->start_ms <= time_ms && time_ms < c->end_ms &&
           (cat[0] == '\0' || strcmp(cat, category) == 0);
}

/* Rechecks what the formula relies on in a program that should already have
 * passed rules_program_validate: 0 or COALITION_E_INVALID_ARGUMENT. */
static int award_bounds_ok(const Coalition__Program *prog)
{
    if (prog->base_rate_milli > RULES_BASE_RATE_MILLI_MAX ||
        prog->n_categories > RULES_CATEGORIES_MAX || prog->n_campaigns > RULES_CAMPAIGNS_MAX ||
        (prog->n_categories > 0 && prog->categories == NULL) ||
        (prog->n_campaigns > 0 && prog->campaigns == NULL)) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < prog->n_categories; i++) {
        const Coalition__CategoryRate *c = prog->categories[i];
        if (c != NULL && c->multiplier_pct > RULES_PCT_MAX) {
            return COALITION_E_INVALID_ARGUMENT;
        }
    }
    for (size_t i = 0; i < prog->n_campaigns; i++) {
        const Coalition__Campaign *c = prog->campaigns[i];
        if (c == NULL || c->id == NULL || !rules_text_valid(c->id) ||
            c->multiplier_pct > RULES_PCT_MAX || c->bonus_points < 0 ||
            c->bonus_points > RULES_POINTS_MAX) {
            return COALITION_E_INVALID_ARGUMENT;
        }
    }
    return 0;
}

int rules_award_points(const Coalition__Program *prog, uint64_t time_ms, int64_t purchase_cents,
                       int64_t paid_points_cents, const char *category, const char *tier_name,
                       uint32_t tier_pct, int64_t *points, char *rule, size_t cap)
{
    assert(points != NULL);
    assert(rule != NULL && cap >= RULES_RULE_LEN);
    *points = 0;
    rule[0] = '\0';
    category = str_or_empty(category);
    tier_name = str_or_empty(tier_name);

    if (purchase_cents < 1 || purchase_cents > RULES_CENTS_MAX || paid_points_cents < 0 ||
        paid_points_cents > purchase_cents || !pct_valid(tier_pct) ||
        (category[0] != '\0' && !rules_text_valid(category)) ||
        (tier_name[0] != '\0' && !rules_text_valid(tier_name))) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (prog != NULL && award_bounds_ok(prog) != 0) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    if (prog != NULL && purchase_cents < prog->min_purchase_cents) {
        return COALITION_E_NO_POINTS_EARNED;
    }
    /* Only the money part earns.  A purchase paid wholly with points earns
     * nothing, not even a campaign's fixed bonus: otherwise spending points
     * would mint new ones. */
    int64_t eligible = purchase_cents - paid_points_cents;
    assert(eligible >= 0 && eligible <= RULES_CENTS_MAX);
    if (eligible == 0) {
        return COALITION_E_NO_POINTS_EARNED;
    }

    uint64_t base_rate = prog != NULL ? prog->base_rate_milli : RULES_DEFAULT_BASE_RATE_MILLI;
    const Coalition__CategoryRate *cat = find_category(prog, category);
    uint32_t cat_pct = cat != NULL ? cat->multiplier_pct : 100;
    /* eligible * base rate * category * tier, without the campaign factor. */
    u128 common = (u128)eligible * base_rate * cat_pct * tier_pct;

    u128 best = common * 100 / RULES_AWARD_DIVISOR;
    const Coalition__Campaign *winner = NULL;
    size_t n_campaigns = prog != NULL ? prog->n_campaigns : 0;
    for (size_t i = 0; i < n_campaigns; i++) {
        const Coalition__Campaign *c = prog->campaigns[i];
        if (!campaign_applies(c, time_ms, category)) {
            continue;
        }
        uint32_t c_pct = c->multiplier_pct != 0 ? c->multiplier_pct : 100;
        u128 v = common * c_pct / RULES_AWARD_DIVISOR + (u128)c->bonus_points;
        if (v > best) { /* strictly: the first campaign wins a tie */
            best = v;
            winner = c;
        }
    }
    if (best > (u128)RULES_POINTS_MAX) {
        return COALITION_E_INVALID_AMOUNT;
    }
    if (best == 0) {
        return COALITION_E_NO_POINTS_EARNED;
    }

    int n;
    if (cat != NULL && winner != NULL) {
        n = snprintf(rule, cap, "category:%s,campaign:%s", cat->category, winner->id);
    } else if (cat != NULL) {
        n = snprintf(rule, cap, "category:%s", cat->category);
    } else if (winner != NULL) {
        n = snprintf(rule, cap, "campaign:%s", winner->id);
    } else {
        n = snprintf(rule, cap, "base");
    }
    assert(n > 0 && (size_t)n < cap);
    if (tier_pct != 100) {
        int m = snprintf(rule + n, cap - (size_t)n, ",tier:%s", tier_name);
        assert(m > 0 && (size_t)(n + m) < cap);
        (void)m;
    }
    *points = (int64_t)best;
    assert(*points >= 1 && *points <= RULES_POINTS_MAX);
    return 0;
}

uint64_t rules_expiry_ms(const Coalition__Rules *r, uint64_t earned_ms)
{
    if (r == NULL || r->expiry_months == 0) {
        return 0;
    }
    /* Validated rules keep expiry_months <= RULES_EXPIRY_MONTHS_MAX; clamp
     * anything else rather than let it turn negative as an int. */
    uint32_t months = r->expiry_months;
    if (months > RULES_EXPIRY_MONTHS_MAX) {
        months = RULES_EXPIRY_MONTHS_MAX;
    }
    uint64_t at = date_add_months(earned_ms, (int)months);
    assert(at > earned_ms || earned_ms == UINT64_MAX);
    return at;
}

uint64_t rules_unlock_ms(const Coalition__Program *prog, uint64_t earned_ms)
{
    if (prog == NULL || prog->lock_days == 0) {
        return earned_ms;
    }
    uint64_t lock_ms = (uint64_t)prog->lock_days * RULES_MS_PER_DAY; /* < 2^32 * 2^27 */
    if (earned_ms > UINT64_MAX - lock_ms) {
        return UINT64_MAX;
    }
    return earned_ms + lock_ms;
}

int rules_hold_timeout_s(const Coalition__Rules *r, uint32_t requested_s, uint32_t *timeout_s)
{
    assert(timeout_s != NULL);
    uint32_t t = requested_s;
    if (t == 0) {
        t = r != NULL && r->hold_timeout_s != 0 ? r->hold_timeout_s : RULES_HOLD_TIMEOUT_DEFAULT_S;
    }
    if (t > RULES_HOLD_TIMEOUT_MAX_S) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    *timeout_s = t;
    return 0;
}
