/* Unit tests of the UTC calendar arithmetic (proto/date.h): parsing,
 * formatting and month addition, checked against instants computed outside
 * this code and against a naive day-by-day calendar walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "date.h"

#define DAY_MS UINT64_C(86400000)

/* Parses `s`, which must be valid. */
static uint64_t ms_of(const char *s)
{
    uint64_t ms = 0;
    assert_int_equal(date_parse(s, &ms), 0);
    return ms;
}

/* Asserts that `ms` formats as `want`. */
static void assert_formats(uint64_t ms, const char *want)
{
    char out[DATE_TEXT_LEN];
    memset(out, 'x', sizeof(out));
    date_format(ms, out);
    assert_string_equal(out, want);
}

/* Asserts that date_add_months(from, months) is `want` (all texts). */
static void assert_add(const char *from, int months, const char *want)
{
    char out[DATE_TEXT_LEN];
    date_format(date_add_months(ms_of(from), months), out);
    assert_string_equal(out, want);
}

/* ------------------------------------------------------------------------
 * date_parse and date_format */

/* Instants computed independently (Python's datetime in UTC). */
static void test_date_parse_known_instants(void **state)
{
    (void)state;
    assert_int_equal(ms_of("1970-01-01"), 0);
    assert_int_equal(ms_of("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(ms_of("1970-01-01T00:00:00.001Z"), 1);
    assert_int_equal(ms_of("2026-01-01"), UINT64_C(1767225600000));
    assert_int_equal(ms_of("2000-03-01"), UINT64_C(951868800000));
    assert_int_equal(ms_of("2024-02-29T12:34:56.789Z"), UINT64_C(1709210096789));
    assert_int_equal(ms_of("2024-02-29T12:34:56Z"), UINT64_C(1709210096000));
    assert_int_equal(ms_of("9999-12-31T23:59:59.999Z"), DATE_MS_MAX);
    assert_int_equal(DATE_MS_MAX, UINT64_C(253402300799999));
}

static void test_date_format_known_instants(void **state)
{
    (void)state;
    assert_formats(0, "1970-01-01T00:00:00.000Z");
    assert_formats(1, "1970-01-01T00:00:00.001Z");
    assert_formats(DAY_MS - 1, "1970-01-01T23:59:59.999Z");
    assert_formats(UINT64_C(1709210096789), "2024-02-29T12:34:56.789Z");
    assert_formats(UINT64_C(951868800000) - 1, "2000-02-29T23:59:59.999Z");
    assert_formats(DATE_MS_MAX, "9999-12-31T23:59:59.999Z");
}

/* Past year 9999 the text would need a fifth digit: it clamps instead. */
static void test_date_format_clamps_after_max(void **state)
{
    (void)state;
    assert_formats(DATE_MS_MAX + 1, "9999-12-31T23:59:59.999Z");
    assert_formats(UINT64_MAX, "9999-12-31T23:59:59.999Z");
}

/* Every day from 1970-01-01 to 9999-12-31, walked with a naive calendar
 * (its own leap rule), parses to day * 86400000 and formats back. */
static void test_date_every_day_round_trips(void **state)
{
    (void)state;
    static const int mlen[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y = 1970, m = 1, d = 1;
    uint64_t day = 0;
    long leap_days = 0;
    for (;;) {
        char text[40];
        snprintf(text, sizeof(text), "%04d-%02d-%02d", y, m, d);
        uint64_t ms = ms_of(text);
        if (ms != day * DAY_MS) {
            fail_msg("%s parsed as %llu, want %llu", text, (unsigned long long)ms,
                     (unsigned long long)(day * DAY_MS));
        }
        char out[DATE_TEXT_LEN];
        date_format(ms + DAY_MS - 1, out); /* last millisecond of the day */
        if (strncmp(out, text, 10) != 0 || strcmp(out + 10, "T23:59:59.999Z") != 0) {
            fail_msg("%s formatted as %s", text, out);
        }
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        int len = mlen[m - 1] + (m == 2 && leap);
        if (m == 2 && d == 29) {
            leap_days++;
        }
        if (y == 9999 && m == 12 && d == 31) {
            break;
        }
        day++;
        if (++d > len) {
            d = 1;
            if (++m > 12) {
                m = 1;
                y++;
            }
        }
    }
    assert_int_equal(day, DATE_MS_MAX / DAY_MS);
    /* 1972..9996 every 4 years, less the 60 centuries not divisible by 400
     * (2100, 2200, 2300, 2500, ...). */
    assert_int_equal(leap_days, (9996 - 1972) / 4 + 1 - (80 - 20));
}

static void test_date_round_trip_with_milliseconds(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "1970-01-01T00:00:00.000Z", "1999-12-31T23:59:59.999Z", "2000-02-29T00:00:00.000Z",
        "2024-02-29T12:00:00.500Z", "2026-07-15T08:30:05.042Z", "9999-12-31T23:59:59.999Z",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        assert_formats(ms_of(texts[i]), texts[i]);
    }
    /* The short forms are the same instant as the long one. */
    assert_int_equal(ms_of("2026-07-15"), ms_of("2026-07-15T00:00:00.000Z"));
    assert_int_equal(ms_of("2026-07-15T08:30:05Z"), ms_of("2026-07-15T08:30:05.000Z"));
}

static void test_date_parse_leap_years(void **state)
{
    (void)state;
    uint64_t ms = 0;
    assert_int_equal(date_parse("2024-02-29", &ms), 0);
    assert_int_equal(ms, ms_of("2024-02-28") + DAY_MS);
    assert_int_equal(date_parse("2000-02-29", &ms), 0); /* divisible by 400 */
    assert_int_equal(date_parse("2023-02-29", &ms), -1);
    assert_int_equal(date_parse("2100-02-29", &ms), -1); /* divisible by 100 */
    assert_int_equal(date_parse("2100-02-28T23:59:59.999Z", &ms), 0);
    assert_int_equal(ms + 1, ms_of("2100-03-01"));
}

static void test_date_parse_rejects_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "2026",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "2026-01-32",
        "2026-02-30",
        "2026-04-31",
        "2026-1-01",
        "2026-01-1",
        "26-01-01",
        "+026-01-01",
        "2026/01/01",
        "2026-01-01 ",
        " 2026-01-01",
        "2026-01-01x",
        "2026-01-01T",
        "2026-01-01T00:00:00",
        "2026-01-01T00:00:00z",
        "2026-01-01t00:00:00Z",
        "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00Zx",
        "2026-01-01T00:00:00+00:00",
        "2026-01-01T24:00:00Z",
        "2026-01-01T23:60:00Z",
        "2026-01-01T23:59:60Z",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00.5Z",
        "2026-01-01T00:00:00.12Z",
        "2026-01-01T00:00:00.1234Z",
        "2026-01-01T00:00:00,123Z",
        "2026-01-01T00:00:00.123",
        "2026-01-01T0a:00:00Z",
        "2026-01-01T-1:00:00Z",
        "1969-12-31",
        "1969-12-31T23:59:59.999Z",
        "0000-01-01",
        "10000-01-01",
        "2026-01-01T00:00:00.000Z\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t ms = 42;
        if (date_parse(bad[i], &ms) != -1) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
        assert_int_equal(ms, 42); /* untouched on failure */
    }
    uint64_t ms = 42;
    assert_int_equal(date_parse(NULL, &ms), -1);
    assert_int_equal(ms, 42);
    /* The boundaries of what is accepted. */
    assert_int_equal(date_parse("2026-01-31T23:59:59.999Z", &ms), 0);
    assert_int_equal(date_parse("2026-12-01", &ms), 0);
    assert_int_equal(date_parse("2026-04-30", &ms), 0);
}

/* ------------------------------------------------------------------------
 * date_add_months */

static void test_date_add_months_clamps_day(void **state)
{
    (void)state;
    assert_add("2023-01-31", 1, "2023-02-28T00:00:00.000Z");
    assert_add("2024-01-31", 1, "2024-02-29T00:00:00.000Z");
    assert_add("2100-01-31", 1, "2100-02-28T00:00:00.000Z"); /* 2100 is not leap */
    assert_add("2000-01-31", 1, "2000-02-29T00:00:00.000Z"); /* 2000 is */
    assert_add("2026-03-31", 1, "2026-04-30T00:00:00.000Z");
    assert_add("2026-01-31", 2, "2026-03-31T00:00:00.000Z"); /* not clamped twice */
    assert_add("2025-12-31", 2, "2026-02-28T00:00:00.000Z");
    assert_add("2024-02-29", 12, "2025-02-28T00:00:00.000Z");
    assert_add("2024-02-29", 48, "2028-02-29T00:00:00.000Z");
    assert_add("2026-01-30", 1, "2026-02-28T00:00:00.000Z");
    assert_add("2026-01-28", 1, "2026-02-28T00:00:00.000Z");
}

static void test_date_add_months_keeps_time_of_day(void **state)
{
    (void)state;
    assert_add("2026-01-31T23:59:59.999Z", 1, "2026-02-28T23:59:59.999Z");
    assert_add("2026-05-15T08:30:05.042Z", 0, "2026-05-15T08:30:05.042Z");
    assert_add("2026-05-15T08:30:05.042Z", 7, "2026-12-15T08:30:05.042Z");
    assert_add("2026-05-15T08:30:05.042Z", 8, "2027-01-15T08:30:05.042Z");
}

static void test_date_add_months_negative_across_years(void **state)
{
    (void)state;
    assert_add("2026-01-15T10:00:00Z", -1, "2025-12-15T10:00:00.000Z");
    assert_add("2026-01-15", -12, "2025-01-15T00:00:00.000Z");
    assert_add("2026-01-15", -13, "2024-12-15T00:00:00.000Z");
    assert_add("2026-03-31", -1, "2026-02-28T00:00:00.000Z");
    assert_add("2024-03-31", -1, "2024-02-29T00:00:00.000Z");
    assert_add("2026-03-31", -25, "2024-02-29T00:00:00.000Z");
    assert_add("2026-12-31", -600, "1976-12-31T00:00:00.000Z");
    assert_add("2026-06-30", 600, "2076-06-30T00:00:00.000Z");
}

static void test_date_add_months_before_epoch_is_zero(void **state)
{
    (void)state;
    assert_add("1970-02-15", -1, "1970-01-15T00:00:00.000Z");
    assert_int_equal(date_add_months(ms_of("1970-01-15T12:00:00Z"), -1), 0);
    assert_int_equal(date_add_months(ms_of("1971-01-01"), -13), 0);
    assert_int_equal(date_add_months(0, -1), 0);
    assert_int_equal(date_add_months(0, INT_MIN), 0);
    assert_int_equal(date_add_months(DATE_MS_MAX, INT_MIN), 0);
    assert_int_equal(date_add_months(ms_of("1970-01-31"), 0), ms_of("1970-01-31"));
}

/* Instants far past year 9999 still add exactly, and saturate at the end of
 * uint64_t instead of wrapping. */
static void test_date_add_months_saturates(void **state)
{
    (void)state;
    assert_int_equal(date_add_months(UINT64_MAX, INT_MAX), UINT64_MAX);
    assert_int_equal(date_add_months(UINT64_MAX, 1), UINT64_MAX);
    uint64_t far = date_add_months(DATE_MS_MAX, 1200); /* year 10099 */
    assert_true(far > DATE_MS_MAX);
    assert_int_equal(date_add_months(far, -1200), DATE_MS_MAX);
    /* UINT64_MAX minus a month goes back by that month's length. */
    uint64_t back = date_add_months(UINT64_MAX, -1);
    assert_true(back < UINT64_MAX);
    assert_true(UINT64_MAX - back >= 28 * DAY_MS && UINT64_MAX - back <= 31 * DAY_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_date_parse_known_instants),
        cmocka_unit_test(test_date_format_known_instants),
        cmocka_unit_test(test_date_format_clamps_after_max),
        cmocka_unit_test(test_date_every_day_round_trips),
        cmocka_unit_test(test_date_round_trip_with_milliseconds),
        cmocka_unit_test(test_date_parse_leap_years),
        cmocka_unit_test(test_date_parse_rejects_malformed),
        cmocka_unit_test(test_date_add_months_clamps_day),
        cmocka_unit_test(test_date_add_months_keeps_time_of_day),
        cmocka_unit_test(test_date_add_months_negative_across_years),
        cmocka_unit_test(test_date_add_months_before_epoch_is_zero),
        cmocka_unit_test(test_date_add_months_saturates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
