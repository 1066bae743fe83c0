/*
 * dbreport.h - the reports that change nothing: status, current, history,
 * heads, branches, show REV; text for people, or one JSON document with
 * --json (json.h).  Also the pieces dbcheck shares: lists of messages
 * and the JSON arrays of the current revisions and the heads.
 */
#ifndef CONVD_DBREPORT_H
#define CONVD_DBREPORT_H

#include "dbctx.h"
#include "json.h"

/* Messages collected as strings (for status, check and verify). */
struct dbreport_list {
	char **v;
	int n;
};

/* Adds a copy of msg to the list arg (a callback; out of memory drops
 * it). */
void dbreport_list_add(void *arg, const char *msg);
void dbreport_list_free(struct dbreport_list *l);

/* JSON arrays: the heads, a list's strings. */
void dbreport_json_heads(struct json *j, const struct dbctx *c);
void dbreport_json_list(struct json *j, const struct dbreport_list *l);
/* Members of status and check: database, server_version, schema,
 * history_table / current, heads, pending, at_head. */
void dbreport_json_database(struct json *j, const struct dbctx *c,
			    bool *first);
void dbreport_json_position(struct json *j, const struct dbctx *c,
			    bool *first, int pending);

/* The commands; each returns the exit status (dbcmd.h). */
CONVD_WUR int dbreport_status(struct dbctx *c);
CONVD_WUR int dbreport_current(struct dbctx *c);
CONVD_WUR int dbreport_heads(struct dbctx *c);
CONVD_WUR int dbreport_branches(struct dbctx *c);
CONVD_WUR int dbreport_history(struct dbctx *c);
CONVD_WUR int dbreport_show(struct dbctx *c);

#endif
