/*
 * health.c - the one readiness check (see health.h).
 *
 * The database is "down" when no connection can be opened, "stalled" when
 * queries are outstanding and the server has answered none for
 * POOL_STALL_USEC, or when one was given up at its deadline less than
 * POOL_STALL_USEC ago or with none answered since (a frozen server,
 * commits waiting for a standby that is not there); either way convd is
 * not ready.
 */
#include <stdio.h>
#include <string.h>

#include "health.h"
#include "pool.h"
#include "schema_check.h"

void health_check(struct health *h)
{
	struct pool_stats ps;

	pool_stats(&ps);
	h->schema = schema_check_state();
	if (!ps.database_up) {
		h->database = "down";
		snprintf(h->message, sizeof(h->message), "%s",
			 ps.last_error[0] ? ps.last_error :
					    "database unreachable");
	} else if (ps.database_stalled) {
		h->database = "stalled";
		snprintf(h->message, sizeof(h->message),
			 "the database has answered no query for %lld ms "
			 "(%d connections busy, %d requests waiting, %llu "
			 "queries given up at their deadline)",
			 (long long)(ps.stalled_usec / 1000), ps.busy,
			 ps.waiting, (unsigned long long)ps.abandoned);
	} else if (ps.failing >= POOL_FAILING_AFTER) {
		/* it answers, but every query of late failed */
		h->database = "failing";
		snprintf(h->message, sizeof(h->message), "%s",
			 ps.last_error[0] ? ps.last_error : "queries fail");
	} else {
		h->database = "up";
		snprintf(h->message, sizeof(h->message), "%s",
			 schema_check_message());
	}
	h->ok = strcmp(h->database, "up") == 0 && strcmp(h->schema, "ok") == 0;
}
