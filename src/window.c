/*
 * window.c - get_context's window over rows fed newest first (window.h
 * says which messages make and answer calls, and where a window may
 * begin).
 */
#include <stdlib.h>
#include <string.h>

#include "mpread.h"
#include "tokens.h"
#include "window.h"

/* ---- the set of call ids ------------------------------------------------- */

/* A deleted slot: not empty (probes go on past it), never equal to an id. */
static const char idset_deleted_mark;
#define IDSET_DELETED (&idset_deleted_mark)

static uint64_t idset_hash(struct strview s)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */

	for (size_t i = 0; i < s.len; i++) {
		h ^= (uint8_t)s.p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static bool idset_same(struct strview a, struct strview b)
{
	return a.p != IDSET_DELETED && a.len == b.len &&
	       memcmp(a.p, b.p, a.len) == 0;
}

/* The slot holding s, or the empty slot where it would go. */
static uint32_t idset_find(const struct window_idset *set, struct strview s)
{
	uint32_t mask = set->cap - 1, i = (uint32_t)idset_hash(s) & mask;
	uint32_t free_slot = UINT32_MAX;

	while (set->slots[i].p != NULL) {
		if (set->slots[i].p == IDSET_DELETED) {
			if (free_slot == UINT32_MAX)
				free_slot = i;
		} else if (idset_same(set->slots[i], s)) {
			return i;
		}
		i = (i + 1) & mask;
	}
	return free_slot != UINT32_MAX ? free_slot : i;
}

static int idset_grow(struct window_idset *set)
{
	struct window_idset n = {0};

	n.cap = set->cap ? set->cap * 2 : 16;
	if (set->live * 4 < set->cap)	/* mostly deleted: same size */
		n.cap = set->cap;
	n.slots = calloc(n.cap, sizeof(*n.slots));
	if (!n.slots)
		return -1;
	for (uint32_t i = 0; i < set->cap; i++) {
		struct strview s = set->slots[i];

		if (s.p != NULL && s.p != IDSET_DELETED) {
			n.slots[idset_find(&n, s)] = s;
			n.live++;
		}
	}
	n.used = n.live;
	free(set->slots);
	*set = n;
	return 0;
}

static int idset_add(struct window_idset *set, struct strview s)
{
	uint32_t i;

	if ((set->used + 1) * 4 > set->cap * 3 && idset_grow(set) < 0)
		return -1;
	i = idset_find(set, s);
	if (set->slots[i].p != NULL && set->slots[i].p != IDSET_DELETED)
		return 0;	/* already there */
	if (set->slots[i].p == NULL)
		set->used++;
	set->slots[i] = s;
	set->live++;
	return 0;
}

/* Removes s; whether it was there. */
static bool idset_remove(struct window_idset *set, struct strview s)
{
	uint32_t i;

	if (set->live == 0)
		return false;
	i = idset_find(set, s);
	if (set->slots[i].p == NULL || set->slots[i].p == IDSET_DELETED)
		return false;
	set->slots[i].p = IDSET_DELETED;
	set->slots[i].len = 0;
	set->live--;
	return true;
}

/* ---- which calls a row makes and answers --------------------------------- */

struct scan {
	struct mpread r;
	void (*fn)(void *arg, bool call, struct strview id);
	void *arg;
};

static bool sv_is(struct strview s, const char *lit)
{
	size_t n = strlen(lit);

	return s.p && s.len == n && memcmp(s.p, lit, n) == 0;
}

static bool sv_ends(struct strview s, const char *lit)
{
	size_t n = strlen(lit);

	return s.p && s.len > n && memcmp(s.p + s.len - n, lit, n) == 0;
}

static int scan_value(struct scan *sc, const struct mpread_val *v, int depth,
		      bool tool_call);

/* The elements of an array; tool_calls: the value of a "tool_calls" key,
 * whose maps are calls by their "id". */
static int scan_array(struct scan *sc, const struct mpread_val *v, int depth,
		      bool tool_calls)
{
	for (uint32_t i = 0; i < v->count; i++) {
		struct mpread_val e;

		if (mpread_next(&sc->r, &e) < 0 ||
		    scan_value(sc, &e, depth + 1, tool_calls) < 0)
			return -1;
	}
	return 0;
}

static int scan_map(struct scan *sc, const struct mpread_val *v, int depth,
		    bool tool_call)
{
	struct strview type = {0}, id = {0}, call_id = {0}, use_id = {0};

	for (uint32_t i = 0; i < v->count; i++) {
		struct mpread_val k, val;

		if (mpread_next(&sc->r, &k) < 0)
			return -1;
		if (k.type != MPR_STR) {
			if (scan_value(sc, &k, depth + 1, false) < 0 ||
			    mpread_next(&sc->r, &val) < 0 ||
			    scan_value(sc, &val, depth + 1, false) < 0)
				return -1;
			continue;
		}
		if (mpread_next(&sc->r, &val) < 0)
			return -1;
		if (val.type == MPR_STR) {
			if (sv_is(k.s, "type"))
				type = val.s;
			else if (sv_is(k.s, "id"))
				id = val.s;
			else if (sv_is(k.s, "call_id"))
				call_id = val.s;
			else if (sv_is(k.s, "tool_use_id"))
				use_id = val.s;
			continue;
		}
		if (val.type == MPR_ARRAY && sv_is(k.s, "tool_calls")) {
			if (scan_array(sc, &val, depth, true) < 0)
				return -1;
			continue;
		}
		if (scan_value(sc, &val, depth + 1, false) < 0)
			return -1;
	}
	if (use_id.p && (sv_is(type, "tool_result") ||
			 sv_ends(type, "_tool_result")))
		sc->fn(sc->arg, false, use_id);
	if (call_id.p && sv_is(type, "function_call_output"))
		sc->fn(sc->arg, false, call_id);
	if (id.p && (sv_is(type, "tool_use") || sv_ends(type, "_tool_use")))
		sc->fn(sc->arg, true, id);
	if (call_id.p && sv_is(type, "function_call"))
		sc->fn(sc->arg, true, call_id);
	if (id.p && tool_call)
		sc->fn(sc->arg, true, id);
	return 0;
}

static int scan_value(struct scan *sc, const struct mpread_val *v, int depth,
		      bool tool_call)
{
	if (depth >= MPREAD_MAX_DEPTH)
		return -1;
	if (v->type == MPR_MAP)
		return scan_map(sc, v, depth, tool_call);
	if (v->type == MPR_ARRAY)
		return scan_array(sc, v, depth, false);
	return 0;
}

void window_scan_ids(const struct window_row *row,
		     void (*fn)(void *arg, bool call, struct strview id),
		     void *arg)
{
	struct scan sc = {.fn = fn, .arg = arg};
	struct mpread_val v;

	if (row->tool_call_id.p && row->tool_call_id.len > 0)
		fn(arg, false, row->tool_call_id);
	if (!row->content_mp.p)
		return;
	mpread_init(&sc.r, row->content_mp.p, row->content_mp.len);
	if (mpread_next(&sc.r, &v) == 0)
		(void)scan_value(&sc, &v, 0, false);
}

/* ---- the window ---------------------------------------------------------- */

void window_init(struct window *w, int64_t max_tokens, uint32_t max_messages,
		 size_t max_bytes)
{
	memset(w, 0, sizeof(*w));
	w->max_tokens = max_tokens;
	w->max_messages = max_messages;
	w->max_bytes = max_bytes;
}

void window_cleanup(struct window *w)
{
	free(w->open.slots);
	w->open.slots = NULL;
	w->open.cap = w->open.live = w->open.used = 0;
}

int64_t window_row_tokens(const struct window_row *row)
{
	uint64_t t;

	if (row->tokens >= 0)
		return row->tokens;
	t = tokens_estimate(row->content.p, row->content.len,
			    row->content_mp.p ? row->content_mp.len : 0);
	return t > INT64_MAX ? INT64_MAX : (int64_t)t;
}

/* Whether a row of t tokens (and its bytes) still fits. */
static bool window_fits(const struct window *w, int64_t t,
			const struct window_row *row)
{
	return w->count < w->max_messages && t <= w->max_tokens - w->used &&
	       (w->max_bytes == 0 || row->bytes <= w->max_bytes - w->bytes);
}

static void window_take(struct window *w, int64_t t,
			const struct window_row *row)
{
	w->used += t;
	w->bytes += row->bytes;
	w->count++;
}

void window_add_system(struct window *w, const struct window_row *row)
{
	int64_t t = window_row_tokens(row);

	if (w->system_closed || w->done || !window_fits(w, t, row)) {
		w->system_closed = true;
		w->truncated = true;
		return;
	}
	window_take(w, t, row);
	w->system++;
	w->total = w->used;
}

/* One row's ids against the open calls. */
struct feed {
	struct window *w;
	bool missing;		/* a call of the row has no result */
	bool failed;		/* out of memory */
};

static void feed_answer(void *arg, bool call, struct strview id)
{
	struct feed *f = arg;

	if (!call && idset_add(&f->w->open, id) < 0)
		f->failed = true;
}

static void feed_call(void *arg, bool call, struct strview id)
{
	struct feed *f = arg;

	if (call && !idset_remove(&f->w->open, id))
		f->missing = true;
}

enum window_next window_feed(struct window *w, const struct window_row *row)
{
	struct feed f = {.w = w};
	int64_t t;

	if (w->done)
		return WINDOW_DONE;
	t = window_row_tokens(row);
	if (!window_fits(w, t, row)) {
		w->done = true;
		w->truncated = true;
		return WINDOW_DONE;
	}
	window_take(w, t, row);
	w->fed++;
	/* its answers first (a message may answer its own call), then its
	 * calls, each matched by an answer newer than it or in it */
	window_scan_ids(row, feed_answer, &f);
	if (f.failed)
		return WINDOW_ERROR;
	window_scan_ids(row, feed_call, &f);
	if (w->open.live == 0 && !f.missing && !sv_is(row->role, "tool")) {
		w->take = w->fed;
		w->total = w->used;
	}
	return WINDOW_MORE;
}

void window_end(struct window *w)
{
	if (w->done)
		return;
	w->done = true;
	if (w->take < w->fed)
		w->truncated = true;
}
