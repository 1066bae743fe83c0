/*
 * dbctx.c - one `convctl db` run: its messages, its revision set, the
 * plans it computes (see dbctx.h).
 */
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbctx.h"

/* Set while a database is only tried (db show): its errors are not ours. */
static bool quiet_errors;

void dbctx_error(const char *fmt, ...)
{
	va_list ap;

	if (quiet_errors)
		return;
	fflush(stdout);
	fputs("convctl db: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void dbctx_warn(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("convctl db: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void dbctx_err_prefix(char *err, size_t len, const char *fmt, ...)
{
	char pre[512], *old = strdup(err);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	snprintf(err, len, "%s%s", pre, old ? old : "");
	free(old);
}

void dbctx_quiet(bool on)
{
	quiet_errors = on;
}

void dbctx_error_cb(void *arg, const char *msg)
{
	(void)arg;
	dbctx_error("%s", msg);
}

void dbctx_warn_cb(void *arg, const char *msg)
{
	(void)arg;
	dbctx_warn("%s", msg);
}

char *dbctx_oneline(const char *msg)
{
	char *s = migrate_rev_message_escape(msg ? msg : "");

	return s ? s : strdup("?");
}

void dbctx_user_host(char *buf, size_t len)
{
	struct passwd *pw = getpwuid(geteuid());
	char host[256] = "?";

	if (gethostname(host, sizeof(host)) < 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(buf, len, "%s@%s", pw ? pw->pw_name : "?", host);
}

static void report_file(const char *msg, void *arg)
{
	(void)arg;
	dbctx_error("%s", msg);
}

int dbctx_load_set(struct dbctx *c)
{
	char err[DBCTX_ERRLEN];

	migrate_set_init(&c->set);
	c->set_ok = true;
	if (migrate_set_load_dir(&c->set, c->dir, DBCTX_MODEL_FILE, report_file,
				 NULL, err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	if (migrate_set_build(&c->set, err, sizeof(err)) < 0) {
		dbctx_error("%s: %s", c->dir, err);
		return DBCTX_EX_FAIL;
	}
	c->applied = calloc((size_t)c->set.n + 1, sizeof(bool));
	if (!c->applied) {
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	return DBCTX_EX_OK;
}

int dbctx_parse_target(struct dbctx *c, const char *text,
		       struct migrate_target *t)
{
	char err[DBCTX_ERRLEN];

	if (migrate_target_parse(&c->set, text, t, err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_USAGE;
	}
	return DBCTX_EX_OK;
}

int *dbctx_plan(struct dbctx *c, bool up, const bool *applied,
		const struct migrate_target *t, int *n)
{
	int *plan = malloc(sizeof(int) * ((size_t)c->set.n + 1));
	char err[DBCTX_ERRLEN];

	*n = 0;
	if (!plan) {
		dbctx_error("out of memory");
		return NULL;
	}
	if ((up ? migrate_plan_upgrade(&c->set, applied, t, plan, n, err,
				       sizeof(err))
		: migrate_plan_downgrade(&c->set, applied, t, plan, n, err,
					 sizeof(err))) < 0) {
		dbctx_error("%s", err);
		free(plan);
		return NULL;
	}
	return plan;
}
