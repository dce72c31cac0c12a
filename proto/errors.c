/* The lookup functions over the error table in proto/errors.h. */
#include "errors.h"

#include <string.h>

const char *coalition_errname(int code)
{
    switch (code) {
    case COALITION_OK:
        return "OK";
#define NAME_CASE_(name, value, msg)                                                               \
    case (value):                                                                                  \
        return #name;
        COALITION_ERROR_MAP(NAME_CASE_)
#undef NAME_CASE_
    default:
        return "UNKNOWN_ERROR";
    }
}

const char *coalition_strerror(int code)
{
    switch (code) {
    case COALITION_OK:
        return "OK";
#define MSG_CASE_(name, value, msg)                                                                \
    case (value):                                                                                  \
        return msg;
        COALITION_ERROR_MAP(MSG_CASE_)
#undef MSG_CASE_
    default:
        return "Unknown error";
    }
}

int coalition_errcode(const char *name)
{
#define CMP_(n, value, msg)                                                                        \
    if (strcmp(name, #n) == 0) {                                                                   \
        return (value);                                                                            \
    }
    COALITION_ERROR_MAP(CMP_)
#undef CMP_
    if (strcmp(name, "OK") == 0) {
        return COALITION_OK;
    }
    return COALITION_E_INTERNAL;
}
