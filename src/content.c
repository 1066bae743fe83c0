/*
 * content.c - structured message content and msgpack maps as bytes (see
 * content.h).  Everything walks the bytes with mpread, iteratively, with
 * a stack bounded by the depth it accepts.
 */
#include <string.h>

#include "content.h"
#include "mpread.h"
#include "utf8.h"

/* Values still owed by the containers open around the reader. */
struct walk {
	uint64_t owed[MPREAD_MAX_DEPTH];
	uint32_t index[MPREAD_MAX_DEPTH];	/* elements read so far */
	bool map[MPREAD_MAX_DEPTH];
	bool text_key[MPREAD_MAX_DEPTH];	/* a map's last key was "text" */
	int depth;			/* open containers */
};

/* Opens container v (just read); -1 past max open containers. */
static int walk_open(struct walk *w, const struct mpread_val *v, int max)
{
	if (w->depth >= max || w->depth >= MPREAD_MAX_DEPTH)
		return -1;
	w->owed[w->depth] = v->type == MPR_MAP ? (uint64_t)v->count * 2
					       : v->count;
	w->index[w->depth] = 0;
	w->map[w->depth] = v->type == MPR_MAP;
	w->text_key[w->depth] = false;
	w->depth++;
	return 0;
}

/* Closes the containers that have all their values. */
static void walk_close(struct walk *w)
{
	while (w->depth > 0 && w->owed[w->depth - 1] == 0)
		w->depth--;
}

int content_depth(struct strview v, uint32_t max_depth)
{
	struct walk w;
	struct mpread r;
	int deepest = 0;

	w.depth = 0;
	mpread_init(&r, v.p, v.len);
	do {
		struct mpread_val e;

		if (mpread_next(&r, &e) < 0)
			return -1;
		if (w.depth > 0)
			w.owed[w.depth - 1]--;
		if (e.type == MPR_ARRAY || e.type == MPR_MAP) {
			if ((uint32_t)w.depth + 1 > max_depth)
				return -2;
			if (w.depth + 1 > deepest)
				deepest = w.depth + 1;
			if (e.count > 0 &&
			    walk_open(&w, &e, MPREAD_MAX_DEPTH) < 0)
				return -2;
		}
		walk_close(&w);
	} while (w.depth > 0);
	return r.p == r.end ? deepest : -1;
}

ssize_t content_text(struct strview v, char *out, size_t outlen)
{
	struct walk w;
	struct mpread r;
	size_t n = 0;
	bool any = false;

	w.depth = 0;
	mpread_init(&r, v.p, v.len);
	do {
		struct mpread_val e;
		int d = w.depth - 1;
		bool is_key = d >= 0 && w.map[d] && w.index[d] % 2 == 0;
		bool under_text = d >= 0 && w.map[d] && !is_key &&
				  w.text_key[d];

		if (mpread_next(&r, &e) < 0)
			return -1;
		if (d >= 0) {
			w.owed[d]--;
			w.index[d]++;
			if (is_key)
				w.text_key[d] = mpread_str_is(&e, "text");
		}
		if (under_text && e.type == MPR_STR &&
		    memchr(e.s.p, '\0', e.s.len) == NULL &&
		    utf8_valid(e.s.p, e.s.len)) {
			if (n + (any ? 1 : 0) + e.s.len > outlen)
				return -1;
			if (any)
				out[n++] = '\n';
			memcpy(out + n, e.s.p, e.s.len);
			n += e.s.len;
			any = true;
		}
		if ((e.type == MPR_ARRAY || e.type == MPR_MAP) && e.count > 0 &&
		    walk_open(&w, &e, MPREAD_MAX_DEPTH) < 0)
			return -1;
		walk_close(&w);
	} while (w.depth > 0);
	return r.p == r.end ? (ssize_t)n : -1;
}

int content_pack(msgpack_packer *pk, struct strview v)
{
	if (v.len == 0 || content_depth(v, CONTENT_MAX_DEPTH) < 0)
		return -1;
	return pk->callback(pk->data, v.p, v.len) < 0 ? -1 : 0;
}
