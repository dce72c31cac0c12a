/* Unit tests of the program JSON reader (proto/program_json.h) that both
 * `coalition program set --file` and PUT /v1/program use: a full program
 * read field by field, absent and null keys, the caller's extra keys, the
 * limits at and past their edge, and every rejection with its message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "program_json.h"

/* The fixture: the parsed document and the program read from it. */
struct fixture {
    json_t *doc;
    Coalition__Program *program;
    char err[PROGRAM_JSON_ERR_LEN];
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    program_json_free(f->program);
    if (f->doc != NULL) {
        json_decref(f->doc);
    }
    return 0;
}

/* Parses `text` (which must be JSON) into f->doc and reads it with
 * `extra` keys allowed.  Returns the reader's code. */
static int read_text(struct fixture *f, const char *text, const char *const *extra)
{
    json_error_t jerr;
    if (f->doc != NULL) {
        json_decref(f->doc);
    }
    program_json_free(f->program);
    f->program = NULL;
    f->doc = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    assert_non_null(f->doc);
    memset(f->err, 'x', sizeof(f->err));
    return program_json_read(f->doc, extra, &f->program, f->err);
}

/* `text` is refused with INVALID_ARGUMENT and message `want`, and leaves no
 * program behind. */
static void assert_refused(struct fixture *f, const char *text, const char *want)
{
    int rv = read_text(f, text, NULL);
    if (rv != COALITION_E_INVALID_ARGUMENT || strcmp(f->err, want) != 0) {
        fail_msg("%s: got %d '%s', want '%s'", text, rv, f->err, want);
    }
    assert_null(f->program);
}

static void test_program_json_reads_every_field(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        read_text(f,
                  "{\"point_value_mc\":1000,\"base_rate_milli\":3000,\"min_purchase_cents\":500,"
                  "\"lock_days\":7,\"categories\":{\"books\":200,\"fuel\":0},"
                  "\"campaigns\":[{\"id\":\"spring\",\"start\":\"2026-03-01\","
                  "\"end\":\"2026-06-01T12:00:00Z\",\"multiplier_pct\":300,"
                  "\"bonus_points\":50,\"category\":\"books\"},"
                  "{\"id\":\"bare\",\"start\":\"2026-01-01\",\"end\":\"2026-01-02\"}]}",
                  NULL),
        0);
    assert_string_equal(f->err, "");
    const Coalition__Program *p = f->program;
    assert_non_null(p);
    assert_int_equal(p->point_value_mc, 1000);
    assert_int_equal(p->base_rate_milli, 3000);
    assert_int_equal(p->min_purchase_cents, 500);
    assert_int_equal(p->lock_days, 7);
    assert_int_equal(p->n_categories, 2);
    assert_string_equal(p->categories[0]->category, "books");
    assert_int_equal(p->categories[0]->multiplier_pct, 200);
    assert_string_equal(p->categories[1]->category, "fuel");
    assert_int_equal(p->categories[1]->multiplier_pct, 0);
    assert_int_equal(p->n_campaigns, 2);
    const Coalition__Campaign *c = p->campaigns[0];
    assert_string_equal(c->id, "spring");
    assert_int_equal(c->start_ms, UINT64_C(1772323200000)); /* 2026-03-01T00:00:00Z */
    assert_int_equal(c->end_ms, UINT64_C(1780315200000));   /* 2026-06-01T12:00:00Z */
    assert_int_equal(c->multiplier_pct, 300);
    assert_int_equal(c->bonus_points, 50);
    assert_string_equal(c->category, "books");
    c = p->campaigns[1];
    assert_string_equal(c->id, "bare");
    assert_int_equal(c->multiplier_pct, 0);
    assert_int_equal(c->bonus_points, 0);
    assert_string_equal(c->category, "");
    /* It packs as a Program: what the node receives. */
    assert_true(coalition__program__get_packed_size(p) > 0);
}

static void test_program_json_absent_and_null_are_zero(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(read_text(f, "{}", NULL), 0);
    assert_int_equal(f->program->point_value_mc, 0);
    assert_int_equal(f->program->n_categories, 0);
    assert_null(f->program->categories);
    assert_int_equal(f->program->n_campaigns, 0);
    assert_null(f->program->campaigns);
    assert_int_equal(read_text(f,
                               "{\"point_value_mc\":null,\"base_rate_milli\":null,"
                               "\"lock_days\":null,\"min_purchase_cents\":null,"
                               "\"categories\":null,\"campaigns\":null}",
                               NULL),
                     0);
    assert_int_equal(f->program->base_rate_milli, 0);
    assert_int_equal(f->program->n_campaigns, 0);
    assert_int_equal(read_text(f,
                               "{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\","
                               "\"end\":\"2026-02-01\",\"category\":null,"
                               "\"multiplier_pct\":null,\"bonus_points\":null}]}",
                               NULL),
                     0);
    assert_string_equal(f->program->campaigns[0]->category, "");
}

static void test_program_json_extra_keys_are_the_callers(void **state)
{
    struct fixture *f = *state;
    static const char *const extra[] = {"reason", "partner", NULL};
    const char *text = "{\"point_value_mc\":1,\"reason\":\"spring\",\"partner\":\"acme\"}";
    assert_int_equal(read_text(f, text, extra), 0);
    assert_int_equal(f->program->point_value_mc, 1);
    assert_refused(f, text, "unknown key 'reason'");
    /* Extra keys are allowed at the top only. */
    assert_int_equal(read_text(f,
                               "{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\","
                               "\"end\":\"2026-02-01\",\"reason\":\"x\"}]}",
                               extra),
                     COALITION_E_INVALID_ARGUMENT);
    assert_string_equal(f->err, "unknown key 'campaigns[0].reason'");
}

static void test_program_json_limits_at_their_edge(void **state)
{
    struct fixture *f = *state;
    char text[8192];
    char id64[PROGRAM_JSON_TEXT_MAX + 2];
    memset(id64, 'a', PROGRAM_JSON_TEXT_MAX);
    id64[PROGRAM_JSON_TEXT_MAX] = '\0';

    /* 32 categories, 32 campaigns, 64-byte texts, the largest numbers. */
    size_t n = (size_t)snprintf(text, sizeof(text),
                                "{\"point_value_mc\":9223372036854775807,"
                                "\"lock_days\":4294967295,\"categories\":{\"%s\":4294967295",
                                id64);
    for (int i = 1; i < PROGRAM_JSON_CATEGORIES_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, ",\"c%d\":100", i);
    }
    n += (size_t)snprintf(text + n, sizeof(text) - n, "},\"campaigns\":[");
    for (int i = 0; i < PROGRAM_JSON_CAMPAIGNS_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "%s{\"id\":\"k%d\",\"start\":\"2026-01-01\",\"end\":\"2026-02-01\","
                              "\"category\":\"%s\",\"bonus_points\":9223372036854775807}",
                              i > 0 ? "," : "", i, id64);
    }
    n += (size_t)snprintf(text + n, sizeof(text) - n, "]}");
    assert_true(n < sizeof(text));
    assert_int_equal(read_text(f, text, NULL), 0);
    assert_int_equal(f->program->point_value_mc, INT64_MAX);
    assert_int_equal(f->program->lock_days, UINT32_MAX);
    assert_int_equal(f->program->n_categories, PROGRAM_JSON_CATEGORIES_MAX);
    assert_int_equal(f->program->categories[0]->multiplier_pct, UINT32_MAX);
    assert_int_equal(f->program->n_campaigns, PROGRAM_JSON_CAMPAIGNS_MAX);
    assert_int_equal(f->program->campaigns[31]->bonus_points, INT64_MAX);
    assert_string_equal(f->program->campaigns[31]->category, id64);

    /* One more of each is refused. */
    n = (size_t)snprintf(text, sizeof(text), "{\"categories\":{\"c0\":1");
    for (int i = 1; i <= PROGRAM_JSON_CATEGORIES_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, ",\"c%d\":1", i);
    }
    snprintf(text + n, sizeof(text) - n, "}}");
    assert_refused(f, text, "at most 32 categories");
    n = (size_t)snprintf(text, sizeof(text), "{\"campaigns\":[");
    for (int i = 0; i <= PROGRAM_JSON_CAMPAIGNS_MAX; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s{}", i > 0 ? "," : "");
    }
    snprintf(text + n, sizeof(text) - n, "]}");
    assert_refused(f, text, "at most 32 campaigns");
    char want[PROGRAM_JSON_ERR_LEN];
    snprintf(text, sizeof(text), "{\"categories\":{\"%sb\":100}}", id64);
    snprintf(want, sizeof(want), "category '%sb' is longer than 64 bytes", id64);
    assert_refused(f, text, want);
    snprintf(text, sizeof(text),
             "{\"campaigns\":[{\"id\":\"%sb\",\"start\":\"2026-01-01\",\"end\":\"2026-02-01\"}]}",
             id64);
    assert_refused(f, text, "'campaigns[0].id' is longer than 64 bytes");
    snprintf(text, sizeof(text),
             "{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":\"2026-02-01\","
             "\"category\":\"%sb\"}]}",
             id64);
    assert_refused(f, text, "'campaigns[0].category' is longer than 64 bytes");
}

/* Every rejection of the two readers this one replaced (the CLI's
 * program_read and the HTTP route's program_from_body). */
static void test_program_json_refuses_bad_shapes(void **state)
{
    struct fixture *f = *state;
    static const char num[] = "must be a whole number from 0 to 9223372036854775807";
    static const char num32[] = "must be a whole number from 0 to 4294967295";
    static const char date[] = "must be a date: \"YYYY-MM-DD\" or \"YYYY-MM-DDTHH:MM:SS[.mmm]Z\"";
    char want[PROGRAM_JSON_ERR_LEN];
    const struct {
        const char *text;
        const char *key; /* NULL: `msg` is the whole message */
        const char *msg;
    } cases[] = {
        {"[]", NULL, "not a JSON object"},
        {"{\"base_rate\":5000}", NULL, "unknown key 'base_rate'"},
        {"{\"point_value_mc\":-1}", "point_value_mc", num},
        {"{\"point_value_mc\":\"1000\"}", "point_value_mc", num},
        {"{\"point_value_mc\":1.5}", "point_value_mc", num},
        {"{\"base_rate_milli\":-1}", "base_rate_milli", num},
        {"{\"base_rate_milli\":true}", "base_rate_milli", num},
        {"{\"min_purchase_cents\":-1}", "min_purchase_cents", num},
        {"{\"lock_days\":4294967296}", "lock_days", num32},
        {"{\"lock_days\":-1}", "lock_days", num32},
        {"{\"categories\":[200]}", NULL,
         "'categories' must be an object of category: multiplier_pct"},
        {"{\"categories\":{\"books\":\"x2\"}}", "categories.books", num32},
        {"{\"categories\":{\"books\":-1}}", "categories.books", num32},
        {"{\"categories\":{\"books\":4294967296}}", "categories.books", num32},
        {"{\"categories\":{\"books\":null}}", "categories.books", num32},
        {"{\"campaigns\":{}}", NULL, "'campaigns' must be an array"},
        {"{\"campaigns\":[7]}", NULL, "campaigns[0] must be an object"},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":\"2026-02-01\"},null]}",
         NULL, "campaigns[1] must be an object"},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":\"2026-02-01\","
         "\"when\":1}]}",
         NULL, "unknown key 'campaigns[0].when'"},
        {"{\"campaigns\":[{\"start\":\"2026-01-01\",\"end\":\"2026-02-01\"}]}", NULL,
         "missing key 'campaigns[0].id'"},
        {"{\"campaigns\":[{\"id\":null,\"start\":\"2026-01-01\",\"end\":\"2026-02-01\"}]}", NULL,
         "missing key 'campaigns[0].id'"},
        {"{\"campaigns\":[{\"id\":7,\"start\":\"2026-01-01\",\"end\":\"2026-02-01\"}]}", NULL,
         "'campaigns[0].id' must be a string"},
        {"{\"campaigns\":[{\"id\":\"a\\u0000b\",\"start\":\"2026-01-01\","
         "\"end\":\"2026-02-01\"}]}",
         NULL, "'campaigns[0].id' must be a string"},
        {"{\"campaigns\":[{\"id\":\"c\",\"end\":\"2026-02-01\"}]}", NULL,
         "missing key 'campaigns[0].start'"},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\"}]}", NULL,
         "missing key 'campaigns[0].end'"},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":null}]}", NULL,
         "missing key 'campaigns[0].end'"},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"soon\",\"end\":\"2026-02-01\"}]}",
         "campaigns[0].start", date},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":20260201}]}",
         "campaigns[0].end", date},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":\"2026-02-30\"}]}",
         "campaigns[0].end", date},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":\"2026-02-01\","
         "\"multiplier_pct\":-1}]}",
         "campaigns[0].multiplier_pct", num32},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":\"2026-02-01\","
         "\"bonus_points\":-7}]}",
         "campaigns[0].bonus_points", num},
        {"{\"campaigns\":[{\"id\":\"c\",\"start\":\"2026-01-01\",\"end\":\"2026-02-01\","
         "\"category\":[]}]}",
         NULL, "'campaigns[0].category' must be a string"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].key != NULL) {
            snprintf(want, sizeof(want), "'%s' %s", cases[i].key, cases[i].msg);
        } else {
            snprintf(want, sizeof(want), "%s", cases[i].msg);
        }
        assert_refused(f, cases[i].text, want);
    }
}

static void test_program_json_without_message_buffer(void **state)
{
    struct fixture *f = *state;
    f->doc = json_loads("{\"lock_days\":\"x\"}", 0, NULL);
    assert_non_null(f->doc);
    assert_int_equal(program_json_read(f->doc, NULL, &f->program, NULL),
                     COALITION_E_INVALID_ARGUMENT);
    assert_null(f->program);
    assert_int_equal(program_json_read(NULL, NULL, &f->program, NULL),
                     COALITION_E_INVALID_ARGUMENT);
    assert_null(f->program);
    program_json_free(NULL);
}

/* Packs `p` into `buf`: two programs are equal when their bytes are. */
static size_t packed(const Coalition__Program *p, uint8_t *buf, size_t cap)
{
    size_t n = coalition__program__get_packed_size(p);
    assert_true(n <= cap);
    assert_int_equal(coalition__program__pack(p, buf), n);
    return n;
}

static void test_program_json_write_reads_back_the_same(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(
        read_text(f,
                  "{\"point_value_mc\":1000,\"base_rate_milli\":3000,\"min_purchase_cents\":500,"
                  "\"lock_days\":7,\"categories\":{\"books\":200,\"fuel\":150},"
                  "\"campaigns\":[{\"id\":\"spring\",\"start\":\"2026-03-01\","
                  "\"end\":\"2026-06-01T12:00:00.250Z\",\"multiplier_pct\":300,"
                  "\"bonus_points\":50,\"category\":\"books\"},"
                  "{\"id\":\"bare\",\"start\":\"2026-01-01\",\"end\":\"2026-01-02\"}]}",
                  NULL),
        0);
    json_t *out = NULL;
    assert_int_equal(program_json_write(f->program, &out), 0);
    char *text = json_dumps(out, JSON_COMPACT);
    assert_non_null(text);
    /* Every key, in the documented order; dates in date_format's form. */
    assert_string_equal(
        text, "{\"point_value_mc\":1000,\"base_rate_milli\":3000,"
              "\"categories\":{\"books\":200,\"fuel\":150},"
              "\"campaigns\":[{\"id\":\"spring\",\"start\":\"2026-03-01T00:00:00.000Z\","
              "\"end\":\"2026-06-01T12:00:00.250Z\",\"multiplier_pct\":300,\"bonus_points\":50,"
              "\"category\":\"books\"},{\"id\":\"bare\",\"start\":\"2026-01-01T00:00:00.000Z\","
              "\"end\":\"2026-01-02T00:00:00.000Z\",\"multiplier_pct\":0,\"bonus_points\":0,"
              "\"category\":\"\"}],\"min_purchase_cents\":500,\"lock_days\":7}");
    uint8_t a[1024], b[1024];
    size_t na = packed(f->program, a, sizeof(a));
    json_decref(out);
    /* Read back: the same program. */
    assert_int_equal(read_text(f, text, NULL), 0);
    size_t nb = packed(f->program, b, sizeof(b));
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(text);

    /* An empty program: zeros, {} and []. */
    Coalition__Program empty = COALITION__PROGRAM__INIT;
    assert_int_equal(program_json_write(&empty, &out), 0);
    text = json_dumps(out, JSON_COMPACT);
    assert_string_equal(text, "{\"point_value_mc\":0,\"base_rate_milli\":0,\"categories\":{},"
                              "\"campaigns\":[],\"min_purchase_cents\":0,\"lock_days\":0}");
    free(text);
    json_decref(out);
}

static void test_program_json_write_refuses_what_cannot_read_back(void **state)
{
    (void)state;
    json_t *out = (json_t *)1;
    assert_int_equal(program_json_write(NULL, &out), COALITION_E_INVALID_ARGUMENT);
    assert_null(out);
    Coalition__Program p = COALITION__PROGRAM__INIT;
    p.point_value_mc = (uint64_t)INT64_MAX + 1;
    assert_int_equal(program_json_write(&p, &out), COALITION_E_INVALID_ARGUMENT);
    assert_null(out);
    p.point_value_mc = 1000;
    p.min_purchase_cents = -1;
    assert_int_equal(program_json_write(&p, &out), COALITION_E_INVALID_ARGUMENT);
    p.min_purchase_cents = 0;

    /* Categories: a name too long, not UTF-8, twice; too many. */
    char long_name[PROGRAM_JSON_TEXT_MAX + 2];
    memset(long_name, 'c', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    Coalition__CategoryRate c1 = COALITION__CATEGORY_RATE__INIT;
    Coalition__CategoryRate c2 = COALITION__CATEGORY_RATE__INIT;
    Coalition__CategoryRate *cats[PROGRAM_JSON_CATEGORIES_MAX + 1];
    c1.category = long_name;
    cats[0] = &c1;
    p.categories = cats;
    p.n_categories = 1;
    assert_int_equal(program_json_write(&p, &out), COALITION_E_INVALID_ARGUMENT);
    c1.category = "\xff";
    assert_int_equal(program_json_write(&p, &out), COALITION_E_INVALID_ARGUMENT);
    c1.category = "books";
    c2.category = "books";
    cats[1] = &c2;
    p.n_categories = 2;
    assert_int_equal(program_json_write(&p, &out), COALITION_E_INVALID_ARGUMENT);
    for (size_t i = 0; i < PROGRAM_JSON_CATEGORIES_MAX + 1; i++) {
        cats[i] = &c1;
    }
    p.n_categories = PROGRAM_JSON_CATEGORIES_MAX + 1;
    assert_int_equal(program_json_write(&p, &out), COALITION_E_INVALID_ARGUMENT);
    p.n_categories = 0;

    /* Campaigns: a negative bonus; a date past DATE_MS_MAX is written as
     * the last one the reader takes. */
    Coalition__Campaign camp = COALITION__CAMPAIGN__INIT;
    Coalition__Campaign *camps[] = {&camp};
    camp.id = "late";
    camp.start_ms = 0;
    camp.end_ms = UINT64_MAX;
    camp.bonus_points = -5;
    p.campaigns = camps;
    p.n_campaigns = 1;
    assert_int_equal(program_json_write(&p, &out), COALITION_E_INVALID_ARGUMENT);
    assert_null(out);
    camp.bonus_points = 5;
    assert_int_equal(program_json_write(&p, &out), 0);
    json_t *c = json_array_get(json_object_get(out, "campaigns"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "start")), "1970-01-01T00:00:00.000Z");
    assert_string_equal(json_string_value(json_object_get(c, "end")), "9999-12-31T23:59:59.999Z");
    json_decref(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_program_json_reads_every_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_program_json_absent_and_null_are_zero, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_program_json_extra_keys_are_the_callers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_program_json_limits_at_their_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_program_json_refuses_bad_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_program_json_without_message_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_program_json_write_reads_back_the_same, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_program_json_write_refuses_what_cannot_read_back,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
