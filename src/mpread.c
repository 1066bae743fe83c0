/*
 * mpread.c - a bounded pull reader over one stored msgpack value.
 */
#include <string.h>

#include "mpread.h"

static int need(const struct mpread *r, size_t n)
{
	return (size_t)(r->end - r->p) >= n ? 0 : -1;
}

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* A payload of len bytes (after its header) as v->s. */
static int payload(struct mpread *r, struct mpread_val *v,
		   enum mpread_type t, uint64_t len)
{
	if (len > (uint64_t)(r->end - r->p))
		return -1;
	v->type = t;
	v->s.p = (const char *)r->p;
	v->s.len = (size_t)len;
	r->p += len;
	return 0;
}

/* A big-endian number of n bytes (a length or a count). */
static int take_be(struct mpread *r, size_t n, uint64_t *out)
{
	if (need(r, n) < 0)
		return -1;
	*out = be(r->p, n);
	r->p += n;
	return 0;
}

/* A length of n bytes, then the payload. */
static int sized(struct mpread *r, struct mpread_val *v, enum mpread_type t,
		 size_t n)
{
	uint64_t len;

	return take_be(r, n, &len) < 0 ? -1 : payload(r, v, t, len);
}

/* A container's count of n bytes.  Each element takes a byte at least:
 * a count beyond the bytes left is refused at once. */
static int counted(struct mpread *r, struct mpread_val *v,
		   enum mpread_type t, uint64_t count)
{
	uint64_t min = t == MPR_MAP ? count * 2 : count;

	if (count > UINT32_MAX || min > (uint64_t)(r->end - r->p))
		return -1;
	v->type = t;
	v->count = (uint32_t)count;
	return 0;
}

/* A container's count of n bytes, then the count. */
static int counted_n(struct mpread *r, struct mpread_val *v,
		     enum mpread_type t, size_t n)
{
	uint64_t c;

	return take_be(r, n, &c) < 0 ? -1 : counted(r, v, t, c);
}

/* An integer of n bytes; a signed format's value in two's complement. */
static int integer(struct mpread *r, struct mpread_val *v, size_t n,
		   bool is_signed)
{
	uint64_t u;

	if (take_be(r, n, &u) < 0)
		return -1;
	v->type = MPR_INT;
	if (is_signed && n < 8 && (u >> (8 * n - 1)))
		u |= ~(uint64_t)0 << (8 * n);	/* sign-extend */
	if (is_signed && (int64_t)u < 0) {
		v->neg = true;
		v->i = (int64_t)u;
	} else {
		v->u = u;
	}
	return 0;
}

/* A float 32 (n 4) or 64 (n 8), big-endian IEEE 754. */
static int floating(struct mpread *r, struct mpread_val *v, size_t n)
{
	uint64_t bits;

	if (take_be(r, n, &bits) < 0)
		return -1;
	v->type = MPR_FLOAT;
	if (n == 4) {
		uint32_t b32 = (uint32_t)bits;
		float f;

		memcpy(&f, &b32, sizeof(f));
		v->f = f;
		v->f32 = true;
	} else {
		double d;

		memcpy(&d, &bits, sizeof(d));
		v->f = d;
	}
	return 0;
}

static int fixed(struct mpread *r, struct mpread_val *v, enum mpread_type t,
		 size_t n)
{
	if (need(r, n) < 0)
		return -1;
	r->p += n;
	v->type = t;
	return 0;
}

int mpread_next(struct mpread *r, struct mpread_val *v)
{
	uint8_t b;

	memset(v, 0, sizeof(*v));
	if (need(r, 1) < 0)
		return -1;
	b = *r->p++;
	if (b <= 0x7f) {
		v->type = MPR_INT;
		v->u = b;
		return 0;
	}
	if (b >= 0xe0) {
		v->type = MPR_INT;
		v->neg = true;
		v->i = (int64_t)b - 256;
		return 0;
	}
	if (b >= 0x80 && b <= 0x8f)
		return counted(r, v, MPR_MAP, b & 0x0f);
	if (b >= 0x90 && b <= 0x9f)
		return counted(r, v, MPR_ARRAY, b & 0x0f);
	if (b >= 0xa0 && b <= 0xbf)
		return payload(r, v, MPR_STR, b & 0x1f);
	switch (b) {
	case 0xc0:
		return fixed(r, v, MPR_NIL, 0);
	case 0xc2:
	case 0xc3:
		v->b = b == 0xc3;
		return fixed(r, v, MPR_BOOL, 0);
	case 0xc4:
	case 0xc5:
	case 0xc6:
		return sized(r, v, MPR_BIN, (size_t)1 << (b - 0xc4));
	case 0xc7:
	case 0xc8:
	case 0xc9:
		/* ext 8/16/32: length, type byte, payload */
		if (need(r, ((size_t)1 << (b - 0xc7)) + 1) < 0)
			return -1;
		{
			size_t n = (size_t)1 << (b - 0xc7);
			uint64_t len = be(r->p, n);

			v->ext_type = (int8_t)r->p[n];
			r->p += n + 1;
			return payload(r, v, MPR_EXT, len);
		}
	case 0xca:
		return floating(r, v, 4);
	case 0xcb:
		return floating(r, v, 8);
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf:
		return integer(r, v, (size_t)1 << (b - 0xcc), false);
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3:
		return integer(r, v, (size_t)1 << (b - 0xd0), true);
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		/* fixext 1..16: type byte, payload */
		if (need(r, 1) < 0)
			return -1;
		v->ext_type = (int8_t)*r->p++;
		return payload(r, v, MPR_EXT, (uint64_t)1 << (b - 0xd4));
	case 0xd9:
	case 0xda:
	case 0xdb:
		return sized(r, v, MPR_STR, (size_t)1 << (b - 0xd9));
	case 0xdc:
	case 0xdd:
		return counted_n(r, v, MPR_ARRAY, (size_t)2 << (b - 0xdc));
	case 0xde:
	case 0xdf:
		return counted_n(r, v, MPR_MAP, (size_t)2 << (b - 0xde));
	default:		/* 0xc1: never used */
		return -1;
	}
}

/*
 * Skips the elements owed by open containers without recursion: `owed`
 * counts the values still to read at each depth.
 */
int mpread_skip(struct mpread *r, const struct mpread_val *v)
{
	uint64_t owed[MPREAD_MAX_DEPTH];
	int depth = 0;

	if (v->type != MPR_ARRAY && v->type != MPR_MAP)
		return 0;
	owed[0] = v->type == MPR_MAP ? (uint64_t)v->count * 2 : v->count;
	while (depth >= 0) {
		struct mpread_val e;

		if (owed[depth] == 0) {
			depth--;
			continue;
		}
		owed[depth]--;
		if (mpread_next(r, &e) < 0)
			return -1;
		if (e.type == MPR_ARRAY || e.type == MPR_MAP) {
			if (depth + 1 >= MPREAD_MAX_DEPTH)
				return -1;
			owed[++depth] = e.type == MPR_MAP ?
						(uint64_t)e.count * 2 :
						e.count;
		}
	}
	return 0;
}

bool mpread_str_is(const struct mpread_val *v, const char *s)
{
	size_t n = strlen(s);

	return v->type == MPR_STR && v->s.len == n && memcmp(v->s.p, s, n) == 0;
}
