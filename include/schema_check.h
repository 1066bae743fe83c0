/*
 * schema_check.h - convd refuses to serve on a schema older than it needs.
 *
 * Once the database is reachable, and again every 30 seconds, the history
 * table written by `convctl db` is asked whether SCHEMA_REQUIRED_REVISION
 * is applied, nothing is dirty and the live columns, types and keys are
 * what the recorded revisions promise.  Until that is so, database methods
 * answer `unavailable` with a message naming the command that fixes it;
 * ping, stats and health keep working.
 */
#ifndef CONVD_SCHEMA_CHECK_H
#define CONVD_SCHEMA_CHECK_H

#include <event2/event.h>

#include "common.h"

CONVD_WUR int schema_check_setup(struct event_base *base);
void schema_check_cleanup(void);

/* "ok", "unknown" (not checked yet), "missing", "outdated", "dirty" or
 * "mismatch" (the tables differ from what the recorded revisions promise:
 * SCHEMA_VERIFY_QUERY). */
const char *schema_check_state(void);
/* A sentence for clients and `health`: what is wrong and what fixes it. */
const char *schema_check_message(void);
/* Whether database methods may run (ok, or not known to be wrong yet). */
bool schema_check_serving(void);
/* Whether the schema was checked and is what convd needs (the retention
 * timer deletes nothing otherwise). */
bool schema_check_ok(void);

#endif
