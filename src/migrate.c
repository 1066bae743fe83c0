/*
 * migrate.c - the revision graph (pure): the set of revisions, its order
 * and heads, targets, and the plans of upgrade, downgrade and stamp.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "migrate.h"

/* ----------------------------------------------------------------- set */

void migrate_set_init(struct migrate_set *s)
{
	memset(s, 0, sizeof(*s));
}

void migrate_set_free(struct migrate_set *s)
{
	for (int i = 0; i < s->n; i++)
		migrate_rev_free(&s->revs[i]);
	free(s->revs);
	free(s->order);
	free(s->heads);
	memset(s, 0, sizeof(*s));
}

int migrate_set_add(struct migrate_set *s, struct migrate_rev *r, char *err,
		    size_t errlen)
{
	if (s->n >= MIGRATE_REV_MAX_REVISIONS) {
		errbuf_set(err, errlen, "more than %d revisions",
			   MIGRATE_REV_MAX_REVISIONS);
		return -1;
	}
	if (s->n == s->cap) {
		int cap = s->cap ? s->cap * 2 : 16;
		struct migrate_rev *nr =
			realloc(s->revs, sizeof(*nr) * (size_t)cap);

		if (!nr) {
			errbuf_set(err, errlen, "out of memory");
			return -1;
		}
		s->revs = nr;
		s->cap = cap;
	}
	s->revs[s->n++] = *r;
	memset(r, 0, sizeof(*r));
	s->built = false;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int migrate_set_load_dir(struct migrate_set *s, const char *dir,
			 const char *skip,
			 void (*report)(const char *msg, void *arg), void *arg,
			 char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char **names = NULL;
	size_t nnames = 0, cap = 0;
	int bad = 0, rc = -1;

	if (!d) {
		errbuf_set(err, errlen,
			   "cannot read the migrations directory %s: %s", dir,
			   strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len < 5 || de->d_name[0] == '.' ||
		    strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		if (skip && strcmp(de->d_name, skip) == 0)
			continue;
		if (nnames >= MIGRATE_REV_MAX_REVISIONS) {
			errbuf_set(err, errlen, "%s: more than %d files", dir,
				   MIGRATE_REV_MAX_REVISIONS);
			goto out;
		}
		if (nnames == cap) {
			size_t ncap = cap ? cap * 2 : 32;
			char **nn = realloc(names, sizeof(char *) * ncap);

			if (!nn)
				goto nomem;
			names = nn;
			cap = ncap;
		}
		names[nnames] = strdup(de->d_name);
		if (!names[nnames])
			goto nomem;
		nnames++;
	}
	if (nnames > 0)
		qsort(names, nnames, sizeof(char *), cmp_str);
	for (size_t i = 0; i < nnames; i++) {
		char *path, *text = NULL, msg[1024];
		size_t len = 0;
		struct migrate_rev r;

		if (asprintf(&path, "%s/%s", dir, names[i]) < 0)
			goto nomem;
		if (migrate_rev_read_file(path, &text, &len, msg,
					  sizeof(msg)) < 0 ||
		    migrate_rev_parse(text, len, path, &r, msg, sizeof(msg)) <
			    0) {
			bad++;
			if (report)
				report(msg, arg);
			else if (bad == 1)
				errbuf_set(err, errlen, "%s", msg);
			free(text);
			free(path);
			continue;
		}
		free(text);
		free(path);
		if (migrate_set_add(s, &r, msg, sizeof(msg)) < 0) {
			migrate_rev_free(&r);
			errbuf_set(err, errlen, "%s", msg);
			goto out;
		}
	}
	if (bad) {
		if (report)
			errbuf_set(err, errlen,
				   "%d broken revision file%s in %s", bad,
				   bad == 1 ? "" : "s", dir);
		goto out;
	}
	rc = 0;
	goto out;
nomem:
	errbuf_set(err, errlen, "out of memory");
out:
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

int migrate_set_find_exact(const struct migrate_set *s, const char *id)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->revs[i].id, id) == 0)
			return i;
	return -1;
}

/* A min-heap of revision indexes ordered by id. */
struct idheap {
	int *v;
	int n;
	const struct migrate_set *s;
};

static bool heap_less(const struct idheap *h, int a, int b)
{
	return strcmp(h->s->revs[h->v[a]].id, h->s->revs[h->v[b]].id) < 0;
}

static void heap_push(struct idheap *h, int x)
{
	int i = h->n++;

	h->v[i] = x;
	while (i > 0) {
		int p = (i - 1) / 2;

		if (!heap_less(h, i, p))
			break;
		int t = h->v[p];
		h->v[p] = h->v[i];
		h->v[i] = t;
		i = p;
	}
}

static int heap_pop(struct idheap *h)
{
	int top = h->v[0], i = 0;

	h->v[0] = h->v[--h->n];
	for (;;) {
		int l = 2 * i + 1, r = l + 1, m = i;

		if (l < h->n && heap_less(h, l, m))
			m = l;
		if (r < h->n && heap_less(h, r, m))
			m = r;
		if (m == i)
			break;
		int t = h->v[m];
		h->v[m] = h->v[i];
		h->v[i] = t;
		i = m;
	}
	return top;
}

/* Describes one cycle among the nodes not ordered (indeg > 0). */
static void describe_cycle(const struct migrate_set *s, const int *indeg,
			   char *err, size_t errlen)
{
	int start = -1, cur;
	int *seen_at = NULL;
	size_t o;

	for (int i = 0; i < s->n; i++)
		if (indeg[i] > 0) {
			start = i;
			break;
		}
	if (start < 0) {
		errbuf_set(err, errlen, "the revision graph has a cycle");
		return;
	}
	seen_at = calloc((size_t)s->n, sizeof(int));
	if (!seen_at) {
		errbuf_set(err, errlen, "the revision graph has a cycle");
		return;
	}
	/* Walk parents that are also unordered until a node repeats. */
	cur = start;
	for (int step = 1;; step++) {
		const struct migrate_rev *r = &s->revs[cur];
		int next = -1;

		if (seen_at[cur])
			break;
		seen_at[cur] = step;
		for (int k = 0; k < r->nparents; k++)
			if (indeg[r->parent_idx[k]] > 0) {
				next = r->parent_idx[k];
				break;
			}
		if (next < 0)
			break;
		cur = next;
	}
	/* cur is on the cycle: print it. */
	o = (size_t)snprintf(err, errlen, "the revision graph has a cycle: %s",
			     s->revs[cur].id);
	for (int x = cur, guard = 0; guard < s->n && o < errlen; guard++) {
		const struct migrate_rev *r = &s->revs[x];
		int next = -1;

		for (int k = 0; k < r->nparents; k++)
			if (indeg[r->parent_idx[k]] > 0) {
				next = r->parent_idx[k];
				break;
			}
		if (next < 0)
			break;
		o += (size_t)snprintf(err + o, errlen - o, " -> %s",
				      s->revs[next].id);
		if (next == cur)
			break;
		x = next;
	}
	free(seen_at);
}

int migrate_set_build(struct migrate_set *s, char *err, size_t errlen)
{
	int *indeg = NULL, norder = 0;
	struct idheap h = {NULL, 0, s};

	free(s->order);
	free(s->heads);
	s->order = NULL;
	s->heads = NULL;
	s->nheads = 0;
	s->built = false;
	for (int i = 0; i < s->n; i++) {
		struct migrate_rev *r = &s->revs[i];

		free(r->parent_idx);
		free(r->child_idx);
		r->parent_idx = NULL;
		r->child_idx = NULL;
		r->nchildren = 0;
	}
	for (int i = 0; i < s->n; i++) {
		for (int j = i + 1; j < s->n; j++) {
			if (strcmp(s->revs[i].id, s->revs[j].id) == 0) {
				errbuf_set(err, errlen,
					   "revision %s is defined twice (%s and "
					   "%s)",
					   s->revs[i].id,
					   s->revs[i].path ? s->revs[i].path : "?",
					   s->revs[j].path ? s->revs[j].path : "?");
				return -1;
			}
		}
	}
	/* Parents, and a child count per revision. */
	for (int i = 0; i < s->n; i++) {
		struct migrate_rev *r = &s->revs[i];

		if (r->nparents == 0)
			continue;
		r->parent_idx = malloc(sizeof(int) * (size_t)r->nparents);
		if (!r->parent_idx)
			goto nomem;
		for (int k = 0; k < r->nparents; k++) {
			int p = migrate_set_find_exact(s, r->parents[k]);

			if (p < 0) {
				errbuf_set(err, errlen, "revision %s (%s): "
					   "parent %s not found", r->id,
					   r->path ? r->path : "?",
					   r->parents[k]);
				return -1;
			}
			r->parent_idx[k] = p;
			s->revs[p].nchildren++;
		}
	}
	for (int i = 0; i < s->n; i++) {
		struct migrate_rev *r = &s->revs[i];

		if (r->nchildren > 0) {
			r->child_idx = malloc(sizeof(int) * (size_t)r->nchildren);
			if (!r->child_idx)
				goto nomem;
		}
		r->nchildren = 0;
	}
	for (int i = 0; i < s->n; i++) {
		struct migrate_rev *r = &s->revs[i];

		for (int k = 0; k < r->nparents; k++) {
			struct migrate_rev *p = &s->revs[r->parent_idx[k]];

			p->child_idx[p->nchildren++] = i;
		}
	}
	/* Kahn's algorithm, smallest id first among the ready ones. */
	indeg = calloc((size_t)s->n + 1, sizeof(int));
	h.v = malloc(sizeof(int) * ((size_t)s->n + 1));
	s->order = malloc(sizeof(int) * ((size_t)s->n + 1));
	s->heads = malloc(sizeof(int) * ((size_t)s->n + 1));
	if (!indeg || !h.v || !s->order || !s->heads)
		goto nomem;
	for (int i = 0; i < s->n; i++) {
		indeg[i] = s->revs[i].nparents;
		if (indeg[i] == 0)
			heap_push(&h, i);
	}
	while (h.n > 0) {
		int x = heap_pop(&h);
		struct migrate_rev *r = &s->revs[x];

		r->pos = norder;
		s->order[norder++] = x;
		for (int k = 0; k < r->nchildren; k++)
			if (--indeg[r->child_idx[k]] == 0)
				heap_push(&h, r->child_idx[k]);
	}
	if (norder < s->n) {
		describe_cycle(s, indeg, err, errlen);
		free(indeg);
		free(h.v);
		return -1;
	}
	for (int i = 0; i < s->n; i++) {
		int x = s->order[i];

		if (s->revs[x].nchildren == 0)
			s->heads[s->nheads++] = x;
	}
	free(indeg);
	free(h.v);
	s->built = true;
	return 0;
nomem:
	free(indeg);
	free(h.v);
	errbuf_set(err, errlen, "out of memory");
	return -1;
}

int migrate_set_find(const struct migrate_set *s, const char *text,
		     char *err, size_t errlen)
{
	size_t len = strlen(text);
	int found = -1, nfound = 0;
	char cands[256];
	size_t o = 0;

	if (len == 0 || len > MIGRATE_REV_ID_MAX) {
		errbuf_set(err, errlen, "invalid revision '%s'", text);
		return -1;
	}
	found = migrate_set_find_exact(s, text);
	if (found >= 0)
		return found;
	cands[0] = '\0';
	for (int i = 0; i < s->n; i++) {
		if (strncmp(s->revs[i].id, text, len) != 0)
			continue;
		if (nfound < 5 && o < sizeof(cands))
			o += (size_t)snprintf(cands + o, sizeof(cands) - o,
					      "%s%s", nfound ? ", " : "",
					      s->revs[i].id);
		found = i;
		nfound++;
	}
	if (nfound == 1)
		return found;
	if (nfound == 0)
		errbuf_set(err, errlen, "no revision '%s'", text);
	else
		errbuf_set(err, errlen, "'%s' is ambiguous: %s%s", text, cands,
			   nfound > 5 ? ", ..." : "");
	return -1;
}

void migrate_set_ancestors(const struct migrate_set *s, int idx, bool *mark)
{
	int *stack, n = 0;

	stack = malloc(sizeof(int) * ((size_t)s->n + 1));
	if (!stack) {
		/* Fall back to recursion-free marking by order. */
		mark[idx] = true;
		for (int i = s->revs[idx].pos; i >= 0; i--) {
			int x = s->order[i];

			if (!mark[x])
				continue;
			for (int k = 0; k < s->revs[x].nparents; k++)
				mark[s->revs[x].parent_idx[k]] = true;
		}
		return;
	}
	if (!mark[idx]) {
		mark[idx] = true;
		stack[n++] = idx;
	} else {
		stack[n++] = idx;
	}
	while (n > 0) {
		const struct migrate_rev *r = &s->revs[stack[--n]];

		for (int k = 0; k < r->nparents; k++) {
			int p = r->parent_idx[k];

			if (!mark[p]) {
				mark[p] = true;
				stack[n++] = p;
			}
		}
	}
	free(stack);
}

/* Marks all proper descendants of idx in mark[]. */
static void descendants(const struct migrate_set *s, int idx, bool *mark)
{
	/* In topological order every descendant comes after idx. */
	bool *in = calloc((size_t)s->n + 1, sizeof(bool));

	if (!in) {
		for (int i = s->revs[idx].pos + 1; i < s->n; i++)
			mark[s->order[i]] = true;
		return;
	}
	in[idx] = true;
	for (int i = s->revs[idx].pos + 1; i < s->n; i++) {
		int x = s->order[i];
		const struct migrate_rev *r = &s->revs[x];

		for (int k = 0; k < r->nparents; k++) {
			if (in[r->parent_idx[k]]) {
				in[x] = true;
				mark[x] = true;
				break;
			}
		}
	}
	free(in);
}

bool migrate_set_is_ancestor(const struct migrate_set *s, int a, int b)
{
	bool *mark;
	bool res;

	if (a == b)
		return false;
	mark = calloc((size_t)s->n + 1, sizeof(bool));
	if (!mark)
		return false;
	migrate_set_ancestors(s, b, mark);
	res = mark[a];
	free(mark);
	return res;
}

void migrate_set_heads_text(const struct migrate_set *s, char *buf,
			    size_t len)
{
	size_t o = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (int i = 0; i < s->nheads && o < len; i++) {
		const char *sep = i == 0		  ? ""
				  : i == s->nheads - 1 ? " and "
						       : ", ";

		o += (size_t)snprintf(buf + o, len - o, "%s%s", sep,
				      s->revs[s->heads[i]].id);
	}
}

/* --------------------------------------------------------------- plans */

int migrate_target_parse(const struct migrate_set *s, const char *text,
			 struct migrate_target *t, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	if (strcmp(text, "head") == 0) {
		t->kind = MIGRATE_TARGET_HEAD;
		return 0;
	}
	if (strcmp(text, "heads") == 0) {
		t->kind = MIGRATE_TARGET_HEADS;
		return 0;
	}
	if (strcmp(text, "base") == 0) {
		t->kind = MIGRATE_TARGET_BASE;
		return 0;
	}
	if (text[0] == '+' || text[0] == '-') {
		long v = 0;
		const char *p = text + 1;

		if (!*p) {
			errbuf_set(err, errlen, "invalid target '%s'", text);
			return -1;
		}
		for (; *p; p++) {
			if (*p < '0' || *p > '9' ||
			    v > MIGRATE_REV_MAX_REVISIONS) {
				errbuf_set(err, errlen, "invalid target '%s' "
					   "(+N or -N, N from 1 to %d)", text,
					   MIGRATE_REV_MAX_REVISIONS);
				return -1;
			}
			v = v * 10 + (*p - '0');
		}
		if (v < 1 || v > MIGRATE_REV_MAX_REVISIONS) {
			errbuf_set(err, errlen, "invalid target '%s' (+N or "
				   "-N, N from 1 to %d)", text,
				   MIGRATE_REV_MAX_REVISIONS);
			return -1;
		}
		t->kind = MIGRATE_TARGET_RELATIVE;
		t->n = text[0] == '+' ? (int)v : -(int)v;
		return 0;
	}
	t->kind = MIGRATE_TARGET_REV;
	t->rev = migrate_set_find(s, text, err, errlen);
	return t->rev < 0 ? -1 : 0;
}

static int plan_pending_closure(const struct migrate_set *s,
				const bool *applied, const bool *want,
				int *out, int *nout)
{
	*nout = 0;
	for (int i = 0; i < s->n; i++) {
		int x = s->order[i];

		if (want[x] && !applied[x])
			out[(*nout)++] = x;
	}
	return 0;
}

/* Whether x is applied (in done[]) and none of its children is. */
static bool walk_current(const struct migrate_set *s, const bool *done,
			 int x)
{
	if (!done[x])
		return false;
	for (int k = 0; k < s->revs[x].nchildren; k++)
		if (done[s->revs[x].child_idx[k]])
			return false;
	return true;
}

/* Whether x may come next in a walk: pending, its parents applied, and
 * a root (when nothing is applied) or a child of a current revision. */
static bool walk_next(const struct migrate_set *s, const bool *done,
		      bool any, int x)
{
	const struct migrate_rev *r = &s->revs[x];
	bool from_current = false;

	if (done[x])
		return false;
	for (int k = 0; k < r->nparents; k++) {
		if (!done[r->parent_idx[k]])
			return false;
		if (walk_current(s, done, r->parent_idx[k]))
			from_current = true;
	}
	return any ? from_current : r->nparents == 0;
}

/* "a, b and c" of the revisions marked in set[] (size s->n). */
static void ids_text(const struct migrate_set *s, const bool *set, char *buf,
		     size_t len)
{
	int total = 0, k = 0;
	size_t o = 0;

	buf[0] = '\0';
	for (int i = 0; i < s->n; i++)
		total += set[s->order[i]];
	for (int i = 0; i < s->n && o < len; i++) {
		int x = s->order[i];

		if (!set[x])
			continue;
		o += (size_t)snprintf(buf + o, len - o, "%s%s",
				      k == 0 ? "" : k == total - 1 ? " and "
								  : ", ",
				      s->revs[x].id);
		k++;
	}
	if (total == 0)
		snprintf(buf, len, "base");
}

/*
 * +N, as Alembic walks it: N steps forward from the current revisions,
 * each to the one pending revision that follows them (a child of a current
 * revision whose parents are all applied; a root when nothing is).  Where
 * two revisions could come next the walk is ambiguous and refused, naming
 * them and the heads.  done[] (size s->n) is scratch space.
 */
static int plan_walk(const struct migrate_set *s, const bool *applied,
		     int steps, bool *done, int *out, int *nout, char *err,
		     size_t errlen)
{
	char cur[512], next[512], heads[512];
	size_t n = s->n > 0 ? (size_t)s->n : 0;
	bool *mark = calloc(n + 1, sizeof(bool));
	bool any = false;
	int rc = 0;

	if (!mark) {
		errbuf_set(err, errlen, "out of memory");
		return -1;
	}
	memcpy(done, applied, sizeof(bool) * n);
	for (int i = 0; i < s->n; i++)
		any = any || done[i];
	for (int step = 0; step < steps && rc == 0; step++) {
		int found = 0, pick = -1;

		memset(mark, 0, sizeof(bool) * n);
		for (int i = 0; i < s->n; i++) {
			int x = s->order[i];

			if (walk_next(s, done, any, x)) {
				mark[x] = true;
				found++;
				if (pick < 0)
					pick = x;
			}
		}
		if (found == 1) {
			done[pick] = true;
			any = true;
			out[(*nout)++] = pick;
			continue;
		}
		for (int i = 0; i < s->n; i++)
			mark[i] = walk_current(s, done, i);
		ids_text(s, mark, cur, sizeof(cur));
		migrate_set_heads_text(s, heads, sizeof(heads));
		if (found == 0) {
			errbuf_set(err, errlen, "cannot upgrade +%d: nothing "
				   "follows %s after %d step%s (the heads are "
				   "%s); upgrade to a revision or to 'heads' "
				   "instead", steps, cur, step,
				   step == 1 ? "" : "s", heads);
		} else {
			for (int i = 0; i < s->n; i++)
				mark[i] = walk_next(s, done, any, i);
			ids_text(s, mark, next, sizeof(next));
			errbuf_set(err, errlen, "+%d is ambiguous: after %s, "
				   "%s could each come next (%d heads: %s); "
				   "upgrade to a revision or to 'heads' "
				   "instead", steps, cur, next, s->nheads,
				   heads);
		}
		*nout = 0;
		rc = -1;
	}
	free(mark);
	return rc;
}

/* A mark per revision for a plan of s (all false; malloc'd), or NULL with
 * err. */
static bool *plan_marks(const struct migrate_set *s, char *err,
			size_t errlen)
{
	bool *m;

	if (!s->built) {
		errbuf_set(err, errlen, "revision graph not built");
		return NULL;
	}
	m = calloc((size_t)s->n + 1, sizeof(bool));
	if (!m)
		errbuf_set(err, errlen, "out of memory");
	return m;
}

int migrate_plan_upgrade(const struct migrate_set *s, const bool *applied,
			 const struct migrate_target *t, int *out, int *nout,
			 char *err, size_t errlen)
{
	bool *want;
	int rc = 0;

	*nout = 0;
	want = plan_marks(s, err, errlen);
	if (!want)
		return -1;
	switch (t->kind) {
	case MIGRATE_TARGET_HEAD:
		if (s->nheads > 1) {
			char heads[512];

			migrate_set_heads_text(s, heads, sizeof(heads));
			errbuf_set(err, errlen,
				   "there are %d heads (%s): upgrade to one of "
				   "them, to 'heads', or merge them with "
				   "'convctl db merge'",
				   s->nheads, heads);
			rc = -1;
			break;
		}
		if (s->nheads == 1)
			migrate_set_ancestors(s, s->heads[0], want);
		rc = plan_pending_closure(s, applied, want, out, nout);
		break;
	case MIGRATE_TARGET_HEADS:
		for (int i = 0; i < s->nheads; i++)
			migrate_set_ancestors(s, s->heads[i], want);
		rc = plan_pending_closure(s, applied, want, out, nout);
		break;
	case MIGRATE_TARGET_BASE:
		break;
	case MIGRATE_TARGET_REV:
		migrate_set_ancestors(s, t->rev, want);
		rc = plan_pending_closure(s, applied, want, out, nout);
		break;
	case MIGRATE_TARGET_RELATIVE: {
		int pending = 0;

		if (t->n < 0) {
			errbuf_set(err, errlen, "upgrade takes +N, not -N "
				   "(see downgrade and rollback)");
			rc = -1;
			break;
		}
		for (int i = 0; i < s->n; i++)
			if (!applied[s->order[i]])
				pending++;
		if (pending < t->n) {
			errbuf_set(err, errlen,
				   "cannot upgrade +%d: only %d revision%s "
				   "pending",
				   t->n, pending, pending == 1 ? "" : "s");
			rc = -1;
			break;
		}
		rc = plan_walk(s, applied, t->n, want, out, nout, err, errlen);
		break;
	}
	}
	free(want);
	return rc;
}

int migrate_plan_downgrade(const struct migrate_set *s, const bool *applied,
			   const struct migrate_target *t, int *out,
			   int *nout, char *err, size_t errlen)
{
	bool *drop;
	int rc = 0;

	*nout = 0;
	drop = plan_marks(s, err, errlen);
	if (!drop)
		return -1;
	switch (t->kind) {
	case MIGRATE_TARGET_BASE:
		for (int i = 0; i < s->n; i++)
			drop[i] = true;
		break;
	case MIGRATE_TARGET_REV:
		if (!applied[t->rev]) {
			errbuf_set(err, errlen,
				   "revision %s is not applied: a downgrade "
				   "target must be applied",
				   s->revs[t->rev].id);
			rc = -1;
			break;
		}
		descendants(s, t->rev, drop);
		break;
	case MIGRATE_TARGET_RELATIVE: {
		int napplied = 0, left;

		if (t->n > 0) {
			errbuf_set(err, errlen,
				   "downgrade takes -N, not +N (see upgrade)");
			rc = -1;
			break;
		}
		for (int i = 0; i < s->n; i++)
			if (applied[i])
				napplied++;
		if (napplied < -t->n) {
			errbuf_set(err, errlen, "cannot go back %d: only %d "
				   "revision%s applied", -t->n, napplied,
				   napplied == 1 ? "" : "s");
			rc = -1;
			break;
		}
		left = -t->n;
		for (int i = s->n - 1; i >= 0 && left > 0; i--) {
			if (applied[s->order[i]]) {
				drop[s->order[i]] = true;
				left--;
			}
		}
		break;
	}
	case MIGRATE_TARGET_HEAD:
	case MIGRATE_TARGET_HEADS:
		errbuf_set(err, errlen, "head is not a downgrade target (use "
			   "base, a revision or -N)");
		rc = -1;
		break;
	}
	if (rc == 0)
		for (int i = s->n - 1; i >= 0; i--)
			if (drop[s->order[i]] && applied[s->order[i]])
				out[(*nout)++] = s->order[i];
	free(drop);
	return rc;
}

int migrate_plan_stamp(const struct migrate_set *s, const bool *applied,
		       const struct migrate_target *t, bool *want, char *err,
		       size_t errlen)
{
	int *list = NULL, n = 0, rc = 0;

	if (!s->built) {
		errbuf_set(err, errlen, "revision graph not built");
		return -1;
	}
	memset(want, 0, sizeof(bool) * (size_t)s->n);
	switch (t->kind) {
	case MIGRATE_TARGET_HEAD:
		if (s->nheads > 1) {
			char heads[512];

			migrate_set_heads_text(s, heads, sizeof(heads));
			errbuf_set(err, errlen, "there are %d heads (%s): "
				   "stamp one of them or 'heads'", s->nheads,
				   heads);
			return -1;
		}
		if (s->nheads == 1)
			migrate_set_ancestors(s, s->heads[0], want);
		return 0;
	case MIGRATE_TARGET_HEADS:
		for (int i = 0; i < s->n; i++)
			want[i] = true;
		return 0;
	case MIGRATE_TARGET_BASE:
		return 0;
	case MIGRATE_TARGET_REV:
		migrate_set_ancestors(s, t->rev, want);
		return 0;
	case MIGRATE_TARGET_RELATIVE:
		list = malloc(sizeof(int) * ((size_t)s->n + 1));
		if (!list) {
			errbuf_set(err, errlen, "out of memory");
			return -1;
		}
		for (int i = 0; i < s->n; i++)
			want[i] = applied[i];
		if (t->n > 0)
			rc = migrate_plan_upgrade(s, applied, t, list, &n, err,
						  errlen);
		else
			rc = migrate_plan_downgrade(s, applied, t, list, &n,
						    err, errlen);
		for (int i = 0; rc == 0 && i < n; i++)
			want[list[i]] = t->n > 0;
		free(list);
		return rc;
	}
	return 0;
}
