/* Reports computed from the ledger's entries alone: the settlement statement
 * (who owes whom for points redeemed across partners) and program KPIs.  They
 * read a snapshot of the store, so they may run on a worker thread while
 * batches are applied, and they are a pure function of the entries: every node
 * holding the same entries gives the same report.  Formatting (table, JSON,
 * CSV) and transport do not live here. */
#ifndef COALITION_REPORT_H
#define COALITION_REPORT_H

#include <stdint.h>

#include "coalition.pb-c.h"
#include "store.h"

/* Flows listed in a KPI report's top_flows at most. */
#define REPORT_TOP_FLOWS_MAX 5

/* The settlement statement over the entries with from_ms <= time_ms < to_ms,
 * read from a snapshot of `s` (borrowed).  Figures (see coalition.proto,
 * SettlementResult) come from the postings: issuance from i:X accounts,
 * breakage from x:X accounts, flows from r:Q accounts and the postings'
 * `issuer`, valued at the issuer's point value as of each entry (its latest
 * PROGRAM_SET, RULES_DEFAULT_POINT_VALUE_MC before one).  Flows are those with
 * nonzero points or value in the window, in (issuer, redeemer) order; partners
 * are those admitted before to_ms, in id order; payments net the flows of
 * each pair of partners both ways (who pays whom how much, one per pair that
 * is not even, in the order of the pair's first flow), the one place
 * settlement is netted for the CLI and the HTTP API.  On success *out is a malloc'd
 * result that the caller frees with report_settlement_free.  Returns 0,
 * INVALID_ARGUMENT (from_ms >= to_ms), OVERFLOW (a figure leaves int64),
 * VERIFY_FAILED (an entry that does not decode, or a redemption posting
 * without an issuer), STORAGE or NOMEM; *out is untouched on error. */
int report_settlement(struct store *s, uint64_t from_ms, uint64_t to_ms,
                      Coalition__SettlementResult **out);
void report_settlement_free(Coalition__SettlementResult *r);

/* The KPI report for `partner` (borrowed; "" or NULL: the whole coalition)
 * over [from_ms, to_ms), compared with the window of equal length before it
 * (clamped at 0) for retention.  Purchases are AWARD entries submitted by the
 * partner with purchase_cents > 0; a member is active in a window if it has
 * such a purchase or a REDEEM or CAPTURE posting at the partner; point figures
 * are the partner's settlement figures (summed over every partner for "");
 * top_flows are the largest cross-partner flows (issuer != redeemer) with
 * positive points in the window that involve the partner (any for ""), by
 * points descending, then issuer, then redeemer, at most
 * REPORT_TOP_FLOWS_MAX.  On success *out is malloc'd, freed with
 * report_kpi_free.  Returns 0, INVALID_ARGUMENT (from_ms >= to_ms),
 * UNKNOWN_PARTNER (not admitted before to_ms) or the errors of
 * report_settlement; *out is untouched on error. */
int report_kpi(struct store *s, const char *partner, uint64_t from_ms, uint64_t to_ms,
               Coalition__ReportResult **out);
void report_kpi_free(Coalition__ReportResult *r);

#endif
