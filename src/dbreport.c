/*
 * dbreport.c - the reports that change nothing: status, current,
 * history, heads, branches, show (text, or JSON with --json).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbconn.h"
#include "dbhist.h"
#include "dbreport.h"
#include "dbsql.h"
#include "json.h"
#include "migrate_sql.h"

void dbreport_list_add(void *arg, const char *msg)
{
	struct dbreport_list *l = arg;
	char **nv = realloc(l->v, sizeof(char *) * (size_t)(l->n + 1));

	if (!nv)
		return;
	l->v = nv;
	l->v[l->n] = strdup(msg);
	if (l->v[l->n])
		l->n++;
}

void dbreport_list_free(struct dbreport_list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static void current_json(struct json *j, const struct dbctx *c)
{
	bool first = true;

	fputc('[', j->f);
	for (int i = 0; i < c->set.n; i++) {
		int x = c->set.order[i];
		const struct migrate_rev *r = &c->set.revs[x];

		if (!dbhist_is_current(c, x))
			continue;
		if (!first)
			fputc(',', j->f);
		first = false;
		json_cstr(j, r->id);
	}
	fputc(']', j->f);
}

void dbreport_json_heads(struct json *j, const struct dbctx *c)
{
	fputc('[', j->f);
	for (int i = 0; i < c->set.nheads; i++) {
		if (i)
			fputc(',', j->f);
		json_cstr(j, c->set.revs[c->set.heads[i]].id);
	}
	fputc(']', j->f);
}

void dbreport_json_list(struct json *j, const struct dbreport_list *l)
{
	fputc('[', j->f);
	for (int i = 0; i < l->n; i++) {
		if (i)
			fputc(',', j->f);
		json_cstr(j, l->v[i]);
	}
	fputc(']', j->f);
}

void dbreport_json_database(struct json *j, const struct dbctx *c,
			    bool *first)
{
	json_kv_str(j, first, "database", c->describe);
	json_kv_str(j, first, "server_version",
		    PQparameterStatus(c->conn, "server_version"));
	json_kv_str(j, first, "schema", c->nsp);
	json_kv_bool(j, first, "history_table", c->has_hist);
}

void dbreport_json_position(struct json *j, const struct dbctx *c,
			    bool *first, int pending)
{
	json_key(j, first, "current");
	current_json(j, c);
	json_key(j, first, "heads");
	dbreport_json_heads(j, c);
	json_kv_int(j, first, "pending", pending);
	json_kv_bool(j, first, "at_head", pending == 0 && c->has_hist);
}

/* One revision as a JSON object (with what the history says of it). */
static void put_rev(struct json *j, const struct dbctx *c, int idx,
		    bool with_sql)
{
	const struct migrate_rev *r = &c->set.revs[idx];
	const struct dbctx_hist *h = c->conn ? dbhist_of(c, idx) : NULL;
	bool first = true;

	fputc('{', j->f);
	json_kv_str(j, &first, "revision", r->id);
	json_key(j, &first, "parents");
	fputc('[', j->f);
	for (int k = 0; k < r->nparents; k++) {
		if (k)
			fputc(',', j->f);
		json_cstr(j, r->parents[k]);
	}
	fputc(']', j->f);
	json_key(j, &first, "children");
	fputc('[', j->f);
	for (int k = 0; k < r->nchildren; k++) {
		if (k)
			fputc(',', j->f);
		json_cstr(j, c->set.revs[r->child_idx[k]].id);
	}
	fputc(']', j->f);
	json_kv_str(j, &first, "message", r->message);
	json_kv_bool(j, &first, "head", r->nchildren == 0);
	json_kv_bool(j, &first, "transactional", r->transactional);
	json_kv_str(j, &first, "checksum", r->checksum);
	json_kv_str(j, &first, "file", r->path);
	if (c->conn) {
		json_kv_str(j, &first, "state", dbhist_state(c, idx));
		json_kv_str(j, &first, "applied_at", h ? h->applied_at : NULL);
		json_kv_str(j, &first, "applied_by", h ? h->applied_by : NULL);
		json_key(j, &first, "duration_ms");
		if (h)
			json_int(j, h->duration_ms);
		else
			json_null(j);
		json_kv_str(j, &first, "note", h ? h->note : NULL);
	}
	if (with_sql) {
		json_kv_str(j, &first, "created", r->created);
		json_kv_str(j, &first, "up", r->up);
		json_kv_str(j, &first, "down", r->down);
	}
	fputc('}', j->f);
}

/* The revisions idx[0..n) (from the last when reverse) as a JSON array. */
static void revs_json(struct json *j, const struct dbctx *c, const int *idx,
		      int n, bool reverse)
{
	fputc('[', j->f);
	for (int i = 0; i < n; i++) {
		if (i)
			fputc(',', j->f);
		put_rev(j, c, idx[reverse ? n - 1 - i : i], false);
	}
	fputc(']', j->f);
}

/* {"key": [the revisions]} and a newline: a whole --json answer. */
static int revs_json_answer(struct dbctx *c, const char *key,
			    const int *idx, int n, bool reverse)
{
	printf("{\"%s\":", key);
	revs_json(&c->out, c, idx, n, reverse);
	printf("}\n");
	return DBCTX_EX_OK;
}

int dbreport_status(struct dbctx *c)
{
	struct dbreport_list probs = {NULL, 0};
	struct dbhist_problems pr;
	char cur[512], heads[512];
	int rc = dbhist_prepare(c, true, false), pending;

	if (rc != DBCTX_EX_OK)
		return rc;
	dbhist_problems(c, &pr, dbreport_list_add, &probs);
	pending = dbhist_pending(c);
	dbhist_current_text(c, cur, sizeof(cur));
	migrate_set_heads_text(&c->set, heads, sizeof(heads));
	if (c->json) {
		bool first = true;

		printf("{");
		dbreport_json_database(&c->out, c, &first);
		dbreport_json_position(&c->out, c, &first, pending);
		json_key(&c->out, &first, "revisions");
		revs_json(&c->out, c, c->set.order, c->set.n, false);
		json_key(&c->out, &first, "problems");
		dbreport_json_list(&c->out, &probs);
		printf("}\n");
	} else {
		printf("database: %s (PostgreSQL %s), schema %s\n", c->describe,
		       PQparameterStatus(c->conn, "server_version"), c->nsp);
		printf("history:  %s\n",
		       c->has_hist ? c->qhist
				   : "none (run 'convctl db setup')");
		printf("current:  %s\n", cur);
		printf("heads:    %s\n", c->set.nheads ? heads : "(none)");
		if (!c->has_hist)
			printf("state:    not set up\n");
		else if (pending == 0)
			printf("state:    at head\n");
		else
			printf("state:    %d revision%s pending (run 'convctl "
			       "db upgrade')\n",
			       pending, pending == 1 ? "" : "s");
		printf("\n");
		for (int i = 0; i < c->set.n; i++) {
			int x = c->set.order[i];
			const struct dbctx_hist *h = dbhist_of(c, x);
			char *m = dbctx_oneline(c->set.revs[x].message);

			printf("  %-8s %s  %-20s  %s\n", dbhist_state(c, x),
			       c->set.revs[x].id, h ? h->applied_at : "", m);
			free(m);
		}
		for (int i = 0; i < c->nhist; i++)
			if (c->hist[i].idx < 0)
				printf("  %-8s %s  %-20s  (no file)\n",
				       "missing", c->hist[i].revision,
				       c->hist[i].applied_at);
		for (int i = 0; i < probs.n; i++)
			printf("problem: %s\n", probs.v[i]);
	}
	rc = probs.n ? DBCTX_EX_FAIL : DBCTX_EX_OK;
	dbreport_list_free(&probs);
	return rc;
}

int dbreport_current(struct dbctx *c)
{
	char cur[512];
	int rc = dbhist_prepare(c, true, false);

	if (rc != DBCTX_EX_OK)
		return rc;
	if (c->json) {
		printf("{\"current\":");
		current_json(&c->out, c);
		printf(",\"at_head\":%s}\n",
		       dbhist_pending(c) == 0 && c->has_hist ? "true" : "false");
		return DBCTX_EX_OK;
	}
	dbhist_current_text(c, cur, sizeof(cur));
	if (strcmp(cur, "base") == 0) {
		printf("base (nothing applied)\n");
		return DBCTX_EX_OK;
	}
	for (int i = 0; i < c->set.n; i++) {
		int x = c->set.order[i];
		const struct migrate_rev *r = &c->set.revs[x];
		char *m;

		if (!dbhist_is_current(c, x))
			continue;
		m = dbctx_oneline(r->message);
		printf("%s%s %s\n", r->id, r->nchildren == 0 ? " (head)" : "",
		       m);
		free(m);
	}
	return DBCTX_EX_OK;
}

int dbreport_heads(struct dbctx *c)
{
	int rc = dbhist_prepare(c, false, false);

	if (rc != DBCTX_EX_OK)
		return rc;
	if (c->json)
		return revs_json_answer(c, "heads", c->set.heads,
					c->set.nheads, false);
	for (int i = 0; i < c->set.nheads; i++) {
		char *m = dbctx_oneline(c->set.revs[c->set.heads[i]].message);

		printf("%s %s\n", c->set.revs[c->set.heads[i]].id, m);
		free(m);
	}
	if (c->set.nheads > 1)
		dbctx_warn("%d heads: merge them with 'convctl db merge %s %s "
			   "-m MESSAGE'",
			   c->set.nheads, c->set.revs[c->set.heads[0]].id,
			   c->set.revs[c->set.heads[1]].id);
	return DBCTX_EX_OK;
}

/* Branch points: the revisions with more than one child, and the
 * children, as Alembic's `branches` shows them.  Reads only the files. */
int dbreport_branches(struct dbctx *c)
{
	int rc = dbhist_prepare(c, false, false), nb = 0;

	if (rc != DBCTX_EX_OK)
		return rc;
	if (c->json)
		printf("{\"branches\":[");
	for (int i = 0; i < c->set.n; i++) {
		const struct migrate_rev *r = &c->set.revs[c->set.order[i]];

		if (r->nchildren < 2)
			continue;
		if (c->json) {
			bool first = true;

			printf("%s{", nb ? "," : "");
			json_kv_str(&c->out, &first, "revision", r->id);
			json_kv_str(&c->out, &first, "message", r->message);
			json_key(&c->out, &first, "children");
			printf("[");
			for (int k = 0; k < r->nchildren; k++) {
				const struct migrate_rev *ch =
					&c->set.revs[r->child_idx[k]];
				bool f2 = true;

				printf("%s{", k ? "," : "");
				json_kv_str(&c->out, &f2, "revision", ch->id);
				json_kv_bool(&c->out, &f2, "head",
					     ch->nchildren == 0);
				printf("}");
			}
			printf("]}");
		} else {
			char *m = dbctx_oneline(r->message);

			printf("%s (branch point) %s\n", r->id, m);
			free(m);
			for (int k = 0; k < r->nchildren; k++) {
				const struct migrate_rev *ch =
					&c->set.revs[r->child_idx[k]];

				m = dbctx_oneline(ch->message);
				printf("    -> %s%s %s\n", ch->id,
				       ch->nchildren == 0 ? " (head)" : "", m);
				free(m);
			}
		}
		nb++;
	}
	if (c->json)
		printf("]}\n");
	else if (nb == 0)
		printf("no branch points\n");
	return DBCTX_EX_OK;
}

int dbreport_history(struct dbctx *c)
{
	int rc = dbhist_prepare(c, true, false);

	if (rc != DBCTX_EX_OK)
		return rc;
	if (c->json)
		return revs_json_answer(c, "revisions", c->set.order, c->set.n,
					true);
	for (int i = c->set.n - 1; i >= 0; i--) {
		int x = c->set.order[i];
		const struct migrate_rev *r = &c->set.revs[x];
		const struct dbctx_hist *h = dbhist_of(c, x);
		char *m = dbctx_oneline(r->message);

		printf("%s%s%s %s\n", r->id, r->nchildren == 0 ? " (head)" : "",
		       r->nparents > 1 ? " (merge)" : "", m);
		free(m);
		printf("    parents: ");
		if (r->nparents == 0)
			printf("(base)");
		for (int k = 0; k < r->nparents; k++)
			printf("%s%s", k ? " " : "", r->parents[k]);
		printf("\n");
		if (h)
			printf("    %s %s by %s in %" PRId64 " ms%s%s\n",
			       h->dirty ? "dirty since" : h->kind,
			       h->applied_at, h->applied_by, h->duration_ms,
			       h->note ? ": " : "", h->note ? h->note : "");
		else
			printf("    not applied\n");
	}
	for (int i = 0; i < c->nhist; i++)
		if (c->hist[i].idx < 0)
			printf("%s (no file)\n    %s %s by %s\n",
			       c->hist[i].revision, c->hist[i].kind,
			       c->hist[i].applied_at, c->hist[i].applied_by);
	return DBCTX_EX_OK;
}

int dbreport_show(struct dbctx *c)
{
	char err[DBCTX_ERRLEN];
	int rc = dbhist_prepare(c, false, false), idx;
	const struct migrate_rev *r;
	struct migrate_sql_finding *f = NULL;
	size_t nf = 0;

	if (rc != DBCTX_EX_OK)
		return rc;
	idx = migrate_set_find(&c->set, c->o.args[0], err, sizeof(err));
	if (idx < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	r = &c->set.revs[idx];
	/* what the database's history says of it, when there is one */
	dbctx_quiet(true);
	if (dbconn_open(c) != DBCTX_EX_OK || dbhist_load(c) != DBCTX_EX_OK) {
		PQfinish(c->conn);
		c->conn = NULL;
	}
	dbctx_quiet(false);
	if (c->json) {
		put_rev(&c->out, c, idx, true);
		printf("\n");
		return DBCTX_EX_OK;
	}
	printf("revision:      %s%s\n", r->id,
	       r->nchildren == 0 ? " (head)" : "");
	printf("parents:       ");
	if (r->nparents == 0)
		printf("(base)");
	for (int k = 0; k < r->nparents; k++)
		printf("%s%s", k ? " " : "", r->parents[k]);
	printf("\nchildren:      ");
	if (r->nchildren == 0)
		printf("(none)");
	for (int k = 0; k < r->nchildren; k++)
		printf("%s%s", k ? " " : "", c->set.revs[r->child_idx[k]].id);
	printf("\nmessage:       %s\n", r->message);
	printf("file:          %s\n", r->path ? r->path : "");
	if (r->created)
		printf("created:       %s\n", r->created);
	printf("transactional: %s\n", r->transactional ? "yes" : "no");
	printf("checksum:      %s\n", r->checksum);
	if (c->conn) {
		const struct dbctx_hist *h = dbhist_of(c, idx);

		if (h)
			printf("state:         %s %s by %s in %" PRId64 " ms\n",
			       dbhist_state(c, idx), h->applied_at,
			       h->applied_by, h->duration_ms);
		else
			printf("state:         pending (%s)\n", c->describe);
		if (h && h->note)
			printf("note:          %s\n", h->note);
	}
	if (migrate_sql_scan(r->up, &f, &nf, err, sizeof(err)) == 0) {
		for (size_t i = 0; i < nf; i++)
			printf("destructive:   %s (up, line %d): %s\n",
			       migrate_sql_hazard_name(f[i].kind),
			       r->up_line + f[i].line - 1, f[i].what);
		free(f);
	}
	printf("\n-- +up\n");
	dbsql_section(stdout, r->up);
	printf("\n-- +down\n");
	dbsql_section(stdout, r->down);
	return DBCTX_EX_OK;
}
