/*
 * pgnotice.c - libpq notices through the log module.
 */
#include <string.h>

#include "log.h"
#include "pgnotice.h"
#include "topology.h"

/* Severity (never localized when the server sends it) to log level. */
static enum log_level pgnotice_level(const char *sev)
{
	if (!sev)
		return LOG_LVL_INFO;
	if (strcmp(sev, "PANIC") == 0 || strcmp(sev, "FATAL") == 0 ||
	    strcmp(sev, "ERROR") == 0 || strcmp(sev, "WARNING") == 0)
		return LOG_LVL_WARNING;
	if (strcmp(sev, "NOTICE") == 0)
		return LOG_LVL_INFO;
	return LOG_LVL_DEBUG;	/* INFO, LOG, DEBUG */
}

static void pgnotice_receive(void *arg, const PGresult *res)
{
	struct pgnotice_ctx *ctx = arg;
	const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *text = primary ? primary : PQresultErrorMessage(res);
	enum log_level lvl;
	size_t n;

	if (!sev)
		sev = PQresultErrorField(res, PG_DIAG_SEVERITY);
	if (topology_not_replicated(primary))
		ctx->not_replicated = true;
	lvl = pgnotice_level(sev);
	if (!log_enabled(lvl))
		return;
	/* libpq's own notices end in a newline: one log line each */
	n = strcspn(text ? text : "", "\n");
	log_msg(lvl, "pool: connection %llu: server says %s%s%s: %.*s",
		(unsigned long long)ctx->conn_id, sev ? sev : "NOTICE",
		code ? " " : "", code ? code : "", (int)n, text ? text : "");
}

void pgnotice_attach(PGconn *pg, struct pgnotice_ctx *ctx)
{
	PQsetNoticeReceiver(pg, pgnotice_receive, ctx);
}
