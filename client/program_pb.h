/* A libcoalition program (struct coalition_program) seen as the protobuf
 * message the node and the program JSON writer take.  Internal to
 * libcoalition and the coalition CLI; not part of client/coalition.h, whose
 * users never see protobuf. */
#ifndef COALITION_PROGRAM_PB_H
#define COALITION_PROGRAM_PB_H

#include "coalition.h"
#include "coalition.pb-c.h"

/* The message and the room its arrays point into. */
struct program_pb {
    Coalition__Program program;
    Coalition__CategoryRate cats[COALITION_CATEGORIES_MAX];
    Coalition__CategoryRate *cat_ptrs[COALITION_CATEGORIES_MAX];
    Coalition__Campaign camps[COALITION_CAMPAIGNS_MAX];
    Coalition__Campaign *camp_ptrs[COALITION_CAMPAIGNS_MAX];
};

/* Fills pb->program from `src`, whose counts must be within
 * COALITION_CATEGORIES_MAX and COALITION_CAMPAIGNS_MAX (asserted) and whose
 * arrays must be there for them.  The texts are borrowed from `src` (a NULL
 * text reads as ""): pb is valid only while src is. */
void program_pb_view(const struct coalition_program *src, struct program_pb *pb);

#endif
