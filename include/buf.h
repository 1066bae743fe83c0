/*
 * buf.h - a growable NUL-terminated string, for text built piece by piece
 * (convctl's flattened paths and lines, the Prometheus exposition).
 *
 * Appending never fails loudly: on an allocation failure (or a size that
 * would overflow) the buffer sets nomem and ignores every later append, so
 * a caller checks once at the end.  A zeroed struct buf is empty.
 */
#ifndef CONVD_BUF_H
#define CONVD_BUF_H

#include <msgpack.h>

#include "common.h"

struct buf {
	char *p;		/* NULL until something is added */
	size_t len, cap;
	bool nomem;
};

void buf_add(struct buf *b, const char *s, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) CONVD_PRINTF(2, 3);
/* A msgpack map key (or array index) as text: strings raw, integers and
 * booleans as written, anything else "?". */
void buf_add_key(struct buf *b, const msgpack_object *k);
void buf_free(struct buf *b);

/* d in the shortest of %.15g and %.17g that reads back as d. */
void buf_fmt_double(char *out, size_t len, double d);

#endif
