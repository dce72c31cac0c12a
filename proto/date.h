/* UTC calendar arithmetic on milliseconds since the Unix epoch: parsing and
 * formatting ISO 8601 instants and adding calendar months.  Pure functions:
 * no clock, no time zone, no libc time functions, so the ledger's apply may
 * use them and every replica computes the same result. */
#ifndef COALITION_DATE_H
#define COALITION_DATE_H

#include <stdint.h>

#define DATE_TEXT_LEN 25 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" + NUL */

/* 9999-12-31T23:59:59.999Z, the last instant date_parse accepts and
 * date_format writes. */
#define DATE_MS_MAX UINT64_C(253402300799999)

/* Parses `s` (borrowed; NULL is rejected) in one of three forms:
 *   "YYYY-MM-DD"                (midnight UTC),
 *   "YYYY-MM-DDTHH:MM:SSZ",
 *   "YYYY-MM-DDTHH:MM:SS.mmmZ".
 * Strict: exactly these ASCII digits and separators (upper-case 'T' and
 * 'Z'), nothing before or after, a valid month and day (leap years
 * counted), hour < 24, minute < 60, second < 60 (no leap second), year
 * 1970..9999.  Returns 0 and *ms, or -1 with *ms untouched. */
int date_parse(const char *s, uint64_t *ms);

/* Formats `ms` into `out` (caller's buffer) as "YYYY-MM-DDTHH:MM:SS.mmmZ",
 * always that form, NUL-terminated.  An instant after DATE_MS_MAX is written
 * as DATE_MS_MAX (the year has four digits). */
void date_format(uint64_t ms, char out[DATE_TEXT_LEN]);

/* Returns `ms` plus `months` calendar months (negative allowed) at the same
 * time of day.  The day of the month is clamped to the length of the target
 * month: Jan 31 + 1 month = Feb 28, or Feb 29 in a leap year.  A result
 * before the epoch is 0; one past UINT64_MAX is UINT64_MAX. */
uint64_t date_add_months(uint64_t ms, int months);

#endif
