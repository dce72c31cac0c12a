/* The reader of a partner's program JSON into a coalition.Program, shared by
 * the CLI's `program set --file` and the node's PUT /v1/program, and its
 * writer, shared by `program show` and GET /v1/program.  Shape only; the
 * values are judged by rules_program_validate on the node. */
#include "program_json.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "date.h"
#include "errors.h"

/* One allocation holds the program and every part it points to; the
 * program comes first so that program_json_free finds the whole. */
struct program_json {
    Coalition__Program program;
    Coalition__CategoryRate cat[PROGRAM_JSON_CATEGORIES_MAX];
    Coalition__CategoryRate *cat_ptr[PROGRAM_JSON_CATEGORIES_MAX];
    Coalition__Campaign camp[PROGRAM_JSON_CAMPAIGNS_MAX];
    Coalition__Campaign *camp_ptr[PROGRAM_JSON_CAMPAIGNS_MAX];
};

_Static_assert(offsetof(struct program_json, program) == 0, "program_json_free casts back");

/* Where a reader is: the error buffer and the key prefix ("" at the top,
 * "campaigns[2]." inside a campaign). */
struct reader {
    char *err; /* may be NULL */
    const char *where;
};

static int fail(const struct reader *r, const char *fmt, ...)
{
    if (r->err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, PROGRAM_JSON_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return COALITION_E_INVALID_ARGUMENT;
}

static bool in_list(const char *key, const char *const *list)
{
    for (const char *const *k = list; k != NULL && *k != NULL; k++) {
        if (strcmp(key, *k) == 0) {
            return true;
        }
    }
    return false;
}

/* Every key of `obj` is in `keys` or `extra`. */
static int known_keys(const struct reader *r, const json_t *obj, const char *const *keys,
                      const char *const *extra)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        (void)v;
        if (!in_list(key, keys) && !in_list(key, extra)) {
            return fail(r, "unknown key '%s%s'", r->where, key);
        }
    }
    return 0;
}

/* The value of `key`, NULL when absent or null. */
static json_t *value_of(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return v == NULL || json_is_null(v) ? NULL : v;
}

/* Integer `key` in [0, max] into *out; absent leaves *out alone, unless
 * `required`. */
static int read_int(const struct reader *r, const json_t *obj, const char *key, bool required,
                    int64_t max, int64_t *out)
{
    json_t *v = value_of(obj, key);
    if (v == NULL) {
        return required ? fail(r, "missing key '%s%s'", r->where, key) : 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        return fail(r, "'%s%s' must be a whole number from 0 to %" PRId64, r->where, key, max);
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int read_u32(const struct reader *r, const json_t *obj, const char *key, uint32_t *out)
{
    int64_t v = *out;
    int rv = read_int(r, obj, key, false, UINT32_MAX, &v);
    *out = (uint32_t)v;
    return rv;
}

static int read_u64(const struct reader *r, const json_t *obj, const char *key, uint64_t *out)
{
    assert(*out <= INT64_MAX);
    int64_t v = (int64_t)*out;
    int rv = read_int(r, obj, key, false, INT64_MAX, &v);
    *out = (uint64_t)v;
    return rv;
}

/* Text `key` (borrowed from `obj`) into *out; absent leaves *out alone,
 * unless `required`. */
static int read_text(const struct reader *r, const json_t *obj, const char *key, bool required,
                     char **out)
{
    json_t *v = value_of(obj, key);
    if (v == NULL) {
        return required ? fail(r, "missing key '%s%s'", r->where, key) : 0;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
        return fail(r, "'%s%s' must be a string", r->where, key);
    }
    if (json_string_length(v) > PROGRAM_JSON_TEXT_MAX) {
        return fail(r, "'%s%s' is longer than %d bytes", r->where, key, PROGRAM_JSON_TEXT_MAX);
    }
    *out = (char *)json_string_value(v); /* protobuf-c only reads it */
    return 0;
}

/* Date `key` (required) into *out. */
static int read_date(const struct reader *r, const json_t *obj, const char *key, uint64_t *out)
{
    json_t *v = value_of(obj, key);
    if (v == NULL) {
        return fail(r, "missing key '%s%s'", r->where, key);
    }
    if (!json_is_string(v) || date_parse(json_string_value(v), out) != 0) {
        return fail(r, "'%s%s' must be a date: \"YYYY-MM-DD\" or \"YYYY-MM-DDTHH:MM:SS[.mmm]Z\"",
                    r->where, key);
    }
    return 0;
}

static int read_campaign(char *err, const json_t *obj, size_t i, Coalition__Campaign *c)
{
    static const char *const keys[] = {"id",           "start",    "end", "multiplier_pct",
                                       "bonus_points", "category", NULL};
    char where[48];
    snprintf(where, sizeof(where), "campaigns[%zu].", i);
    struct reader r = {.err = err, .where = where};
    if (!json_is_object(obj)) {
        return fail(&r, "campaigns[%zu] must be an object", i);
    }
    int rv = known_keys(&r, obj, keys, NULL);
    if (rv == 0) {
        rv = read_text(&r, obj, "id", true, &c->id);
    }
    if (rv == 0) {
        rv = read_date(&r, obj, "start", &c->start_ms);
    }
    if (rv == 0) {
        rv = read_date(&r, obj, "end", &c->end_ms);
    }
    if (rv == 0) {
        rv = read_u32(&r, obj, "multiplier_pct", &c->multiplier_pct);
    }
    if (rv == 0) {
        rv = read_int(&r, obj, "bonus_points", false, INT64_MAX, &c->bonus_points);
    }
    if (rv == 0) {
        rv = read_text(&r, obj, "category", false, &c->category);
    }
    return rv;
}

static int read_categories(const struct reader *r, const json_t *cats, struct program_json *pj)
{
    Coalition__Program *p = &pj->program;
    if (!json_is_object(cats)) {
        return fail(r, "'categories' must be an object of category: multiplier_pct");
    }
    if (json_object_size(cats) > PROGRAM_JSON_CATEGORIES_MAX) {
        return fail(r, "at most %d categories", PROGRAM_JSON_CATEGORIES_MAX);
    }
    struct reader in = {.err = r->err, .where = "categories."};
    const char *name;
    json_t *pct;
    json_object_foreach((json_t *)cats, name, pct)
    {
        assert(p->n_categories < PROGRAM_JSON_CATEGORIES_MAX);
        if (strlen(name) > PROGRAM_JSON_TEXT_MAX) {
            return fail(r, "category '%s' is longer than %d bytes", name, PROGRAM_JSON_TEXT_MAX);
        }
        Coalition__CategoryRate *c = &pj->cat[p->n_categories];
        coalition__category_rate__init(c);
        c->category = (char *)name; /* the key, kept by `cats` */
        if (pct == NULL || json_is_null(pct)) {
            return fail(&in, "'categories.%s' must be a whole number from 0 to %" PRId64, name,
                        (int64_t)UINT32_MAX);
        }
        int rv = read_u32(&in, cats, name, &c->multiplier_pct);
        if (rv != 0) {
            return rv;
        }
        pj->cat_ptr[p->n_categories++] = c;
    }
    p->categories = p->n_categories > 0 ? pj->cat_ptr : NULL;
    return 0;
}

static int read_campaigns(const struct reader *r, const json_t *camps, struct program_json *pj)
{
    Coalition__Program *p = &pj->program;
    if (!json_is_array(camps)) {
        return fail(r, "'campaigns' must be an array");
    }
    if (json_array_size(camps) > PROGRAM_JSON_CAMPAIGNS_MAX) {
        return fail(r, "at most %d campaigns", PROGRAM_JSON_CAMPAIGNS_MAX);
    }
    for (size_t i = 0; i < json_array_size(camps); i++) {
        Coalition__Campaign *c = &pj->camp[i];
        coalition__campaign__init(c);
        int rv = read_campaign(r->err, json_array_get(camps, i), i, c);
        if (rv != 0) {
            return rv;
        }
        pj->camp_ptr[p->n_campaigns++] = c;
    }
    p->campaigns = p->n_campaigns > 0 ? pj->camp_ptr : NULL;
    return 0;
}

int program_json_read(const json_t *obj, const char *const *extra_keys, Coalition__Program **out,
                      char *err)
{
    static const char *const keys[] = {
        "point_value_mc", "base_rate_milli",    "categories", "campaigns",
        "lock_days",      "min_purchase_cents", NULL};
    assert(out != NULL);
    *out = NULL;
    if (err != NULL) {
        err[0] = '\0';
    }
    struct reader r = {.err = err, .where = ""};
    if (obj == NULL || !json_is_object(obj)) {
        return fail(&r, "not a JSON object");
    }
    struct program_json *pj = calloc(1, sizeof(*pj));
    if (pj == NULL) {
        if (err != NULL) {
            snprintf(err, PROGRAM_JSON_ERR_LEN, "out of memory");
        }
        return COALITION_E_NOMEM;
    }
    Coalition__Program *p = &pj->program;
    coalition__program__init(p);
    int rv = known_keys(&r, obj, keys, extra_keys);
    if (rv == 0) {
        rv = read_u64(&r, obj, "point_value_mc", &p->point_value_mc);
    }
    if (rv == 0) {
        rv = read_u64(&r, obj, "base_rate_milli", &p->base_rate_milli);
    }
    if (rv == 0) {
        rv = read_int(&r, obj, "min_purchase_cents", false, INT64_MAX, &p->min_purchase_cents);
    }
    if (rv == 0) {
        rv = read_u32(&r, obj, "lock_days", &p->lock_days);
    }
    json_t *cats = value_of(obj, "categories");
    if (rv == 0 && cats != NULL) {
        rv = read_categories(&r, cats, pj);
    }
    json_t *camps = value_of(obj, "campaigns");
    if (rv == 0 && camps != NULL) {
        rv = read_campaigns(&r, camps, pj);
    }
    if (rv != 0) {
        free(pj);
        return rv;
    }
    assert(p->n_categories <= PROGRAM_JSON_CATEGORIES_MAX);
    assert(p->n_campaigns <= PROGRAM_JSON_CAMPAIGNS_MAX);
    *out = p;
    return 0;
}

void program_json_free(Coalition__Program *p)
{
    free((struct program_json *)p);
}

/* ---- the writer --------------------------------------------------------- */

/* Sets obj[key] = v, a new reference that is taken even on failure (NULL:
 * jansson ran out of memory making it).  0 or NOMEM. */
static int put(json_t *obj, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(obj, key, v) == 0 ? 0 : COALITION_E_NOMEM;
}

static int put_int(json_t *obj, const char *key, uint64_t v)
{
    if (v > INT64_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    return put(obj, key, json_integer((json_int_t)v));
}

/* A text as the reader takes it: NULL is "", at most PROGRAM_JSON_TEXT_MAX
 * bytes, UTF-8. */
static json_t *text_json(const char *s, int *rv)
{
    s = s != NULL ? s : "";
    *rv = strlen(s) > PROGRAM_JSON_TEXT_MAX ? COALITION_E_INVALID_ARGUMENT : 0;
    json_t *v = *rv == 0 ? json_string(s) : NULL;
    if (*rv == 0 && v == NULL) {
        /* Not UTF-8 or out of memory: a text that is UTF-8 tells which. */
        json_t *probe = json_string("");
        *rv = probe != NULL ? COALITION_E_INVALID_ARGUMENT : COALITION_E_NOMEM;
        json_decref(probe);
    }
    return v;
}

static int put_text(json_t *obj, const char *key, const char *s)
{
    int rv = 0;
    json_t *v = text_json(s, &rv);
    return rv != 0 ? rv : put(obj, key, v);
}

static int put_date(json_t *obj, const char *key, uint64_t ms)
{
    char text[DATE_TEXT_LEN];
    date_format(ms, text); /* after DATE_MS_MAX: DATE_MS_MAX */
    return put(obj, key, json_string(text));
}

static int write_categories(const Coalition__Program *p, json_t *cats)
{
    if (p->n_categories > PROGRAM_JSON_CATEGORIES_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    int rv = 0;
    for (size_t i = 0; rv == 0 && i < p->n_categories; i++) {
        const Coalition__CategoryRate *c = p->categories[i];
        const char *name = c->category != NULL ? c->category : "";
        json_t *probe = text_json(name, &rv); /* the key: same rules as a text */
        json_decref(probe);
        if (rv == 0 && json_object_get(cats, name) != NULL) {
            rv = COALITION_E_INVALID_ARGUMENT; /* the reader cannot tell two apart */
        }
        if (rv == 0) {
            rv = put_int(cats, name, c->multiplier_pct);
        }
    }
    return rv;
}

static int write_campaign(const Coalition__Campaign *c, json_t *o)
{
    int rv = put_text(o, "id", c->id);
    if (rv == 0) {
        rv = put_date(o, "start", c->start_ms);
    }
    if (rv == 0) {
        rv = put_date(o, "end", c->end_ms);
    }
    if (rv == 0) {
        rv = put_int(o, "multiplier_pct", c->multiplier_pct);
    }
    if (rv == 0) {
        rv = c->bonus_points < 0 ? COALITION_E_INVALID_ARGUMENT
                                 : put_int(o, "bonus_points", (uint64_t)c->bonus_points);
    }
    if (rv == 0) {
        rv = put_text(o, "category", c->category);
    }
    return rv;
}

static int write_campaigns(const Coalition__Program *p, json_t *camps)
{
    if (p->n_campaigns > PROGRAM_JSON_CAMPAIGNS_MAX) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    int rv = 0;
    for (size_t i = 0; rv == 0 && i < p->n_campaigns; i++) {
        json_t *o = json_object();
        rv = o != NULL ? write_campaign(p->campaigns[i], o) : COALITION_E_NOMEM;
        if (rv == 0 && json_array_append(camps, o) != 0) {
            rv = COALITION_E_NOMEM;
        }
        json_decref(o);
    }
    return rv;
}

int program_json_write(const Coalition__Program *p, json_t **out)
{
    assert(out != NULL);
    *out = NULL;
    if (p == NULL) {
        return COALITION_E_INVALID_ARGUMENT;
    }
    json_t *o = json_object();
    json_t *cats = json_object();
    json_t *camps = json_array();
    int rv = o != NULL && cats != NULL && camps != NULL ? 0 : COALITION_E_NOMEM;
    if (rv == 0) {
        rv = put_int(o, "point_value_mc", p->point_value_mc);
    }
    if (rv == 0) {
        rv = put_int(o, "base_rate_milli", p->base_rate_milli);
    }
    if (rv == 0) {
        rv = write_categories(p, cats);
    }
    if (rv == 0) {
        rv = put(o, "categories", json_incref(cats));
    }
    if (rv == 0) {
        rv = write_campaigns(p, camps);
    }
    if (rv == 0) {
        rv = put(o, "campaigns", json_incref(camps));
    }
    if (rv == 0) {
        rv = p->min_purchase_cents < 0
                 ? COALITION_E_INVALID_ARGUMENT
                 : put_int(o, "min_purchase_cents", (uint64_t)p->min_purchase_cents);
    }
    if (rv == 0) {
        rv = put_int(o, "lock_days", p->lock_days);
    }
    json_decref(cats);
    json_decref(camps);
    if (rv != 0) {
        json_decref(o);
        return rv;
    }
    *out = o;
    return 0;
}
