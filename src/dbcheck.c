/*
 * dbcheck.c - `convctl db check` (the database against the revisions)
 * and `convctl db verify` (the files, graph and checksums).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbcheck.h"
#include "dbconn.h"
#include "dbhist.h"
#include "dbreport.h"
#include "json.h"
#include "migrate_adopt.h"
#include "migrate_sql.h"
#include "schema.h"

/* Table names of the schema with estimated row counts. */
static int list_tables(struct dbctx *c, struct dbreport_list *out, char *err,
		       size_t errlen)
{
	const char *p[1] = {c->nsp};
	PGresult *r = dbconn_params(c, "SELECT c.relname, CASE WHEN "
				    "c.reltuples < 0 THEN NULL ELSE "
				    "c.reltuples::bigint END FROM pg_class c "
				    "JOIN pg_namespace n ON n.oid = "
				    "c.relnamespace WHERE n.nspname = $1 AND "
				    "c.relkind IN ('r', 'p') ORDER BY 1", 1, p,
				    err, errlen);

	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		char buf[512];

		if (PQgetisnull(r, i, 1))
			snprintf(buf, sizeof(buf), "%s", PQgetvalue(r, i, 0));
		else
			snprintf(buf, sizeof(buf), "%s (~%s rows)",
				 PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
		dbreport_list_add(out, buf);
	}
	PQclear(r);
	return 0;
}

int dbcheck_check(struct dbctx *c)
{
	struct dbreport_list probs = {NULL, 0}, tables = {NULL, 0};
	struct dbhist_problems pr;
	struct migrate_adopt a;
	char err[DBCTX_ERRLEN], cur[512];
	int rc, pending;
	bool ok;

	memset(&a, 0, sizeof(a));
	rc = dbctx_load_set(c);
	if (rc != DBCTX_EX_OK)
		return rc;
	rc = dbconn_open(c);
	if (rc != DBCTX_EX_OK) {
		if (c->json)
			printf("{\"ok\":false,\"connection\":false}\n");
		return rc;
	}
	rc = dbhist_load(c);
	if (rc != DBCTX_EX_OK)
		return rc;
	if (list_tables(c, &tables, err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	dbhist_problems(c, &pr, dbreport_list_add, &probs);
	if (dbhist_verify_schema(c, dbreport_list_add, &probs, err,
				 sizeof(err)) > 0)
		dbreport_list_add(&probs, "the tables differ from what the "
				  "recorded revisions promise (above): convd "
				  "refuses this database until they agree");
	pending = dbhist_pending(c);
	dbhist_current_text(c, cur, sizeof(cur));
	if (!c->has_hist) {
		if (migrate_adopt_inspect(c->conn, c->nsp, SCHEMA_HISTORY_TABLE,
					  &a,
					  err, sizeof(err)) < 0) {
			dbctx_error("%s", err);
			dbreport_list_free(&tables);
			dbreport_list_free(&probs);
			return DBCTX_EX_FAIL;
		}
		migrate_adopt_free(&a);
		dbreport_list_add(&probs,
				  a.shape == MIGRATE_ADOPT_UNKNOWN
					  ? "no history table, and tables convctl db "
					    "does not recognise"
					  : "no history table: run 'convctl db "
					    "setup'");
	} else if (pending > 0) {
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "%d revision%s pending: run 'convctl db upgrade'",
			 pending, pending == 1 ? "" : "s");
		dbreport_list_add(&probs, msg);
	}
	ok = probs.n == 0;
	if (c->json) {
		bool first = true;

		printf("{");
		json_kv_bool(&c->out, &first, "ok", ok);
		json_kv_bool(&c->out, &first, "connection", true);
		dbreport_json_database(&c->out, c, &first);
		if (!c->has_hist)
			json_kv_str(&c->out, &first, "found",
				    a.shape == MIGRATE_ADOPT_UNKNOWN ?
				    a.problem : a.found);
		dbreport_json_position(&c->out, c, &first, pending);
		json_key(&c->out, &first, "tables");
		dbreport_json_list(&c->out, &tables);
		json_key(&c->out, &first, "problems");
		dbreport_json_list(&c->out, &probs);
		printf("}\n");
	} else {
		printf("connection: ok (%s)\n", c->describe);
		printf("server:     PostgreSQL %s\n",
		       PQparameterStatus(c->conn, "server_version"));
		printf("schema:     %s\n", c->nsp);
		if (c->has_hist)
			printf("history:    %s, %d revision%s recorded\n",
			       c->qhist, c->nhist, c->nhist == 1 ? "" : "s");
		else
			printf("history:    none; found %s\n",
			       a.shape == MIGRATE_ADOPT_UNKNOWN ?
			       a.problem : a.found);
		printf("revision:   %s", cur);
		if (c->has_hist && pending == 0)
			printf(" (head)");
		printf("\ntables:     ");
		for (int i = 0; i < tables.n; i++)
			printf("%s%s", i ? ", " : "", tables.v[i]);
		printf("%s\n", tables.n ? "" : "(none)");
		for (int i = 0; i < probs.n; i++)
			printf("problem:    %s\n", probs.v[i]);
		printf("check:      %s\n", ok ? "ok" : "FAILED");
	}
	dbreport_list_free(&tables);
	dbreport_list_free(&probs);
	return ok ? DBCTX_EX_OK : DBCTX_EX_FAIL;
}

int dbcheck_verify(struct dbctx *c)
{
	struct dbreport_list probs = {NULL, 0}, flags = {NULL, 0};
	struct dbhist_problems pr;
	char err[DBCTX_ERRLEN];
	int rc, bad = 0;

	rc = dbctx_load_set(c);
	if (rc != DBCTX_EX_OK)
		return rc;
	for (int i = 0; i < c->set.n; i++) {
		const struct migrate_rev *r = &c->set.revs[c->set.order[i]];
		struct migrate_sql_finding *f = NULL;
		size_t nf = 0;
		int lex;

		/* both sections must lex; the up section's findings count */
		lex = migrate_sql_scan(r->down, &f, &nf, err, sizeof(err));

		free(f);
		f = NULL;
		if (lex == 0)
			lex = migrate_sql_scan(r->up, &f, &nf, err,
					       sizeof(err));
		if (lex < 0) {
			char msg[DBCTX_ERRLEN + 128];

			snprintf(msg, sizeof(msg), "revision %s (%s): %s",
				 r->id, r->path, err);
			dbreport_list_add(&probs, msg);
			continue;
		}
		if (r->transactional && (migrate_sql_txn_control(r->up) ||
					 migrate_sql_txn_control(r->down))) {
			char msg[1024];

			snprintf(msg, sizeof(msg),
				 "revision %s (%s) begins or ends a "
				 "transaction, but is transactional",
				 r->id, r->path);
			dbreport_list_add(&probs, msg);
		}
		for (size_t k = 0; k < nf; k++) {
			char msg[1024];

			snprintf(msg, sizeof(msg),
				 "revision %s (%s:%d) %s: %s", r->id, r->path,
				 r->up_line + f[k].line - 1,
				 migrate_sql_hazard_name(f[k].kind), f[k].what);
			dbreport_list_add(&flags, msg);
		}
		free(f);
	}
	if (!(c->o.given & DBCTX_O_OFFLINE)) {
		rc = dbconn_open(c);
		if (rc != DBCTX_EX_OK) {
			dbreport_list_free(&probs);
			dbreport_list_free(&flags);
			return rc;
		}
		rc = dbhist_load(c);
		if (rc != DBCTX_EX_OK) {
			dbreport_list_free(&probs);
			dbreport_list_free(&flags);
			return rc;
		}
		dbhist_problems(c, &pr, dbreport_list_add, &probs);
	}
	bad = probs.n;
	if (c->json) {
		bool first = true;

		printf("{");
		json_kv_bool(&c->out, &first, "ok", bad == 0);
		json_kv_int(&c->out, &first, "revisions", c->set.n);
		json_key(&c->out, &first, "heads");
		dbreport_json_heads(&c->out, c);
		json_kv_bool(&c->out, &first, "database", c->conn != NULL);
		json_key(&c->out, &first, "destructive");
		dbreport_json_list(&c->out, &flags);
		json_key(&c->out, &first, "problems");
		dbreport_json_list(&c->out, &probs);
		printf("}\n");
	} else {
		char heads[512];

		migrate_set_heads_text(&c->set, heads, sizeof(heads));
		printf("%d revision%s in %s, %d head%s%s%s%s\n", c->set.n,
		       c->set.n == 1 ? "" : "s", c->dir, c->set.nheads,
		       c->set.nheads == 1 ? "" : "s",
		       c->set.nheads ? " (" : "", heads,
		       c->set.nheads ? ")" : "");
		if (c->set.nheads > 1)
			printf("note: several heads: 'convctl db upgrade head' "
			       "refuses until they are merged\n");
		for (int i = 0; i < flags.n; i++)
			printf("destructive: %s\n", flags.v[i]);
		if (c->conn)
			printf("checksums: %d applied revision%s compared with "
			       "their files\n",
			       c->nhist, c->nhist == 1 ? "" : "s");
		for (int i = 0; i < probs.n; i++)
			printf("problem: %s\n", probs.v[i]);
		printf("verify: %s\n", bad ? "FAILED" : "ok");
	}
	dbreport_list_free(&probs);
	dbreport_list_free(&flags);
	return bad ? DBCTX_EX_FAIL : DBCTX_EX_OK;
}
