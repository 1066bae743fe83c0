/*
 * mpread.h - a bounded pull reader over one stored msgpack value (pure).
 *
 * proto.h decodes requests into a fixed array of nodes, with the request
 * limits (512 values, depth 8).  A message's stored structured content
 * (`content_mp`, up to max_content_bytes, nesting up to 64) is read with
 * this instead: value by value, nothing allocated, every length checked
 * against the bytes that are left.  Bytes that are not msgpack, or end
 * in the middle of a value, are an error, never a crash.
 *
 * libconvclient decodes convd's responses with it too (src/client_decode.c:
 * the file is linked into the library, whose exports stay convc_* only).
 */
#ifndef CONVD_MPREAD_H
#define CONVD_MPREAD_H

#include "common.h"

enum mpread_type {
	MPR_NIL,
	MPR_BOOL,
	MPR_INT,	/* any integer: neg ? i : u */
	MPR_FLOAT,
	MPR_STR,
	MPR_BIN,
	MPR_EXT,
	MPR_ARRAY,	/* count elements follow */
	MPR_MAP,	/* count key, value pairs follow */
};

struct mpread {
	const uint8_t *p, *end;
};

struct mpread_val {
	enum mpread_type type;
	uint32_t count;		/* MPR_ARRAY, MPR_MAP */
	struct strview s;	/* MPR_STR, MPR_BIN, MPR_EXT payload */
	/* A scalar's value (libconvclient builds msgpack-c objects of it) */
	bool neg;		/* MPR_INT: below zero, in i; else in u */
	bool b;			/* MPR_BOOL */
	bool f32;		/* MPR_FLOAT: a float 32 (else 64) */
	int8_t ext_type;	/* MPR_EXT */
	uint64_t u;		/* MPR_INT >= 0 */
	int64_t i;		/* MPR_INT < 0 */
	double f;		/* MPR_FLOAT */
};

/* Deepest nesting mpread_skip follows (arrays and maps). */
#define MPREAD_MAX_DEPTH 128

static inline void mpread_init(struct mpread *r, const void *buf, size_t len)
{
	r->p = buf;
	r->end = r->p + len;
}

/*
 * Reads the next value's header: a scalar whole (a str's, bin's or ext's
 * payload in v->s), a container's count (its elements come next).
 * Returns 0, or -1 when the bytes are not msgpack or end too soon.
 */
CONVD_WUR int mpread_next(struct mpread *r, struct mpread_val *v);

/* Skips the rest of the value whose header v was just read (a
 * container's elements, to any depth up to MPREAD_MAX_DEPTH).  0 or -1. */
CONVD_WUR int mpread_skip(struct mpread *r, const struct mpread_val *v);

/* Whether v is the str s. */
bool mpread_str_is(const struct mpread_val *v, const char *s);

#endif
