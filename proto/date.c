/* UTC calendar arithmetic (proto/date.h).  Days and civil dates convert with
 * Howard Hinnant's days_from_civil / civil_from_days algorithms
 * (http://howardhinnant.github.io/date_algorithms.html), in 64-bit integers
 * so that every uint64_t instant converts exactly.  No clock, no libc time
 * functions. */
#include "date.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>

#define DATE_MS_PER_DAY INT64_C(86400000)
#define DATE_YEAR_MIN   1970
#define DATE_YEAR_MAX   9999

_Static_assert(sizeof("YYYY-MM-DDTHH:MM:SS.mmmZ") == DATE_TEXT_LEN, "DATE_TEXT_LEN");

/* A proleptic Gregorian date; month 1..12, day 1..31. */
struct civil {
    int64_t year;
    int month;
    int day;
};

static bool is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int days_in_month(int64_t y, int m)
{
    static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    assert(m >= 1 && m <= 12);
    return m == 2 && is_leap(y) ? 29 : len[m - 1];
}

/* Days since 1970-01-01 of a valid civil date (negative before it). */
static int64_t days_from_civil(struct civil c)
{
    assert(c.month >= 1 && c.month <= 12);
    assert(c.day >= 1 && c.day <= days_in_month(c.year, c.month));
    int64_t y = c.year - (c.month <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                          /* [0, 399] */
    int64_t mp = c.month > 2 ? c.month - 3 : c.month + 9; /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + c.day - 1;         /* [0, 365] */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;  /* [0, 146096] */
    return era * 146097 + doe - 719468;
}

/* The civil date of day `z` since 1970-01-01. */
static struct civil civil_from_days(int64_t z)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11] */
    struct civil c;
    c.day = (int)(doy - (153 * mp + 2) / 5 + 1);
    c.month = (int)(mp < 10 ? mp + 3 : mp - 9);
    c.year = yoe + era * 400 + (c.month <= 2);
    assert(c.day >= 1 && c.day <= days_in_month(c.year, c.month));
    return c;
}

/* Reads exactly `n` ASCII digits at `s` into *v.  Returns false on anything
 * else (a sign, a space, a NUL). */
static bool read_digits(const char *s, size_t n, int *v)
{
    int x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

int date_parse(const char *s, uint64_t *ms)
{
    assert(ms != NULL);
    if (s == NULL) {
        return -1;
    }
    /* The three forms differ only in length; the shared prefix is checked
     * once.  The scan stops past the longest form. */
    size_t len = 0;
    while (len < DATE_TEXT_LEN && s[len] != '\0') {
        len++;
    }
    if (len != 10 && len != 20 && len != 24) {
        return -1;
    }
    int y, mo, d, h = 0, mi = 0, sec = 0, milli = 0;
    if (!read_digits(s, 4, &y) || s[4] != '-' || !read_digits(s + 5, 2, &mo) || s[7] != '-' ||
        !read_digits(s + 8, 2, &d)) {
        return -1;
    }
    if (len >= 20) {
        if (s[10] != 'T' || !read_digits(s + 11, 2, &h) || s[13] != ':' ||
            !read_digits(s + 14, 2, &mi) || s[16] != ':' || !read_digits(s + 17, 2, &sec)) {
            return -1;
        }
        if (len == 20 && s[19] != 'Z') {
            return -1;
        }
        if (len == 24 && (s[19] != '.' || !read_digits(s + 20, 3, &milli) || s[23] != 'Z')) {
            return -1;
        }
    }
    if (y < DATE_YEAR_MIN || y > DATE_YEAR_MAX || mo < 1 || mo > 12 || d < 1 ||
        d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59) {
        return -1;
    }
    struct civil c = {.year = y, .month = mo, .day = d};
    int64_t days = days_from_civil(c);
    assert(days >= 0);
    int64_t t = days * DATE_MS_PER_DAY + ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + milli;
    assert(t >= 0 && (uint64_t)t <= DATE_MS_MAX);
    *ms = (uint64_t)t;
    return 0;
}

void date_format(uint64_t ms, char out[DATE_TEXT_LEN])
{
    assert(out != NULL);
    if (ms > DATE_MS_MAX) {
        ms = DATE_MS_MAX;
    }
    struct civil c = civil_from_days((int64_t)(ms / (uint64_t)DATE_MS_PER_DAY));
    int tod = (int)(ms % (uint64_t)DATE_MS_PER_DAY);
    assert(c.year >= DATE_YEAR_MIN && c.year <= DATE_YEAR_MAX);
    int fields[7] = {(int)c.year,      c.month,         c.day,     tod / 3600000,
                     tod / 60000 % 60, tod / 1000 % 60, tod % 1000};
    static const int width[7] = {4, 2, 2, 2, 2, 2, 3};
    static const char after[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    /* Written by hand rather than with snprintf so that the compiler does
     * not have to prove the fields fit, and so that no locale is involved. */
    char *p = out;
    for (int i = 0; i < 7; i++) {
        int v = fields[i];
        for (int k = width[i] - 1; k >= 0; k--) {
            p[k] = (char)('0' + v % 10);
            v /= 10;
        }
        assert(v == 0);
        p += width[i];
        *p++ = after[i];
    }
    *p = '\0';
    assert(p - out == DATE_TEXT_LEN - 1);
}

uint64_t date_add_months(uint64_t ms, int months)
{
    uint64_t tod = ms % (uint64_t)DATE_MS_PER_DAY;
    /* A uint64_t instant is at most about 584 million years: its day count,
     * year and month index all fit comfortably in int64_t. */
    struct civil c = civil_from_days((int64_t)(ms / (uint64_t)DATE_MS_PER_DAY));
    int64_t index = c.year * 12 + (c.month - 1) + months; /* months since year 0 */
    int64_t year = index >= 0 ? index / 12 : -((-index + 11) / 12);
    struct civil t = {.year = year, .month = (int)(index - year * 12) + 1};
    assert(t.month >= 1 && t.month <= 12);
    int dim = days_in_month(t.year, t.month);
    t.day = c.day < dim ? c.day : dim;
    int64_t days = days_from_civil(t);
    if (days < 0) {
        return 0;
    }
    if ((uint64_t)days > (UINT64_MAX - tod) / (uint64_t)DATE_MS_PER_DAY) {
        return UINT64_MAX;
    }
    return (uint64_t)days * (uint64_t)DATE_MS_PER_DAY + tod;
}
