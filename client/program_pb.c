/* A libcoalition program as a protobuf message (client/program_pb.h).  What
 * does not live here: checking a caller's program (coalition.c does, with
 * its messages) and reading a node's answer back (coalition.c copies it). */
#include "program_pb.h"

#include <assert.h>

static char *text_or_empty(const char *s)
{
    /* protobuf-c only reads these while packing or writing. */
    return (char *)(s != NULL ? s : "");
}

void program_pb_view(const struct coalition_program *src, struct program_pb *pb)
{
    assert(src->n_categories <= COALITION_CATEGORIES_MAX);
    assert(src->n_campaigns <= COALITION_CAMPAIGNS_MAX);
    assert(src->n_categories == 0 || src->categories != NULL);
    assert(src->n_campaigns == 0 || src->campaigns != NULL);
    Coalition__Program *p = &pb->program;
    coalition__program__init(p);
    p->point_value_mc = src->point_value_mc;
    p->base_rate_milli = src->base_rate_milli;
    p->min_purchase_cents = src->min_purchase_cents;
    p->lock_days = src->lock_days;
    for (size_t i = 0; i < src->n_categories; i++) {
        coalition__category_rate__init(&pb->cats[i]);
        pb->cats[i].category = text_or_empty(src->categories[i].category);
        pb->cats[i].multiplier_pct = src->categories[i].multiplier_pct;
        pb->cat_ptrs[i] = &pb->cats[i];
    }
    p->n_categories = src->n_categories;
    p->categories = src->n_categories > 0 ? pb->cat_ptrs : NULL;
    for (size_t i = 0; i < src->n_campaigns; i++) {
        const struct coalition_campaign *c = &src->campaigns[i];
        Coalition__Campaign *dst = &pb->camps[i];
        coalition__campaign__init(dst);
        dst->id = text_or_empty(c->id);
        dst->start_ms = c->start_ms;
        dst->end_ms = c->end_ms;
        dst->multiplier_pct = c->multiplier_pct;
        dst->bonus_points = c->bonus_points;
        dst->category = text_or_empty(c->category);
        pb->camp_ptrs[i] = dst;
    }
    p->n_campaigns = src->n_campaigns;
    p->campaigns = src->n_campaigns > 0 ? pb->camp_ptrs : NULL;
}
