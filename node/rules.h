/* The coalition's earning rules as pure functions: checking a partner's
 * program and the coalition rules, the points a purchase earns, a member's
 * tier, when points expire and unlock.  The ledger's apply calls these, so
 * they read nothing but their arguments: no store, no clock, no globals.
 * Every pointer argument is borrowed for the duration of the call. */
#ifndef COALITION_RULES_H
#define COALITION_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coalition.pb-c.h"

#define RULES_CATEGORIES_MAX 32
#define RULES_CAMPAIGNS_MAX  32
#define RULES_TIERS_MAX      8
#define RULES_TEXT_MAX       64 /* bytes in a category, campaign id or tier name */
/* Buffer for the rule description: the longest is
 * "category:<64>,campaign:<64>,tier:<64>" plus the NUL (218 bytes). */
#define RULES_RULE_LEN                224
#define RULES_DEFAULT_POINT_VALUE_MC  1000 /* partner without a program: 1 cent per point */
#define RULES_DEFAULT_BASE_RATE_MILLI 1000 /* partner without a program: 1 point per unit */
#define RULES_HOLD_TIMEOUT_DEFAULT_S  900
#define RULES_HOLD_TIMEOUT_MAX_S      (7 * 86400)

#define RULES_PCT_MAX             100000                 /* any multiplier_pct: at most x1000 */
#define RULES_POINTS_MAX          INT64_C(1000000000000) /* one award, one bonus */
#define RULES_CENTS_MAX           INT64_C(1000000000000) /* a purchase, a minimum */
#define RULES_POINT_VALUE_MC_MAX  UINT64_C(1000000000)
#define RULES_BASE_RATE_MILLI_MAX UINT64_C(1000000000)
#define RULES_LOCK_DAYS_MAX       3650
#define RULES_EXPIRY_MONTHS_MAX   600

/* True if `s` is 1..RULES_TEXT_MAX bytes of [A-Za-z0-9._:-]: the form of a
 * category, campaign id and tier name, safe as part of a store key or of the
 * rule description.  NULL is not valid. */
bool rules_text_valid(const char *s);

/* Checks a partner's program before it enters the ledger (PROGRAM_SET).
 * Returns 0, or COALITION_E_INVALID_ARGUMENT if `p` is NULL or breaks any
 * of: at most RULES_CATEGORIES_MAX categories and RULES_CAMPAIGNS_MAX
 * campaigns; every category and campaign id valid text (rules_text_valid),
 * no category or campaign id twice; a campaign's category empty or valid
 * text; category multiplier_pct 1..RULES_PCT_MAX; campaign multiplier_pct
 * 0..RULES_PCT_MAX (0: none); campaign start_ms < end_ms; bonus_points
 * 0..RULES_POINTS_MAX; point_value_mc 1..RULES_POINT_VALUE_MC_MAX;
 * base_rate_milli 0..RULES_BASE_RATE_MILLI_MAX; min_purchase_cents
 * 0..RULES_CENTS_MAX; lock_days <= RULES_LOCK_DAYS_MAX; and no unknown
 * protobuf field on the program or any of its messages (a newer schema's
 * field that this node would silently ignore while another applies it). */
int rules_program_validate(const Coalition__Program *p);

/* Checks the coalition rules before they enter the ledger (RULES_SET).
 * Returns 0, or COALITION_E_INVALID_ARGUMENT if `r` is NULL or breaks any
 * of: at most RULES_TIERS_MAX tiers; tier names valid text and distinct;
 * thresholds >= 1 and strictly ascending; tier multiplier_pct
 * 1..RULES_PCT_MAX (100 = x1); expiry_months <= RULES_EXPIRY_MONTHS_MAX;
 * hold_timeout_s <= RULES_HOLD_TIMEOUT_MAX_S; no unknown protobuf field. */
int rules_validate(const Coalition__Rules *r);

/* Index in r->tiers of the highest tier whose threshold <= `earned` (points
 * earned in the tier's window), or -1 when below every tier, when `r` is
 * NULL or has no tiers.  `r` should have passed rules_validate (ascending
 * thresholds); a tier with a NULL entry is skipped. */
int rules_tier_index(const Coalition__Rules *r, int64_t earned);

/* Points a purchase earns under partner program `prog` at time `time_ms`
 * (the batch time stamped by the leader).  `prog` may be NULL: the partner
 * has no program and earns RULES_DEFAULT_BASE_RATE_MILLI with no
 * categories, campaigns, minimum or lock.  Otherwise `prog` must have
 * passed rules_program_validate; the bounds the arithmetic relies on are
 * checked again (COALITION_E_INVALID_ARGUMENT) so that a corrupt program
 * can give a wrong answer on no node but never overflow.
 *
 * `category` is the purchase's category ("" or NULL: none; otherwise valid
 * text).  `tier_pct` is the member's tier multiplier (100 when none,
 * 1..RULES_PCT_MAX) and `tier_name` the tier's name ("" or NULL when none;
 * otherwise valid text).
 *
 * Checked in this order:
 *   purchase_cents < 1 or > RULES_CENTS_MAX, paid_points_cents < 0 or >
 *   purchase_cents, a bad category, tier name or tier_pct
 *                                     -> COALITION_E_INVALID_ARGUMENT
 *   purchase_cents < min_purchase_cents (the whole purchase counts, also
 *   the part paid with points)        -> COALITION_E_NO_POINTS_EARNED
 *   eligible = purchase_cents - paid_points_cents == 0 (paid entirely
 *   with points: no campaign bonus either)
 *                                     -> COALITION_E_NO_POINTS_EARNED
 * Then, with cat_pct the multiplier of the CategoryRate equal to `category`
 * (100 when none) and for each campaign c that applies (start_ms <= time_ms
 * < end_ms, and c's category empty or equal to `category`):
 *   points(c) = floor(eligible * base_rate_milli * cat_pct * c_pct * tier_pct
 *                     / (100 * 1000 * 100 * 100 * 100)) + c.bonus_points
 * where c_pct = c.multiplier_pct, or 100 if that is 0.  The no-campaign
 * figure is the same with c_pct = 100 and no bonus.  The campaign giving
 * the most points wins, the first in the program on a tie; a campaign that
 * does not beat the no-campaign figure does not apply.
 *   the winning figure > RULES_POINTS_MAX -> COALITION_E_INVALID_AMOUNT
 *   the winning figure is 0               -> COALITION_E_NO_POINTS_EARNED
 *
 * Returns 0 with *points in 1..RULES_POINTS_MAX and `rule` (caller's
 * buffer, `cap` >= RULES_RULE_LEN) set to what applied: "base",
 * "category:<c>", "campaign:<id>" or "category:<c>,campaign:<id>",
 * followed by ",tier:<name>" when tier_pct != 100.  "category:<c>" appears
 * whenever a CategoryRate matched, even one of 100.  On error *points is 0
 * and `rule` is "". */
int rules_award_points(const Coalition__Program *prog, uint64_t time_ms, int64_t purchase_cents,
                       int64_t paid_points_cents, const char *category, const char *tier_name,
                       uint32_t tier_pct, int64_t *points, char *rule, size_t cap);

/* When points earned at `earned_ms` expire under `r`: earned_ms plus
 * r->expiry_months calendar months (date_add_months: same time of day, the
 * day clamped to the target month's length).  0 means never: `r` NULL or
 * expiry_months 0. */
uint64_t rules_expiry_ms(const Coalition__Rules *r, uint64_t earned_ms);

/* When points earned at `earned_ms` under `prog` become spendable:
 * earned_ms + lock_days * 86400000 (saturating at UINT64_MAX), or earned_ms
 * itself when `prog` is NULL or lock_days is 0. */
uint64_t rules_unlock_ms(const Coalition__Program *prog, uint64_t earned_ms);

/* The timeout of a hold that asks for `requested_s` seconds (0: the
 * coalition's default, which is r->hold_timeout_s, or
 * RULES_HOLD_TIMEOUT_DEFAULT_S when `r` is NULL or that is 0).  Returns 0
 * and *timeout_s (1..RULES_HOLD_TIMEOUT_MAX_S), or
 * COALITION_E_INVALID_ARGUMENT if requested_s or the rules' default is
 * above RULES_HOLD_TIMEOUT_MAX_S. */
int rules_hold_timeout_s(const Coalition__Rules *r, uint32_t requested_s, uint32_t *timeout_s);

#endif
