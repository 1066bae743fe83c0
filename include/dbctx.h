/*
 * dbctx.h - the state of one `convctl db` run (configuration, options, the
 * revision set, the connection and what the history table says), its
 * messages on stderr, and the plans it computes.  Every db* module works
 * on a struct dbctx; dbcmd.c fills it from the command line.
 */
#ifndef CONVD_DBCTX_H
#define CONVD_DBCTX_H

#include <libpq-fe.h>

#include "common.h"
#include "config.h"
#include "json.h"
#include "migrate.h"

/* Exit statuses of `convctl db` (see dbcmd.h). */
#define DBCTX_EX_OK 0
#define DBCTX_EX_FAIL 1
#define DBCTX_EX_USAGE 2
#define DBCTX_EX_CONN 3

#define DBCTX_MODEL_FILE "schema.sql"	/* the schema model, not a revision */
#define DBCTX_DEFAULT_LOCK_TIMEOUT 60	/* seconds: --lock-timeout */
#define DBCTX_ERRLEN 2048		/* error texts */

/* The options a command was given (dbctx_opts.given). */
enum {
	DBCTX_O_SQL = 1u << 0,
	DBCTX_O_TRY = 1u << 1,
	DBCTX_O_YES = 1u << 2,
	DBCTX_O_ALLOW_DESTRUCTIVE = 1u << 3,
	DBCTX_O_ACCEPT_CHANGED = 1u << 4,
	DBCTX_O_AUTOGENERATE = 1u << 5,
	DBCTX_O_OFFLINE = 1u << 6,
	DBCTX_O_APPLIED = 1u << 7,
	DBCTX_O_ROLLED_BACK = 1u << 8,
	DBCTX_O_MESSAGE = 1u << 9,
	DBCTX_O_BACKUP = 1u << 10,
	DBCTX_O_MODEL = 1u << 11,
	DBCTX_O_LOCK_TIMEOUT = 1u << 12,
	DBCTX_O_LEGACY_TZ = 1u << 13,
	DBCTX_O_HEAD = 1u << 14,
	DBCTX_O_SPLICE = 1u << 15,
	DBCTX_O_LAYOUT = 1u << 16,
};

struct dbctx_opts {
	unsigned given;
	const char *message, *backup, *model, *head;
	const char *legacy_tz;		/* setup --legacy-timezone ZONE */
	long lock_timeout;
	bool partitioned;	/* setup --layout partitioned */
	char **args;
	int nargs;
};

/* One applied revision, as the history table has it. */
struct dbctx_hist {
	char *revision, *parents, *message, *checksum, *kind, *applied_at,
		*applied_by, *note;
	int64_t duration_ms;
	bool dirty;
	int idx;	/* in the set, or -1 */
};

struct dbctx {
	const char *cmd;
	bool json;
	struct json out;	/* stdout, with --json */
	struct dbctx_opts o;
	struct config cfg;
	bool cfg_ok;
	const char *dir;
	char *model_path;
	struct migrate_set set;
	bool set_ok;
	PGconn *conn;
	char describe[512];
	char *nsp;		/* schema we work in */
	char *qhist;		/* "nsp".convd_schema_history */
	bool has_hist;
	struct dbctx_hist *hist;
	int nhist;
	bool *applied;		/* per revision of the set (clean or dirty) */
	char who[512];
};

/* "convctl db: " + message on stderr (after flushing stdout); nothing
 * while dbctx_quiet(true). */
void dbctx_error(const char *fmt, ...) CONVD_PRINTF(1, 2);
/* "convctl db: warning: " + message on stderr. */
void dbctx_warn(const char *fmt, ...) CONVD_PRINTF(1, 2);
/* While on, dbctx_error says nothing (a database only tried: db show). */
void dbctx_quiet(bool on);
/* dbctx_error / dbctx_warn as callbacks for lists of messages. */
void dbctx_error_cb(void *arg, const char *msg);
void dbctx_warn_cb(void *arg, const char *msg);
/* Puts a formatted prefix before the text already in err. */
void dbctx_err_prefix(char *err, size_t len, const char *fmt, ...)
	CONVD_PRINTF(3, 4);
/* A message on one line, control characters escaped (malloc'd; "?" when
 * out of memory, NULL only if even that fails). */
char *dbctx_oneline(const char *msg);

/* "user@host" of who runs convctl (the history's applied_by). */
void dbctx_user_host(char *buf, size_t len);

/* Reads and checks the revisions of the migrations directory (c->dir);
 * returns an exit status. */
CONVD_WUR int dbctx_load_set(struct dbctx *c);
/* Parses a target (head, heads, base, +N, -N, a revision); DBCTX_EX_USAGE
 * with the message said. */
CONVD_WUR int dbctx_parse_target(struct dbctx *c, const char *text,
				 struct migrate_target *t);
/* The plan (migrate_plan_upgrade / _downgrade) from applied[] to t:
 * malloc'd revision indexes, *n of them; NULL with the reason said. */
CONVD_WUR int *dbctx_plan(struct dbctx *c, bool up, const bool *applied,
			  const struct migrate_target *t, int *n);

#endif
