/* Unit tests of the earning rules (node/rules.h): program and rules
 * validation (every rejection), the purchase award at each boundary, tiers,
 * expiry, unlock and hold timeouts.  Programs and rules are built by hand in
 * a fixture; one test packs a real unknown field with protobuf-c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "date.h"
#include "errors.h"
#include "rules.h"

#define DAY_MS UINT64_C(86400000)
#define T0     UINT64_C(1767225600000) /* 2026-01-01T00:00:00Z */

/* A program and coalition rules with room for one more element than the
 * limits allow, so that tests can go past them.  Texts live in `names`. */
struct fixture {
    Coalition__Program prog;
    Coalition__CategoryRate cat[RULES_CATEGORIES_MAX + 1];
    Coalition__CategoryRate *cat_p[RULES_CATEGORIES_MAX + 1];
    Coalition__Campaign camp[RULES_CAMPAIGNS_MAX + 1];
    Coalition__Campaign *camp_p[RULES_CAMPAIGNS_MAX + 1];
    Coalition__Rules rules;
    Coalition__Tier tier[RULES_TIERS_MAX + 1];
    Coalition__Tier *tier_p[RULES_TIERS_MAX + 1];
    char names[3][RULES_CAMPAIGNS_MAX + 1][RULES_TEXT_MAX + 2];
    char rule[RULES_RULE_LEN];
    int64_t points;
};

/* A valid program: base rate 1 point per unit, no categories, no
 * campaigns; and valid rules without tiers. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    Coalition__Program p = COALITION__PROGRAM__INIT;
    f->prog = p;
    f->prog.point_value_mc = 1000;
    f->prog.base_rate_milli = 1000;
    f->prog.categories = f->cat_p;
    f->prog.campaigns = f->camp_p;
    Coalition__Rules r = COALITION__RULES__INIT;
    f->rules = r;
    f->rules.tiers = f->tier_p;
    for (size_t i = 0; i <= RULES_CAMPAIGNS_MAX; i++) {
        Coalition__CategoryRate c = COALITION__CATEGORY_RATE__INIT;
        Coalition__Campaign k = COALITION__CAMPAIGN__INIT;
        f->cat[i] = c;
        f->camp[i] = k;
        f->cat_p[i] = &f->cat[i];
        f->camp_p[i] = &f->camp[i];
    }
    for (size_t i = 0; i <= RULES_TIERS_MAX; i++) {
        Coalition__Tier t = COALITION__TIER__INIT;
        f->tier[i] = t;
        f->tier_p[i] = &f->tier[i];
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* ------------------------------------------------------------------------
 * Helpers */

/* Appends a category rate. */
static void add_category(struct fixture *f, const char *name, uint32_t pct)
{
    assert_true(f->prog.n_categories <= RULES_CATEGORIES_MAX);
    Coalition__CategoryRate *c = &f->cat[f->prog.n_categories++];
    c->category = (char *)name;
    c->multiplier_pct = pct;
}

/* Appends a campaign active in [start_ms, end_ms). */
static Coalition__Campaign *add_campaign(struct fixture *f, const char *id, uint64_t start_ms,
                                         uint64_t end_ms, uint32_t pct, int64_t bonus,
                                         const char *category)
{
    assert_true(f->prog.n_campaigns <= RULES_CAMPAIGNS_MAX);
    Coalition__Campaign *c = &f->camp[f->prog.n_campaigns++];
    c->id = (char *)id;
    c->start_ms = start_ms;
    c->end_ms = end_ms;
    c->multiplier_pct = pct;
    c->bonus_points = bonus;
    c->category = (char *)category;
    return c;
}

/* Appends a tier. */
static void add_tier(struct fixture *f, const char *name, int64_t threshold, uint32_t pct)
{
    assert_true(f->rules.n_tiers <= RULES_TIERS_MAX);
    Coalition__Tier *t = &f->tier[f->rules.n_tiers++];
    t->name = (char *)name;
    t->threshold = threshold;
    t->multiplier_pct = pct;
}

/* A distinct valid text of `len` bytes in slot (kind, i) of f->names. */
static char *text(struct fixture *f, int kind, size_t i, size_t len)
{
    char *s = f->names[kind][i];
    assert_true(len <= RULES_TEXT_MAX + 1);
    memset(s, 'a' + kind, len);
    s[len] = '\0';
    if (len >= 3) {
        snprintf(s, 3, "%02zu", i);
        s[2] = 'a' + kind; /* snprintf's NUL */
    }
    return s;
}

/* Awards with f->prog and no tier; returns the code. */
static int award(struct fixture *f, uint64_t time_ms, int64_t purchase, int64_t paid,
                 const char *category)
{
    return rules_award_points(&f->prog, time_ms, purchase, paid, category, "", 100, &f->points,
                              f->rule, sizeof(f->rule));
}

/* Asserts that the award earns `points` by `rule`. */
static void assert_award(struct fixture *f, uint64_t time_ms, int64_t purchase, int64_t paid,
                         const char *category, int64_t points, const char *rule)
{
    assert_int_equal(award(f, time_ms, purchase, paid, category), 0);
    assert_int_equal(f->points, points);
    assert_string_equal(f->rule, rule);
}

/* Asserts that the award fails with `code`, leaving 0 and "". */
static void assert_award_fails(struct fixture *f, uint64_t time_ms, int64_t purchase, int64_t paid,
                               const char *category, int code)
{
    f->points = 77;
    strcpy(f->rule, "junk");
    assert_int_equal(award(f, time_ms, purchase, paid, category), code);
    assert_int_equal(f->points, 0);
    assert_string_equal(f->rule, "");
}

static uint64_t ms_of(const char *s)
{
    uint64_t ms = 0;
    assert_int_equal(date_parse(s, &ms), 0);
    return ms;
}

/* ------------------------------------------------------------------------
 * rules_text_valid */

static void test_rules_text_valid(void **state)
{
    struct fixture *f = *state;
    assert_true(rules_text_valid("a"));
    assert_true(rules_text_valid("Fuel.Premium_95:eu-west"));
    assert_true(rules_text_valid(text(f, 0, 0, RULES_TEXT_MAX)));
    assert_false(rules_text_valid(text(f, 0, 0, RULES_TEXT_MAX + 1)));
    assert_false(rules_text_valid(""));
    assert_false(rules_text_valid(NULL));
    static const char *const bad[] = {"a b", "a/b", "a,b", "a\tb", "caf\xc3\xa9", "a\"", "a%"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rules_text_valid(bad[i])) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
}

/* ------------------------------------------------------------------------
 * rules_program_validate */

/* A program at every upper and lower limit is accepted. */
static void test_rules_program_validate_accepts_limits(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rules_program_validate(&f->prog), 0);
    for (size_t i = 0; i < RULES_CATEGORIES_MAX; i++) {
        add_category(f, text(f, 0, i, RULES_TEXT_MAX), i % 2 ? 1 : RULES_PCT_MAX);
    }
    for (size_t i = 0; i < RULES_CAMPAIGNS_MAX; i++) {
        add_campaign(f, text(f, 1, i, i + 1 < 3 ? 3 : i + 1), i, i + 1,
                     (uint32_t)(i % 3 == 0   ? 0
                                : i % 3 == 1 ? 1
                                             : RULES_PCT_MAX),
                     i % 2 ? 0 : RULES_POINTS_MAX, i % 2 ? "" : text(f, 2, i, RULES_TEXT_MAX));
    }
    f->prog.point_value_mc = RULES_POINT_VALUE_MC_MAX;
    f->prog.base_rate_milli = RULES_BASE_RATE_MILLI_MAX;
    f->prog.min_purchase_cents = RULES_CENTS_MAX;
    f->prog.lock_days = RULES_LOCK_DAYS_MAX;
    assert_int_equal(rules_program_validate(&f->prog), 0);
    f->prog.point_value_mc = 1;
    f->prog.base_rate_milli = 0;
    f->prog.min_purchase_cents = 0;
    f->prog.lock_days = 0;
    assert_int_equal(rules_program_validate(&f->prog), 0);
}

static void test_rules_program_validate_rejects_fields(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rules_program_validate(NULL), COALITION_E_INVALID_ARGUMENT);
#define REJECT(stmt, undo)                                                                         \
    do {                                                                                           \
        stmt;                                                                                      \
        assert_int_equal(rules_program_validate(&f->prog), COALITION_E_INVALID_ARGUMENT);          \
        undo;                                                                                      \
        assert_int_equal(rules_program_validate(&f->prog), 0);                                     \
    } while (0)
    REJECT(f->prog.point_value_mc = 0, f->prog.point_value_mc = 1);
    REJECT(f->prog.point_value_mc = RULES_POINT_VALUE_MC_MAX + 1, f->prog.point_value_mc = 1);
    REJECT(f->prog.base_rate_milli = RULES_BASE_RATE_MILLI_MAX + 1, f->prog.base_rate_milli = 0);
    REJECT(f->prog.min_purchase_cents = -1, f->prog.min_purchase_cents = 0);
    REJECT(f->prog.min_purchase_cents = RULES_CENTS_MAX + 1, f->prog.min_purchase_cents = 0);
    REJECT(f->prog.lock_days = RULES_LOCK_DAYS_MAX + 1, f->prog.lock_days = 0);
    REJECT(f->prog.base.n_unknown_fields = 1, f->prog.base.n_unknown_fields = 0);
#undef REJECT
}

static void test_rules_program_validate_rejects_categories(void **state)
{
    struct fixture *f = *state;
    add_category(f, "food", 200);
    add_category(f, "fuel", 100);
    assert_int_equal(rules_program_validate(&f->prog), 0);
    Coalition__CategoryRate *c = &f->cat[1];
#define REJECT(stmt, undo)                                                                         \
    do {                                                                                           \
        stmt;                                                                                      \
        assert_int_equal(rules_program_validate(&f->prog), COALITION_E_INVALID_ARGUMENT);          \
        undo;                                                                                      \
        assert_int_equal(rules_program_validate(&f->prog), 0);                                     \
    } while (0)
    REJECT(c->category = "food", c->category = "fuel"); /* duplicate */
    REJECT(c->category = "", c->category = "fuel");
    REJECT(c->category = NULL, c->category = "fuel");
    REJECT(c->category = "fu el", c->category = "fuel");
    REJECT(c->category = text(f, 0, 0, RULES_TEXT_MAX + 1), c->category = "fuel");
    REJECT(c->multiplier_pct = 0, c->multiplier_pct = 1);
    REJECT(c->multiplier_pct = RULES_PCT_MAX + 1, c->multiplier_pct = RULES_PCT_MAX);
    REJECT(c->base.n_unknown_fields = 1, c->base.n_unknown_fields = 0);
    REJECT(f->cat_p[1] = NULL, f->cat_p[1] = c);
#undef REJECT
    /* One past the count limit. */
    f->prog.n_categories = 0;
    for (size_t i = 0; i <= RULES_CATEGORIES_MAX; i++) {
        add_category(f, text(f, 0, i, 5), 100);
    }
    assert_int_equal(rules_program_validate(&f->prog), COALITION_E_INVALID_ARGUMENT);
    f->prog.n_categories--;
    assert_int_equal(rules_program_validate(&f->prog), 0);
}

static void test_rules_program_validate_rejects_campaigns(void **state)
{
    struct fixture *f = *state;
    add_campaign(f, "spring", T0, T0 + DAY_MS, 200, 0, "");
    add_campaign(f, "fuel-bonus", T0, T0 + 1, 0, 50, "fuel");
    assert_int_equal(rules_program_validate(&f->prog), 0);
    Coalition__Campaign *c = &f->camp[1];
#define REJECT(stmt, undo)                                                                         \
    do {                                                                                           \
        stmt;                                                                                      \
        assert_int_equal(rules_program_validate(&f->prog), COALITION_E_INVALID_ARGUMENT);          \
        undo;                                                                                      \
        assert_int_equal(rules_program_validate(&f->prog), 0);                                     \
    } while (0)
    REJECT(c->id = "spring", c->id = "fuel-bonus"); /* duplicate */
    REJECT(c->id = "", c->id = "fuel-bonus");
    REJECT(c->id = NULL, c->id = "fuel-bonus");
    REJECT(c->id = "fuel bonus", c->id = "fuel-bonus");
    REJECT(c->id = text(f, 1, 0, RULES_TEXT_MAX + 1), c->id = "fuel-bonus");
    REJECT(c->category = "fu/el", c->category = "fuel");
    REJECT(c->category = text(f, 2, 0, RULES_TEXT_MAX + 1), c->category = NULL); /* NULL: "" */
    REJECT(c->end_ms = c->start_ms, c->end_ms = c->start_ms + 1);
    REJECT(c->end_ms = c->start_ms - 1, c->end_ms = c->start_ms + 1);
    REJECT(c->multiplier_pct = RULES_PCT_MAX + 1, c->multiplier_pct = RULES_PCT_MAX);
    REJECT(c->bonus_points = -1, c->bonus_points = 0);
    REJECT(c->bonus_points = RULES_POINTS_MAX + 1, c->bonus_points = RULES_POINTS_MAX);
    REJECT(c->base.n_unknown_fields = 1, c->base.n_unknown_fields = 0);
    REJECT(f->camp_p[1] = NULL, f->camp_p[1] = c);
#undef REJECT
    /* The same id is allowed for a campaign and a category. */
    add_category(f, "spring", 150);
    assert_int_equal(rules_program_validate(&f->prog), 0);
    /* One past the count limit. */
    f->prog.n_campaigns = 0;
    for (size_t i = 0; i <= RULES_CAMPAIGNS_MAX; i++) {
        add_campaign(f, text(f, 1, i, 4), 0, 1, 0, 0, "");
    }
    assert_int_equal(rules_program_validate(&f->prog), COALITION_E_INVALID_ARGUMENT);
    f->prog.n_campaigns--;
    assert_int_equal(rules_program_validate(&f->prog), 0);
}

/* A field this schema does not know, packed by a newer peer, survives
 * unpacking as an unknown field; the program is then rejected. */
static void test_rules_program_validate_rejects_packed_unknown_field(void **state)
{
    struct fixture *f = *state;
    add_category(f, "food", 200);
    add_campaign(f, "spring", T0, T0 + DAY_MS, 200, 0, "");
    size_t len = coalition__program__get_packed_size(&f->prog);
    uint8_t *buf = malloc(len + 2 * 8);
    assert_non_null(buf);
    coalition__program__pack(&f->prog, buf);

    /* Unchanged bytes unpack to a valid program. */
    Coalition__Program *p = coalition__program__unpack(NULL, len, buf);
    assert_non_null(p);
    assert_int_equal(rules_program_validate(p), 0);
    coalition__program__free_unpacked(p, NULL);

    /* Field 99, varint 1, on the program: tag (99 << 3) | 0 = 792 = 0x98 0x06. */
    uint8_t extra[] = {0x98, 0x06, 0x01};
    memcpy(buf + len, extra, sizeof(extra));
    p = coalition__program__unpack(NULL, len + sizeof(extra), buf);
    assert_non_null(p);
    assert_int_equal(p->base.n_unknown_fields, 1);
    assert_int_equal(rules_program_validate(p), COALITION_E_INVALID_ARGUMENT);
    coalition__program__free_unpacked(p, NULL);

    /* The same field inside a category rate: categories (field 3,
     * length-delimited) = {category "x", field 99 = 1}, then point_value_mc
     * (field 1) = 1000. */
    uint8_t nested[] = {0x1a, 0x06, 0x0a, 0x01, 'x', 0x98, 0x06, 0x01, 0x08, 0xe8, 0x07};
    p = coalition__program__unpack(NULL, sizeof(nested), nested);
    assert_non_null(p);
    assert_int_equal(p->point_value_mc, 1000);
    assert_int_equal(p->n_categories, 1);
    assert_string_equal(p->categories[0]->category, "x");
    assert_int_equal(p->categories[0]->base.n_unknown_fields, 1);
    assert_int_equal(p->base.n_unknown_fields, 0);
    p->categories[0]->multiplier_pct = 100;
    assert_int_equal(rules_program_validate(p), COALITION_E_INVALID_ARGUMENT);
    p->categories[0]->base.n_unknown_fields = 0; /* what makes it invalid */
    assert_int_equal(rules_program_validate(p), 0);
    p->categories[0]->base.n_unknown_fields = 1;
    coalition__program__free_unpacked(p, NULL);
    free(buf);
}

/* ------------------------------------------------------------------------
 * rules_validate and rules_tier_index */

static void test_rules_validate_accepts_limits(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rules_validate(&f->rules), 0);
    for (size_t i = 0; i < RULES_TIERS_MAX; i++) {
        add_tier(f, text(f, 0, i, RULES_TEXT_MAX), (int64_t)i + 1, i % 2 ? 1 : RULES_PCT_MAX);
    }
    f->rules.expiry_months = RULES_EXPIRY_MONTHS_MAX;
    f->rules.hold_timeout_s = RULES_HOLD_TIMEOUT_MAX_S;
    assert_int_equal(rules_validate(&f->rules), 0);
}

static void test_rules_validate_rejects(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rules_validate(NULL), COALITION_E_INVALID_ARGUMENT);
    add_tier(f, "silver", 1, 110);
    add_tier(f, "gold", 1000, 125);
    add_tier(f, "platinum", 5000, 150);
    assert_int_equal(rules_validate(&f->rules), 0);
    Coalition__Tier *t0 = &f->tier[0], *t1 = &f->tier[1];
#define REJECT(stmt, undo)                                                                         \
    do {                                                                                           \
        stmt;                                                                                      \
        assert_int_equal(rules_validate(&f->rules), COALITION_E_INVALID_ARGUMENT);                 \
        undo;                                                                                      \
        assert_int_equal(rules_validate(&f->rules), 0);                                            \
    } while (0)
    REJECT(t0->threshold = 0, t0->threshold = 1);
    REJECT(t0->threshold = -5, t0->threshold = 1);
    REJECT(t1->threshold = 1, t1->threshold = 2);       /* equal to the one before */
    REJECT(t1->threshold = 5000, t1->threshold = 4999); /* equal to the one after */
    REJECT(t1->threshold = 6000, t1->threshold = 1000); /* descending */
    REJECT(t1->name = "silver", t1->name = "gold");     /* duplicate */
    REJECT(t1->name = "", t1->name = "gold");
    REJECT(t1->name = NULL, t1->name = "gold");
    REJECT(t1->name = "go ld", t1->name = "gold");
    REJECT(t1->multiplier_pct = 0, t1->multiplier_pct = 1);
    REJECT(t1->multiplier_pct = RULES_PCT_MAX + 1, t1->multiplier_pct = RULES_PCT_MAX);
    REJECT(t1->base.n_unknown_fields = 2, t1->base.n_unknown_fields = 0);
    REJECT(f->tier_p[1] = NULL, f->tier_p[1] = t1);
    REJECT(f->rules.expiry_months = RULES_EXPIRY_MONTHS_MAX + 1, f->rules.expiry_months = 12);
    REJECT(f->rules.hold_timeout_s = RULES_HOLD_TIMEOUT_MAX_S + 1, f->rules.hold_timeout_s = 0);
    REJECT(f->rules.base.n_unknown_fields = 1, f->rules.base.n_unknown_fields = 0);
#undef REJECT
    f->rules.n_tiers = 0;
    for (size_t i = 0; i <= RULES_TIERS_MAX; i++) {
        add_tier(f, text(f, 0, i, 4), (int64_t)i + 1, 100);
    }
    assert_int_equal(rules_validate(&f->rules), COALITION_E_INVALID_ARGUMENT);
    f->rules.n_tiers--;
    assert_int_equal(rules_validate(&f->rules), 0);
}

static void test_rules_tier_index_thresholds(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(rules_tier_index(NULL, 1000000), -1);
    assert_int_equal(rules_tier_index(&f->rules, 1000000), -1); /* no tiers */
    add_tier(f, "silver", 100, 110);
    add_tier(f, "gold", 1000, 125);
    add_tier(f, "platinum", 5000, 150);
    assert_int_equal(rules_validate(&f->rules), 0);
    assert_int_equal(rules_tier_index(&f->rules, 0), -1);
    assert_int_equal(rules_tier_index(&f->rules, -1), -1);
    assert_int_equal(rules_tier_index(&f->rules, 99), -1);
    assert_int_equal(rules_tier_index(&f->rules, 100), 0);
    assert_int_equal(rules_tier_index(&f->rules, 999), 0);
    assert_int_equal(rules_tier_index(&f->rules, 1000), 1);
    assert_int_equal(rules_tier_index(&f->rules, 4999), 1);
    assert_int_equal(rules_tier_index(&f->rules, 5000), 2);
    assert_int_equal(rules_tier_index(&f->rules, INT64_MAX), 2);
}

/* ------------------------------------------------------------------------
 * rules_award_points */

/* Without a program: 1 point per 100 cents, rounded down. */
static void test_rules_award_default_program_rounds_down(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        rules_award_points(NULL, T0, 1999, 0, "", "", 100, &f->points, f->rule, sizeof(f->rule)),
        0);
    assert_int_equal(f->points, 19);
    assert_string_equal(f->rule, "base");
    assert_int_equal(
        rules_award_points(NULL, T0, 100, 0, NULL, NULL, 100, &f->points, f->rule, sizeof(f->rule)),
        0);
    assert_int_equal(f->points, 1);
    assert_int_equal(
        rules_award_points(NULL, T0, 99, 0, "", "", 100, &f->points, f->rule, sizeof(f->rule)),
        COALITION_E_NO_POINTS_EARNED);
    assert_int_equal(f->points, 0);
    assert_string_equal(f->rule, "");
}

/* With a fractional rate the floor is taken once, over the whole product. */
static void test_rules_award_rounds_down_once(void **state)
{
    struct fixture *f = *state;
    f->prog.base_rate_milli = 1500; /* 1.5 points per unit */
    add_category(f, "books", 150);
    /* 333 cents * 1.5 * 1.5 = 7.4925 points */
    assert_award(f, T0, 333, 0, "books", 7, "category:books");
    /* 66 cents * 1.5 = 0.99 points */
    assert_award_fails(f, T0, 66, 0, "", COALITION_E_NO_POINTS_EARNED);
    assert_award(f, T0, 67, 0, "", 1, "base"); /* 1.005 */
}

static void test_rules_award_category_multiplier(void **state)
{
    struct fixture *f = *state;
    add_category(f, "food", 200);
    add_category(f, "fuel", 100);
    assert_int_equal(rules_program_validate(&f->prog), 0);
    assert_award(f, T0, 1000, 0, "food", 20, "category:food");
    assert_award(f, T0, 1000, 0, "fuel", 10, "category:fuel"); /* matched at x1 */
    assert_award(f, T0, 1000, 0, "books", 10, "base");
    assert_award(f, T0, 1000, 0, "", 10, "base");
    assert_award(f, T0, 1000, 0, "Food", 10, "base"); /* exact match only */
}

/* A campaign applies from start_ms inclusive to end_ms exclusive. */
static void test_rules_award_campaign_window(void **state)
{
    struct fixture *f = *state;
    uint64_t start = T0, end = T0 + 7 * DAY_MS;
    add_campaign(f, "week", start, end, 300, 0, "");
    assert_int_equal(rules_program_validate(&f->prog), 0);
    assert_award(f, start - 1, 1000, 0, "", 10, "base");
    assert_award(f, start, 1000, 0, "", 30, "campaign:week");
    assert_award(f, end - 1, 1000, 0, "", 30, "campaign:week");
    assert_award(f, end, 1000, 0, "", 10, "base");
    assert_award(f, 0, 1000, 0, "", 10, "base");
    assert_award(f, UINT64_MAX, 1000, 0, "", 10, "base");
}

/* A campaign with a category applies only to that category; it combines
 * with that category's multiplier. */
static void test_rules_award_campaign_category(void **state)
{
    struct fixture *f = *state;
    add_category(f, "fuel", 200);
    add_campaign(f, "fuel-days", T0, T0 + DAY_MS, 150, 0, "fuel");
    assert_int_equal(rules_program_validate(&f->prog), 0);
    assert_award(f, T0, 1000, 0, "fuel", 30, "category:fuel,campaign:fuel-days");
    assert_award(f, T0, 1000, 0, "food", 10, "base");
    assert_award(f, T0, 1000, 0, "", 10, "base");
    /* An uncategorized campaign applies to every category. */
    add_campaign(f, "all", T0, T0 + DAY_MS, 400, 0, "");
    assert_award(f, T0, 1000, 0, "fuel", 80, "category:fuel,campaign:all");
    assert_award(f, T0, 1000, 0, "food", 40, "campaign:all");
}

/* The campaign giving the most points wins: a fixed bonus on a small
 * purchase, a multiplier on a large one; the first on a tie. */
static void test_rules_award_best_campaign(void **state)
{
    struct fixture *f = *state;
    add_campaign(f, "double", T0, T0 + DAY_MS, 200, 0, "");
    add_campaign(f, "bonus50", T0, T0 + DAY_MS, 0, 50, "");
    assert_int_equal(rules_program_validate(&f->prog), 0);
    /* 1000 cents: base 10, double 20, bonus 10 + 50 = 60. */
    assert_award(f, T0, 1000, 0, "", 60, "campaign:bonus50");
    /* 10000 cents: base 100, double 200, bonus 150. */
    assert_award(f, T0, 10000, 0, "", 200, "campaign:double");
    /* 5000 cents: double 100, bonus 50 + 50 = 100: a tie, the first wins. */
    assert_award(f, T0, 5000, 0, "", 100, "campaign:double");
    /* 5099 cents: double 101 (101.98), bonus 50 + 50 = 100. */
    assert_award(f, T0, 5099, 0, "", 101, "campaign:double");
    /* 4999 cents: double 99 (99.98), bonus 49 + 50 = 99: tie again. */
    assert_award(f, T0, 4999, 0, "", 99, "campaign:double");
    /* Swapped order: the bonus campaign is now first and wins the tie. */
    Coalition__Campaign tmp = f->camp[0];
    f->camp[0] = f->camp[1];
    f->camp[1] = tmp;
    assert_award(f, T0, 5000, 0, "", 100, "campaign:bonus50");
}

/* A campaign that does not beat the no-campaign figure does not apply. */
static void test_rules_award_campaign_must_beat_base(void **state)
{
    struct fixture *f = *state;
    add_campaign(f, "half", T0, T0 + DAY_MS, 50, 0, "");
    add_campaign(f, "none", T0, T0 + DAY_MS, 0, 0, "");
    add_campaign(f, "x1", T0, T0 + DAY_MS, 100, 0, "");
    assert_int_equal(rules_program_validate(&f->prog), 0);
    assert_award(f, T0, 1000, 0, "", 10, "base");
    /* A campaign multiplier too small to add a whole point. */
    add_campaign(f, "tiny", T0, T0 + DAY_MS, 101, 0, "");
    assert_award(f, T0, 1000, 0, "", 10, "base");             /* 10.1 */
    assert_award(f, T0, 99100, 0, "", 1000, "campaign:tiny"); /* 991 -> 1000.91 */
}

/* A program with base rate 0 earns only through campaigns. */
static void test_rules_award_zero_base_rate(void **state)
{
    struct fixture *f = *state;
    f->prog.base_rate_milli = 0;
    add_category(f, "food", 500);
    assert_int_equal(rules_program_validate(&f->prog), 0);
    assert_award_fails(f, T0, 100000, 0, "food", COALITION_E_NO_POINTS_EARNED);
    add_campaign(f, "welcome", T0, T0 + DAY_MS, 0, 25, "");
    assert_award(f, T0, 100000, 0, "food", 25, "category:food,campaign:welcome");
    assert_award_fails(f, T0 + DAY_MS, 100000, 0, "food", COALITION_E_NO_POINTS_EARNED);
}

static void test_rules_award_min_purchase(void **state)
{
    struct fixture *f = *state;
    f->prog.min_purchase_cents = 500;
    add_campaign(f, "bonus", T0, T0 + DAY_MS, 0, 100, "");
    assert_int_equal(rules_program_validate(&f->prog), 0);
    assert_award(f, T0, 500, 0, "", 105, "campaign:bonus");
    assert_award_fails(f, T0, 499, 0, "", COALITION_E_NO_POINTS_EARNED);
    /* The whole purchase counts toward the minimum, the part paid with
     * points too; only the money part earns. */
    assert_award(f, T0, 500, 400, "", 101, "campaign:bonus");
    f->prog.n_campaigns = 0;
    assert_award(f, T0, 500, 400, "", 1, "base");
    assert_award_fails(f, T0, 499, 0, "", COALITION_E_NO_POINTS_EARNED);
}

static void test_rules_award_paid_with_points(void **state)
{
    struct fixture *f = *state;
    assert_award(f, T0, 10000, 4000, "", 60, "base");
    assert_award(f, T0, 10000, 9900, "", 1, "base");
    assert_award_fails(f, T0, 10000, 9901, "", COALITION_E_NO_POINTS_EARNED);
    assert_award_fails(f, T0, 10000, 10000, "", COALITION_E_NO_POINTS_EARNED);
    /* Paid wholly with points: not even a fixed bonus. */
    add_campaign(f, "bonus", T0, T0 + DAY_MS, 0, 100, "");
    assert_award_fails(f, T0, 10000, 10000, "", COALITION_E_NO_POINTS_EARNED);
    assert_award(f, T0, 10000, 9999, "", 100, "campaign:bonus");
}

static void test_rules_award_rejects_arguments(void **state)
{
    struct fixture *f = *state;
    int bad = COALITION_E_INVALID_ARGUMENT;
    assert_award_fails(f, T0, 0, 0, "", bad);
    assert_award_fails(f, T0, -100, 0, "", bad);
    assert_award_fails(f, T0, INT64_MIN, 0, "", bad);
    assert_award_fails(f, T0, RULES_CENTS_MAX + 1, 0, "", bad);
    assert_award_fails(f, T0, 1000, -1, "", bad);
    assert_award_fails(f, T0, 1000, 1001, "", bad);
    assert_award_fails(f, T0, 1000, 0, "fu el", bad);
    assert_award_fails(f, T0, 1000, 0, text(f, 0, 0, RULES_TEXT_MAX + 1), bad);
    /* Argument errors win over the minimum purchase. */
    f->prog.min_purchase_cents = 500;
    assert_award_fails(f, T0, 400, 401, "", bad);
    assert_award_fails(f, T0, 1, 0, "", COALITION_E_NO_POINTS_EARNED);
    f->prog.min_purchase_cents = 0;
    assert_award(f, T0, RULES_CENTS_MAX, 0, "", RULES_CENTS_MAX / 100, "base");
    /* Tier arguments. */
    const char *tiers[][2] = {{"gold", "0"}, {"gold", "100001"}, {"go ld", "150"}};
    for (size_t i = 0; i < 3; i++) {
        f->points = 5;
        assert_int_equal(rules_award_points(&f->prog, T0, 1000, 0, "", tiers[i][0],
                                            (uint32_t)atoi(tiers[i][1]), &f->points, f->rule,
                                            sizeof(f->rule)),
                         bad);
        assert_int_equal(f->points, 0);
    }
}

/* Defensive: a program that skipped validation cannot make the arithmetic
 * overflow; it is refused. */
static void test_rules_award_rejects_unvalidated_program(void **state)
{
    struct fixture *f = *state;
    int bad = COALITION_E_INVALID_ARGUMENT;
    f->prog.base_rate_milli = UINT64_MAX;
    assert_award_fails(f, T0, 1000, 0, "", bad);
    f->prog.base_rate_milli = 1000;
    add_category(f, "food", UINT32_MAX);
    assert_award_fails(f, T0, 1000, 0, "", bad);
    f->cat[0].multiplier_pct = 100;
    Coalition__Campaign *c = add_campaign(f, "c", T0, T0 + 1, UINT32_MAX, 0, "");
    assert_award_fails(f, T0, 1000, 0, "", bad);
    c->multiplier_pct = 0;
    c->bonus_points = -1;
    assert_award_fails(f, T0, 1000, 0, "", bad);
    c->bonus_points = 0;
    assert_award(f, T0, 1000, 0, "", 10, "base");
}

static void test_rules_award_tier_multiplier(void **state)
{
    struct fixture *f = *state;
    add_category(f, "food", 200);
    add_campaign(f, "double", T0, T0 + DAY_MS, 200, 0, "");
#define AWARD(cat, name, pct)                                                                      \
    rules_award_points(&f->prog, T0, 1000, 0, cat, name, pct, &f->points, f->rule, sizeof(f->rule))
    assert_int_equal(AWARD("", "gold", 150), 0);
    assert_int_equal(f->points, 30); /* 10 * 2 * 1.5 */
    assert_string_equal(f->rule, "campaign:double,tier:gold");
    assert_int_equal(AWARD("food", "gold", 150), 0);
    assert_int_equal(f->points, 60);
    assert_string_equal(f->rule, "category:food,campaign:double,tier:gold");
    /* A tier at x1 is not named in the rule. */
    assert_int_equal(AWARD("food", "basic", 100), 0);
    assert_int_equal(f->points, 40);
    assert_string_equal(f->rule, "category:food,campaign:double");
    f->prog.n_campaigns = 0;
    assert_int_equal(AWARD("", "silver", 110), 0);
    assert_int_equal(f->points, 11);
    assert_string_equal(f->rule, "base,tier:silver");
    assert_int_equal(AWARD("food", "silver", 110), 0);
    assert_int_equal(f->points, 22);
    assert_string_equal(f->rule, "category:food,tier:silver");
    /* A multiplier below x1 rounds down too: 10 * 0.99 = 9.9. */
    assert_int_equal(AWARD("", "probation", 99), 0);
    assert_int_equal(f->points, 9);
    assert_string_equal(f->rule, "base,tier:probation");
#undef AWARD
}

/* The largest award is RULES_POINTS_MAX; one more is INVALID_AMOUNT, and
 * the largest product of all factors neither overflows nor wraps. */
static void test_rules_award_overflow_bound(void **state)
{
    struct fixture *f = *state;
    f->prog.base_rate_milli = 100000; /* 100 points per unit: 1 point per cent */
    assert_award(f, T0, RULES_CENTS_MAX, 0, "", RULES_POINTS_MAX, "base");
    Coalition__Campaign *c = add_campaign(f, "plus1", T0, T0 + 1, 0, 1, "");
    assert_award_fails(f, T0, RULES_CENTS_MAX, 0, "", COALITION_E_INVALID_AMOUNT);
    assert_award(f, T0 + 1, RULES_CENTS_MAX, 0, "", RULES_POINTS_MAX, "base");
    assert_award(f, T0, RULES_CENTS_MAX, 1, "", RULES_POINTS_MAX, "campaign:plus1");
    c->bonus_points = 0;
    /* Everything at its maximum: 1e12 * 1e9 * 1e5^3 / 1e11 = 1e25 points. */
    f->prog.base_rate_milli = RULES_BASE_RATE_MILLI_MAX;
    add_category(f, "max", RULES_PCT_MAX);
    c->multiplier_pct = RULES_PCT_MAX;
    c->bonus_points = RULES_POINTS_MAX;
    assert_int_equal(rules_program_validate(&f->prog), 0);
    assert_int_equal(rules_award_points(&f->prog, T0, RULES_CENTS_MAX, 0, "max", "top",
                                        RULES_PCT_MAX, &f->points, f->rule, sizeof(f->rule)),
                     COALITION_E_INVALID_AMOUNT);
    assert_int_equal(f->points, 0);
    /* A bonus alone at the maximum on the smallest purchase is fine. */
    f->prog.base_rate_milli = 0;
    c->multiplier_pct = 0;
    assert_award(f, T0, 1, 0, "", RULES_POINTS_MAX, "campaign:plus1");
}

/* The longest rule description fits its buffer. */
static void test_rules_award_longest_rule(void **state)
{
    struct fixture *f = *state;
    char *cat = text(f, 0, 0, RULES_TEXT_MAX);
    char *id = text(f, 1, 0, RULES_TEXT_MAX);
    char *tier = text(f, 2, 0, RULES_TEXT_MAX);
    add_category(f, cat, 200);
    add_campaign(f, id, T0, T0 + 1, 300, 0, cat);
    assert_int_equal(rules_program_validate(&f->prog), 0);
    assert_int_equal(rules_award_points(&f->prog, T0, 1000, 0, cat, tier, 150, &f->points, f->rule,
                                        RULES_RULE_LEN),
                     0);
    assert_int_equal(f->points, 90);
    char want[512];
    snprintf(want, sizeof(want), "category:%s,campaign:%s,tier:%s", cat, id, tier);
    assert_string_equal(f->rule, want);
    assert_true(strlen(want) < RULES_RULE_LEN);
}

/* ------------------------------------------------------------------------
 * Expiry, unlock and hold timeouts */

static void test_rules_expiry_months(void **state)
{
    struct fixture *f = *state;
    uint64_t t = ms_of("2024-01-31T10:00:00Z");
    assert_int_equal(rules_expiry_ms(NULL, t), 0);
    assert_int_equal(rules_expiry_ms(&f->rules, t), 0); /* expiry_months 0: never */
    f->rules.expiry_months = 1;
    assert_int_equal(rules_expiry_ms(&f->rules, t), ms_of("2024-02-29T10:00:00Z"));
    assert_int_equal(rules_expiry_ms(&f->rules, ms_of("2023-01-31T10:00:00Z")),
                     ms_of("2023-02-28T10:00:00Z"));
    assert_int_equal(rules_expiry_ms(&f->rules, ms_of("2026-03-31")), ms_of("2026-04-30"));
    assert_int_equal(rules_expiry_ms(&f->rules, ms_of("2026-12-31T23:59:59.999Z")),
                     ms_of("2027-01-31T23:59:59.999Z"));
    f->rules.expiry_months = 12;
    assert_int_equal(rules_expiry_ms(&f->rules, ms_of("2024-02-29")), ms_of("2025-02-28"));
    f->rules.expiry_months = 48;
    assert_int_equal(rules_expiry_ms(&f->rules, ms_of("2096-02-29")), ms_of("2100-02-28"));
    f->rules.expiry_months = 24;
    assert_int_equal(rules_expiry_ms(&f->rules, ms_of("1998-02-28")), ms_of("2000-02-28"));
    f->rules.expiry_months = RULES_EXPIRY_MONTHS_MAX;
    assert_int_equal(rules_expiry_ms(&f->rules, ms_of("2026-05-31")), ms_of("2076-05-31"));
    assert_int_equal(rules_expiry_ms(&f->rules, 0), ms_of("2020-01-01"));
    /* Unvalidated rules are clamped, never negative. */
    f->rules.expiry_months = UINT32_MAX;
    assert_int_equal(rules_expiry_ms(&f->rules, 0), ms_of("2020-01-01"));
}

static void test_rules_unlock(void **state)
{
    struct fixture *f = *state;
    uint64_t t = ms_of("2026-02-28T12:00:00Z");
    assert_int_equal(rules_unlock_ms(NULL, t), t);
    assert_int_equal(rules_unlock_ms(&f->prog, t), t); /* lock_days 0 */
    f->prog.lock_days = 1;
    assert_int_equal(rules_unlock_ms(&f->prog, t), ms_of("2026-03-01T12:00:00Z"));
    f->prog.lock_days = 30;
    assert_int_equal(rules_unlock_ms(&f->prog, t), t + 30 * DAY_MS);
    f->prog.lock_days = RULES_LOCK_DAYS_MAX;
    assert_int_equal(rules_unlock_ms(&f->prog, t), t + 3650 * DAY_MS);
    assert_int_equal(rules_unlock_ms(&f->prog, UINT64_MAX - 3650 * DAY_MS), UINT64_MAX);
    assert_int_equal(rules_unlock_ms(&f->prog, UINT64_MAX - 3650 * DAY_MS + 1), UINT64_MAX);
    f->prog.lock_days = UINT32_MAX;
    assert_int_equal(rules_unlock_ms(&f->prog, UINT64_MAX - 1), UINT64_MAX);
}

static void test_rules_hold_timeout(void **state)
{
    struct fixture *f = *state;
    uint32_t t = 0;
    assert_int_equal(rules_hold_timeout_s(NULL, 0, &t), 0);
    assert_int_equal(t, RULES_HOLD_TIMEOUT_DEFAULT_S);
    assert_int_equal(rules_hold_timeout_s(&f->rules, 0, &t), 0);
    assert_int_equal(t, RULES_HOLD_TIMEOUT_DEFAULT_S);
    f->rules.hold_timeout_s = 60;
    assert_int_equal(rules_hold_timeout_s(&f->rules, 0, &t), 0);
    assert_int_equal(t, 60);
    assert_int_equal(rules_hold_timeout_s(&f->rules, 1, &t), 0);
    assert_int_equal(t, 1);
    assert_int_equal(rules_hold_timeout_s(&f->rules, RULES_HOLD_TIMEOUT_MAX_S, &t), 0);
    assert_int_equal(t, RULES_HOLD_TIMEOUT_MAX_S);
    t = 5;
    assert_int_equal(rules_hold_timeout_s(&f->rules, RULES_HOLD_TIMEOUT_MAX_S + 1, &t),
                     COALITION_E_INVALID_ARGUMENT);
    assert_int_equal(t, 5);
    f->rules.hold_timeout_s = RULES_HOLD_TIMEOUT_MAX_S + 1; /* unvalidated */
    assert_int_equal(rules_hold_timeout_s(&f->rules, 0, &t), COALITION_E_INVALID_ARGUMENT);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_rules_text_valid),
        T(test_rules_program_validate_accepts_limits),
        T(test_rules_program_validate_rejects_fields),
        T(test_rules_program_validate_rejects_categories),
        T(test_rules_program_validate_rejects_campaigns),
        T(test_rules_program_validate_rejects_packed_unknown_field),
        T(test_rules_validate_accepts_limits),
        T(test_rules_validate_rejects),
        T(test_rules_tier_index_thresholds),
        T(test_rules_award_default_program_rounds_down),
        T(test_rules_award_rounds_down_once),
        T(test_rules_award_category_multiplier),
        T(test_rules_award_campaign_window),
        T(test_rules_award_campaign_category),
        T(test_rules_award_best_campaign),
        T(test_rules_award_campaign_must_beat_base),
        T(test_rules_award_zero_base_rate),
        T(test_rules_award_min_purchase),
        T(test_rules_award_paid_with_points),
        T(test_rules_award_rejects_arguments),
        T(test_rules_award_rejects_unvalidated_program),
        T(test_rules_award_tier_multiplier),
        T(test_rules_award_overflow_bound),
        T(test_rules_award_longest_rule),
        T(test_rules_expiry_months),
        T(test_rules_unlock),
        T(test_rules_hold_timeout),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
