/*
 * buf.c - a growable NUL-terminated string.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Room for n more bytes and the NUL. */
static bool buf_reserve(struct buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->nomem)
		return false;
	if (b->cap - b->len >= n + 1)
		return true;
	if (n > SIZE_MAX - 1 - b->len) {
		b->nomem = true;
		return false;
	}
	cap = b->cap ? b->cap : 64;
	while (cap - b->len < n + 1) {
		if (cap > SIZE_MAX / 2) {
			b->nomem = true;
			return false;
		}
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (!p) {
		b->nomem = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void buf_add(struct buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->nomem)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->nomem = true;
		return;
	}
	if (!buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void buf_add_key(struct buf *b, const msgpack_object *k)
{
	switch (k->type) {
	case MSGPACK_OBJECT_STR:
		buf_add(b, k->via.str.ptr, k->via.str.size);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		buf_printf(b, "%" PRIu64, k->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		buf_printf(b, "%" PRId64, k->via.i64);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		buf_adds(b, k->via.boolean ? "true" : "false");
		break;
	default:
		buf_adds(b, "?");
		break;
	}
}

void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){ 0 };
}

void buf_fmt_double(char *out, size_t len, double d)
{
	snprintf(out, len, "%.15g", d);
	if (strtod(out, NULL) != d)
		snprintf(out, len, "%.17g", d);
}
