/*
 * convctl_text.c - convctl's output for people: escaped text, the
 * flattened listing of a map.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "convctl_text.h"
#include "convctl_time.h"
#include "utf8.h"

/*
 * Writes text for people: valid UTF-8 passes through; control characters
 * (C0 except tab and newline, DEL, C1) and invalid bytes are shown as
 * \xNN or \u00NN so that stored data cannot drive the terminal.  A newline
 * starts a new line indented by `indent` spaces, or is shown as \n when
 * indent is SIZE_MAX.
 */
void convctl_text_put(FILE *f, const char *s, size_t len, size_t indent)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_next(p + i, len - i, &cp);

		if (cp == '\n') {
			if (indent == SIZE_MAX)
				fputs("\\n", f);
			else
				fprintf(f, "\n%*s", (int)indent, "");
		} else if (cp == UTF8_INVALID) {
			fprintf(f, "\\x%02X", p[i]);
		} else if ((cp < 0x20 && cp != '\t') || cp == 0x7F ||
			   (cp >= 0x80 && cp <= 0x9F)) {
			if (cp < 0x80)
				fprintf(f, "\\x%02X", (unsigned)cp);
			else
				fprintf(f, "\\u%04X", (unsigned)cp);
		} else {
			fwrite(p + i, 1, n, f);
		}
		i += n;
	}
}

void convctl_text_cstr(FILE *f, const char *s)
{
	convctl_text_put(f, s, strlen(s), SIZE_MAX);
}

/* One leaf of a flattened map: its path and its value object. */
struct leaf {
	char *path;
	const msgpack_object *val;
};

struct leaves {
	struct leaf *v;
	size_t n, cap;
	bool nomem;
};

static void leaves_add(struct leaves *l, const char *path,
		       const msgpack_object *val)
{
	if (l->nomem)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct leaf *p = NULL;

		if (cap <= SIZE_MAX / sizeof(*p))
			p = realloc(l->v, cap * sizeof(*p));
		if (!p) {
			l->nomem = true;
			return;
		}
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n].path = strdup(path);
	if (!l->v[l->n].path) {
		l->nomem = true;
		return;
	}
	l->v[l->n].val = val;
	l->n++;
}

static void leaves_free(struct leaves *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/*
 * Flattens maps and arrays into leaves whose paths are the keys (array
 * indexes) joined by sep.  An empty map or array is a leaf itself.
 * Depth is bounded by msgpack-c's decoder (32).
 */
static void flatten(struct leaves *l, struct buf *path,
		    const msgpack_object *o, char sep)
{
	size_t mark = path->len;
	uint32_t n;

	if (o->type == MSGPACK_OBJECT_MAP || o->type == MSGPACK_OBJECT_ARRAY) {
		n = o->type == MSGPACK_OBJECT_MAP ? o->via.map.size
						  : o->via.array.size;
		if (n == 0) {
			leaves_add(l, path->p ? path->p : "", o);
			return;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (mark > 0)
				buf_add(path, &sep, 1);
			if (o->type == MSGPACK_OBJECT_MAP) {
				buf_add_key(path, &o->via.map.ptr[i].key);
				flatten(l, path, &o->via.map.ptr[i].val, sep);
			} else {
				char tmp[16];

				snprintf(tmp, sizeof(tmp), "%" PRIu32, i);
				buf_adds(path, tmp);
				flatten(l, path, &o->via.array.ptr[i], sep);
			}
			if (path->nomem) {
				l->nomem = true;
				return;
			}
			path->len = mark;
			if (path->p)
				path->p[mark] = '\0';
		}
		return;
	}
	leaves_add(l, path->p ? path->p : "", o);
}

/* A leaf's value for people. */
static void put_value(FILE *f, const msgpack_object *o)
{
	char buf[64];
	int64_t t;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("-", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%" PRIu64, o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%" PRId64, o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		buf_fmt_double(buf, sizeof(buf), o->via.f64);
		fputs(buf, f);
		break;
	case MSGPACK_OBJECT_STR:
		convctl_text_put(f, o->via.str.ptr, o->via.str.size, SIZE_MAX);
		break;
	case MSGPACK_OBJECT_BIN:
		fprintf(f, "<%" PRIu32 " bytes>", o->via.bin.size);
		break;
	case MSGPACK_OBJECT_EXT:
		if (convc_object_timestamp(o, &t)) {
			convctl_time_format(buf, sizeof(buf), t, 3);
			fputs(buf, f);
		} else {
			fprintf(f, "<extension %d, %" PRIu32 " bytes>",
				o->via.ext.type, o->via.ext.size);
		}
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputs("[]", f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputs("{}", f);
		break;
	default:
		fputs("?", f);
		break;
	}
}

/* Display width of a path (code points; good enough for key names). */
size_t convctl_text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

/* "path  value" lines, aligned, for people. */
int convctl_text_flat(FILE *f, const msgpack_object *map)
{
	struct leaves l = { 0 };
	struct buf path = { 0 };
	size_t width = 0;

	flatten(&l, &path, map, '.');
	free(path.p);
	if (l.nomem) {
		leaves_free(&l);
		return convctl_nomem();
	}
	for (size_t i = 0; i < l.n; i++) {
		size_t w = convctl_text_width(l.v[i].path);

		if (w > width)
			width = w;
	}
	for (size_t i = 0; i < l.n; i++) {
		convctl_text_cstr(f, l.v[i].path);
		fprintf(f, "%*s  ",
			(int)(width - convctl_text_width(l.v[i].path)), "");
		put_value(f, l.v[i].val);
		fputc('\n', f);
	}
	leaves_free(&l);
	return EXIT_SUCCESS;
}

void convctl_text_deleted(struct convctl_ctx *x, int64_t deleted,
			  const char *what)
{
	if (x->o->json)
		fprintf(x->out, "{\"deleted\":%" PRId64 "}\n", deleted);
	else
		fprintf(x->out, "deleted %" PRId64 " %s%s\n", deleted, what,
			deleted == 1 ? "" : "s");
}

