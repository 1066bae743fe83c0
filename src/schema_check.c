/*
 * schema_check.c - checks that the database schema is what convd needs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event_struct.h>

#include "clock.h"
#include "consts.h"
#include "log.h"
#include "loop.h"
#include "pool.h"
#include "schema.h"
#include "schema_check.h"

#define RECHECK_USEC (30 * USEC_PER_SEC)
#define RECHECK_BAD_USEC (2 * USEC_PER_SEC)	/* until someone fixes it */
#define RETRY_USEC (1 * USEC_PER_SEC)

enum sc_state {
	SC_UNKNOWN, SC_OK, SC_MISSING, SC_OUTDATED, SC_DIRTY, SC_MISMATCH
};

static const char *const sc_names[] = {
	[SC_UNKNOWN] = "unknown", [SC_OK] = "ok",	  [SC_MISSING] = "missing",
	[SC_OUTDATED] = "outdated", [SC_DIRTY] = "dirty",
	[SC_MISMATCH] = "mismatch",
};

static struct {
	struct event timer;
	bool closing;
	enum sc_state state;
	bool running;
	struct pool_waiter waiter;
	char message[1024];
} sc;

/* -1 (logged): the timer is given up; the state stays as it is. */
static int schema_check_arm(usec_t delay)
{
	if (sc.closing)
		return 0;
	if (loop_arm_usec(&sc.timer, delay, "schema check timer") < 0) {
		log_error("schema: no longer checked by this convd (state %s)",
			  sc_names[sc.state]);
		return -1;
	}
	return 0;
}

static void schema_check_set(enum sc_state st)
{
	if (st != sc.state) {
		if (st == SC_OK) {
			log_info("schema: revision %s is applied",
				 SCHEMA_REQUIRED_REVISION);
		} else {
			log_error("schema: %s", sc.message);
		}
	}
	sc.state = st;
}

static void schema_check_done(void *arg, struct pool_conn *pc,
			      enum pool_status st, const PGresult *res,
			      const char *msg)
{
	(void)arg;
	pool_release(pc);
	sc.running = false;
	if (st == POOL_QUERY_ERROR) {
		const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (code && strcmp(code, SQLSTATE_UNDEFINED_TABLE) == 0) {
			snprintf(sc.message, sizeof(sc.message),
				 "the database has no convd schema (no table "
				 "%s); run 'convctl db setup'",
				 SCHEMA_HISTORY_TABLE);
			schema_check_set(SC_MISSING);
		} else {
			log_warn("schema: check failed: %s", msg ? msg : "?");
		}
		schema_check_arm(RECHECK_BAD_USEC);
		return;
	}
	if (st != POOL_OK) {
		schema_check_arm(RETRY_USEC);
		return;
	}
	if (PQntuples(res) == 1 && strtoll(PQgetvalue(res, 0, 1), NULL, 10) > 0) {
		snprintf(sc.message, sizeof(sc.message),
			 "a schema migration failed half-way (dirty); see "
			 "'convctl db status'");
		schema_check_set(SC_DIRTY);
	} else if (PQntuples(res) != 1 ||
		   strtoll(PQgetvalue(res, 0, 0), NULL, 10) != 1) {
		snprintf(sc.message, sizeof(sc.message),
			 "the database schema is older than this convd needs "
			 "(revision %s); run '%s'",
			 SCHEMA_REQUIRED_REVISION, SCHEMA_FIX_COMMAND);
		schema_check_set(SC_OUTDATED);
	} else if (strtoll(PQgetvalue(res, 0, 2), NULL, 10) > 0) {
		/* the revision is recorded, but the tables are not what the
		 * recorded revisions promise (SCHEMA_VERIFY_QUERY) */
		const char *first = strchr(PQgetvalue(res, 0, 2), '\n');
		long n = strtol(PQgetvalue(res, 0, 2), NULL, 10);

		snprintf(sc.message, sizeof(sc.message),
			 "the tables differ from what the recorded revisions "
			 "promise (%ld difference%s; first: %s): convd refuses "
			 "them; 'convctl db check' lists them all",
			 n, n == 1 ? "" : "s", first ? first + 1 : "?");
		schema_check_set(SC_MISMATCH);
	} else {
		snprintf(sc.message, sizeof(sc.message), "schema is up to date");
		schema_check_set(SC_OK);
	}
	schema_check_arm(sc.state == SC_OK ? RECHECK_USEC : RECHECK_BAD_USEC);
}

static void schema_check_run(struct pool_conn *pc)
{
	const char *vals[1] = {SCHEMA_REQUIRED_REVISION};

	if (pool_exec(pc, NULL, SCHEMA_CHECK_QUERY, 1, vals, NULL, NULL, 0,
		      schema_check_done, NULL) < 0) {
		pool_release(pc);
		sc.running = false;
		schema_check_arm(RETRY_USEC);
	}
}

static void schema_check_acquired(void *arg, struct pool_conn *pc,
				  enum pool_status st, const char *msg)
{
	(void)arg;
	(void)msg;
	if (st != POOL_OK) {
		sc.running = false;
		schema_check_arm(RETRY_USEC);
		return;
	}
	schema_check_run(pc);
}

static void schema_check_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (sc.running)
		return;
	sc.running = true;
	(void)pool_acquire_then(&sc.waiter, schema_check_acquired, NULL);
}

int schema_check_setup(struct event_base *base)
{
	memset(&sc, 0, sizeof(sc));
	snprintf(sc.message, sizeof(sc.message),
		 "the schema has not been checked yet");
	evtimer_assign(&sc.timer, base, schema_check_tick, NULL);
	return schema_check_arm(0);
}

void schema_check_cleanup(void)
{
	if (sc.running)
		pool_cancel(&sc.waiter);
	sc.closing = true;
	if (event_initialized(&sc.timer))
		event_del(&sc.timer);
}

const char *schema_check_state(void)
{
	return sc_names[sc.state];
}

const char *schema_check_message(void)
{
	return sc.message;
}

bool schema_check_ok(void)
{
	return sc.state == SC_OK;
}

bool schema_check_serving(void)
{
	return sc.state == SC_OK || sc.state == SC_UNKNOWN;
}
