/*
 * health.c - the one readiness check (see health.h).
 *
 * The database is "down" when no connection can be opened; convd is then
 * not ready, nor while the schema is not usable.
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
	} else {
		h->database = "up";
		snprintf(h->message, sizeof(h->message), "%s",
			 schema_check_message());
	}
	h->ok = strcmp(h->database, "up") == 0 && strcmp(h->schema, "ok") == 0;
}
