/* Coalition Ledger error codes: one table shared by the node, the client
 * library and the CLI.  Codes travel on the wire as numbers; their names are
 * stable and are what scripts and POS systems should match on. */
#ifndef COALITION_ERRORS_H
#define COALITION_ERRORS_H

/* X(NAME, value, message).  Values are negative and never reused; messages
 * are short enough for a cashier's screen.  Append new codes at the end. */
#define COALITION_ERROR_MAP(X)                                                                     \
    X(INVALID_ARGUMENT, -1, "The request is missing a field or a field is not valid")              \
    X(INVALID_AMOUNT, -2, "Points must be a whole number from 1 to 1000000000000")                 \
    X(UNKNOWN_PARTNER, -3, "This partner is not part of the coalition")                            \
    X(UNKNOWN_MEMBER, -4, "No member with this id")                                                \
    X(UNKNOWN_TXN, -5, "No transaction with this id for this partner")                             \
    X(INSUFFICIENT_POINTS, -6, "Not enough points available")                                      \
    X(CONFLICT, -7, "This transaction id was already used for a different request")                \
    X(ALREADY_EXISTS, -8, "This id is already registered")                                         \
    X(REVERSAL_EXCEEDS, -9, "The reversal is larger than what is left of the original")            \
    X(POINTS_SPENT, -10, "The awarded points were already spent and cannot be reversed")           \
    X(NOT_REVERSIBLE, -11, "This kind of transaction cannot be reversed")                          \
    X(OVERFLOW, -12, "The amount would overflow an account")                                       \
    X(FRAME_TOO_LARGE, -13, "The message is larger than the limit")                                \
    X(BAD_FRAME, -14, "The message could not be decoded")                                          \
    X(UNAVAILABLE, -15, "The ledger is not available right now, try again")                        \
    X(NOT_LEADER, -16, "This node cannot accept writes right now, try another node")               \
    X(TIMEOUT, -17, "No answer in time; retry with the same transaction id")                       \
    X(UNREACHABLE, -18, "Cannot reach the coalition node")                                         \
    X(STORAGE, -19, "The node could not read or write its storage")                                \
    X(VERIFY_FAILED, -20, "The ledger failed verification")                                        \
    X(INTERNAL, -21, "Internal error")                                                             \
    X(NOMEM, -22, "Out of memory")                                                                 \
    X(BUSY, -23, "The node is overloaded, try again")                                              \
    X(NO_POINTS_EARNED, -24, "This purchase earns no points")                                      \
    X(HOLD_CLOSED, -25, "The hold was already captured, released or timed out")                    \
    X(MEMBER_CLOSED, -26, "This member account was merged or erased")                              \
    X(UNKNOWN_CARD, -27, "No such card for this member")                                           \
    X(NOTHING_DUE, -28, "Nothing is due yet")                                                      \
    X(IDENTITY_UNAVAILABLE, -29, "This node cannot look up phone numbers or emails")               \
    X(OPEN_HOLDS, -30, "The member has open holds; capture or release them first")                 \
    X(UNAUTHENTICATED, -31, "The API key or signature is missing or not valid")                    \
    X(FORBIDDEN, -32, "This partner is not allowed to do this")                                    \
    X(RATE_LIMITED, -33, "Too many requests; slow down and retry")                                 \
    X(NOT_FOUND, -34, "No such API endpoint")                                                      \
    X(REQUEST_TIMEOUT, -35, "The request did not arrive in time")

enum coalition_error {
    COALITION_OK = 0,
#define COALITION_ERROR_ENUM_(name, value, msg) COALITION_E_##name = (value),
    COALITION_ERROR_MAP(COALITION_ERROR_ENUM_)
#undef COALITION_ERROR_ENUM_
};

/* Stable upper-case name of a code ("INSUFFICIENT_POINTS"); "OK" for 0 and
 * "UNKNOWN_ERROR" for a value not in the table.  Never NULL, static storage. */
const char *coalition_errname(int code);

/* Human-readable message for a code.  Never NULL, static storage. */
const char *coalition_strerror(int code);

/* The code whose name is `name`, or COALITION_E_INTERNAL if none is. */
int coalition_errcode(const char *name);

#endif
