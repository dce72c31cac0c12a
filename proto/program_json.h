/* A partner's program as JSON (docs/protocol.md, "Program and rules files")
 * read into a coalition.Program: the one reader behind `coalition program
 * set --file` and the node's PUT /v1/program.  It checks the shape only
 * (known keys, types, the ranges the wire carries, dates, counts, lengths);
 * what only the ledger can judge (a point value of 0, a campaign that ends
 * before it starts, a category spelled with a space) is
 * rules_program_validate's, on the node. */
#ifndef COALITION_PROGRAM_JSON_H
#define COALITION_PROGRAM_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "coalition.pb-c.h"

/* The limits of a program, the same as libcoalition's COALITION_ID_MAX,
 * COALITION_CATEGORIES_MAX, COALITION_CAMPAIGNS_MAX and the node's
 * RULES_TEXT_MAX, RULES_CATEGORIES_MAX, RULES_CAMPAIGNS_MAX (asserted where
 * both are seen). */
#define PROGRAM_JSON_TEXT_MAX       64 /* bytes in a category or campaign id */
#define PROGRAM_JSON_CATEGORIES_MAX 32
#define PROGRAM_JSON_CAMPAIGNS_MAX  32
/* Room for any message program_json_read writes, NUL included. */
#define PROGRAM_JSON_ERR_LEN 200

/* Reads the program in `obj` (borrowed).  The document is:
 *   {"point_value_mc": N, "base_rate_milli": N, "min_purchase_cents": N,
 *    "lock_days": N, "categories": {"NAME": PCT, ...},
 *    "campaigns": [{"id": S, "start": DATE, "end": DATE,
 *                   "multiplier_pct": N, "bonus_points": N,
 *                   "category": S}, ...]}
 * Every key is optional except a campaign's id, start and end; an absent or
 * null value is 0 (or "", or no categories, no campaigns).  Numbers are
 * whole and from 0 (to UINT32_MAX for lock_days and percentages, else
 * INT64_MAX); texts at most PROGRAM_JSON_TEXT_MAX bytes without NUL; dates
 * as date_parse takes them; at most PROGRAM_JSON_CATEGORIES_MAX categories
 * and PROGRAM_JSON_CAMPAIGNS_MAX campaigns.  A key of `obj` outside these is
 * an error unless it is one of `extra_keys` (a NULL-terminated list, or NULL
 * for none), which the caller reads itself.
 *
 * On success returns 0 and *out is a new program the caller releases with
 * program_json_free; its texts are borrowed from `obj`, so they are valid
 * only while `obj` is.  Otherwise *out is NULL and returns
 *   COALITION_E_INVALID_ARGUMENT, with a message naming the key in `err`
 *     (e.g. "missing key 'campaigns[0].start'"), or
 *   COALITION_E_NOMEM (err says "out of memory").
 * `err` (caller's, PROGRAM_JSON_ERR_LEN bytes) may be NULL. */
int program_json_read(const json_t *obj, const char *const *extra_keys, Coalition__Program **out,
                      char *err);

/* Releases a program from program_json_read (NULL is a no-op).  The JSON
 * object its texts came from is the caller's, untouched. */
void program_json_free(Coalition__Program *p);

/* Writes `p` (borrowed) as the document program_json_read reads, so that
 * what is written reads back into the same program: every key present, in
 * the order of the example in docs/protocol.md; categories in the
 * program's order; a campaign's dates as date_format writes them
 * ("2026-07-01T00:00:00.000Z"; an instant after DATE_MS_MAX as DATE_MS_MAX,
 * as late as the reader goes); a NULL text as "".  The one writer behind
 * `coalition program show --json` and the node's GET /v1/program.
 *
 * Returns 0 with *out a new JSON object (the caller's reference:
 * json_decref), or, with *out NULL,
 *   COALITION_E_INVALID_ARGUMENT if `p` is NULL or holds what the reader
 *     would refuse: a number above INT64_MAX, more than
 *     PROGRAM_JSON_CATEGORIES_MAX categories or PROGRAM_JSON_CAMPAIGNS_MAX
 *     campaigns, a text longer than PROGRAM_JSON_TEXT_MAX bytes or not
 *     UTF-8, a category twice (a program the ledger accepted has none of
 *     these), or
 *   COALITION_E_NOMEM. */
int program_json_write(const Coalition__Program *p, json_t **out);

#endif
