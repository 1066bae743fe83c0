/*
 * client_wire.c - libconvclient's msgpack framing and decoding: where a frame
 * ends, a response's msgid and scalar result (read with mpread, no zone),
 * replies, error objects, timestamps (pure).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "mpread.h"

static uint64_t be(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Header of the value at p[0..avail): *hdr bytes of type and length
 * fields, then *body bytes of payload; *children values follow it
 * (elements of an array, keys and values of a map).  Returns 1, 0 if the
 * header is not complete yet, -1 for an invalid type byte.
 */
static int value_head(const unsigned char *p, size_t avail, size_t *hdr,
		      uint64_t *body, uint64_t *children)
{
	unsigned b = p[0];
	unsigned lenbytes = 0;	/* size of a length field after the type */
	unsigned mult = 0;	/* 0: length is body bytes; 1/2: children */

	*body = 0;
	*children = 0;
	if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
		*hdr = 1;
		return 1;
	}
	if (b >= 0x80 && b <= 0x8f) {
		*hdr = 1;
		*children = 2 * (uint64_t)(b & 0x0f);
		return 1;
	}
	if (b >= 0x90 && b <= 0x9f) {
		*hdr = 1;
		*children = b & 0x0f;
		return 1;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		*hdr = 1;
		*body = b & 0x1f;
		return 1;
	}
	switch (b) {
	case 0xc1:
		return -1;
	case 0xc4: case 0xd9: lenbytes = 1; *hdr = 2; break;	/* bin8 str8 */
	case 0xc5: case 0xda: lenbytes = 2; *hdr = 3; break;
	case 0xc6: case 0xdb: lenbytes = 4; *hdr = 5; break;
	case 0xc7:
		lenbytes = 1;
		*hdr = 3;
		break; /* ext8 + type */
	case 0xc8: lenbytes = 2; *hdr = 4; break;
	case 0xc9: lenbytes = 4; *hdr = 6; break;
	case 0xca: *hdr = 5; return 1;				/* float32 */
	case 0xcb: *hdr = 9; return 1;				/* float64 */
	case 0xcc: case 0xd0: *hdr = 2; return 1;
	case 0xcd: case 0xd1: *hdr = 3; return 1;
	case 0xce: case 0xd2: *hdr = 5; return 1;
	case 0xcf: case 0xd3: *hdr = 9; return 1;
	case 0xd4: *hdr = 3; return 1;				/* fixext 1 */
	case 0xd5: *hdr = 4; return 1;
	case 0xd6: *hdr = 6; return 1;
	case 0xd7: *hdr = 10; return 1;
	case 0xd8: *hdr = 18; return 1;
	case 0xdc: lenbytes = 2; *hdr = 3; mult = 1; break;	/* array16 */
	case 0xdd: lenbytes = 4; *hdr = 5; mult = 1; break;
	case 0xde: lenbytes = 2; *hdr = 3; mult = 2; break;	/* map16 */
	case 0xdf: lenbytes = 4; *hdr = 5; mult = 2; break;
	default:
		return -1;
	}
	if (avail < 1 + (size_t)lenbytes)
		return 0;
	if (mult)
		*children = mult * be(p + 1, lenbytes);
	else
		*body = be(p + 1, lenbytes);
	return 1;
}

/*
 * Continues scanning one object in p[0..avail) from *st (start with
 * {0, 1}).  limit bounds the object's size: every value still expected
 * takes at least one byte, so a container announcing more values than
 * the limit leaves room for is refused at once.
 */
enum client_wire_scan_result client_wire_scan(const unsigned char *p,
					      size_t avail, size_t limit,
					      struct client_wire_scan_state *st)
{
	while (st->need > 0) {
		size_t hdr;
		uint64_t body, children;
		int r;

		if (st->pos >= avail)
			return CLIENT_WIRE_MORE;
		r = value_head(p + st->pos, avail - st->pos, &hdr, &body,
			       &children);
		if (r < 0)
			return CLIENT_WIRE_BAD;
		if (r == 0)
			return st->pos + 9 > limit ? CLIENT_WIRE_TOO_LARGE
						   : CLIENT_WIRE_MORE;
		if (body > limit || hdr + body > limit - st->pos)
			return CLIENT_WIRE_TOO_LARGE;
		if (st->pos + hdr + body > avail)
			return CLIENT_WIRE_MORE;
		st->pos += hdr + (size_t)body;
		st->need--;
		if (children > limit || st->need + children > limit - st->pos)
			return CLIENT_WIRE_TOO_LARGE;
		st->need += children;
	}
	return CLIENT_WIRE_DONE;
}

void client_wire_reply_clear(struct convc_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->result.type = MSGPACK_OBJECT_NIL;
}

void convc_reply_free(struct convc_reply *r)
{
	if (!r)
		return;
	if (r->priv_zone)
		msgpack_zone_free(r->priv_zone);
	free(r->priv_frame);
	client_wire_reply_clear(r);
}

const msgpack_object *convc_map_get(const msgpack_object *map,
				    const char *key)
{
	size_t klen;

	if (!map || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	klen = strlen(key);
	for (uint32_t i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

bool convc_object_timestamp(const msgpack_object *o, int64_t *usec)
{
	const unsigned char *p;
	int64_t sec;
	uint32_t nsec;

	if (!o || o->type != MSGPACK_OBJECT_EXT || o->via.ext.type != -1)
		return false;
	p = (const unsigned char *)o->via.ext.ptr;
	switch (o->via.ext.size) {
	case 4:
		sec = (int64_t)be(p, 4);
		nsec = 0;
		break;
	case 8: {
		uint64_t v = be(p, 8);

		nsec = (uint32_t)(v >> 34);
		sec = (int64_t)(v & 0x3ffffffffULL);
		break;
	}
	case 12:
		nsec = (uint32_t)be(p, 4);
		sec = (int64_t)be(p + 4, 8);
		break;
	default:
		return false;
	}
	if (nsec > 999999999u)
		return false;
	if (sec > INT64_MAX / 1000000 - 1 || sec < INT64_MIN / 1000000 + 1)
		return false;
	*usec = sec * 1000000 + (int64_t)(nsec / 1000);
	return true;
}

/* The daemon's error object -> err. */
void client_wire_error(const msgpack_object *o, struct convc_error *e)
{
	const msgpack_object *code = convc_map_get(o, "code");
	const msgpack_object *msg = convc_map_get(o, "message");

	if (o->type == MSGPACK_OBJECT_STR) {
		strcpy(e->code, "error");
		client_err_copy(e->message, sizeof(e->message), o->via.str.ptr,
				o->via.str.size);
		return;
	}
	if (code && code->type == MSGPACK_OBJECT_STR && code->via.str.size)
		client_err_copy(e->code, sizeof(e->code), code->via.str.ptr,
				code->via.str.size);
	else
		strcpy(e->code, "error");
	if (msg && msg->type == MSGPACK_OBJECT_STR)
		client_err_copy(e->message, sizeof(e->message),
				msg->via.str.ptr, msg->via.str.size);
	else
		strcpy(e->message, "(no message)");
}

bool client_wire_u32(const msgpack_object *o, uint32_t *v)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.u64 > UINT32_MAX)
		return false;
	*v = (uint32_t)o->via.u64;
	return true;
}

/*
 * The msgid of a complete response frame [1, msgid, ...] read from its
 * first values (any integer format), without decoding the rest, and in
 * *hlen the size of those bytes; false if the frame does not start that
 * way.
 */
bool client_wire_peek_msgid(const unsigned char *p, size_t len, uint32_t *msgid,
			    size_t *hlen)
{
	struct mpread r;
	struct mpread_val v;

	mpread_init(&r, p, len);
	if (mpread_next(&r, &v) < 0 || v.type != MPR_ARRAY || v.count != 4 ||
	    mpread_next(&r, &v) < 0 || v.type != MPR_INT || v.neg ||
	    v.u != 1 ||
	    mpread_next(&r, &v) < 0 || v.type != MPR_INT || v.neg ||
	    v.u > UINT32_MAX)
		return false;
	*msgid = (uint32_t)v.u;
	*hlen = (size_t)(r.p - p);
	return true;
}

/*
 * The result of a complete frame [1, msgid, nil, RESULT] whose first hlen
 * bytes are the array, type and msgid, when RESULT is nil, a boolean, an
 * integer or a string: decoded as client_decode() would (a string points
 * into the frame) but without a zone.  False for anything else (an error,
 * a container, a float, an extension), left to client_decode().
 */
bool client_wire_scalar(const unsigned char *p, size_t len, size_t hlen,
			msgpack_object *o)
{
	struct mpread r;
	struct mpread_val v;

	mpread_init(&r, p + hlen, len - hlen);
	if (mpread_next(&r, &v) < 0 || v.type != MPR_NIL ||	/* error */
	    mpread_next(&r, &v) < 0 || r.p != r.end)
		return false;
	if (v.type != MPR_NIL && v.type != MPR_BOOL && v.type != MPR_INT &&
	    v.type != MPR_STR)
		return false;
	client_decode_scalar(o, &v);
	return true;
}

bool client_wire_int(const msgpack_object *o, int64_t *v)
{
	if (!o)
		return false;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		if (o->via.u64 > INT64_MAX)
			return false;
		*v = (int64_t)o->via.u64;
		return true;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return true;
	}
	return false;
}

char *client_wire_strdup(const msgpack_object *o, size_t *lenp)
{
	char *s;

	if (!o || o->type != MSGPACK_OBJECT_STR)
		return NULL;
	s = malloc((size_t)o->via.str.size + 1);
	if (!s)
		return NULL;
	memcpy(s, o->via.str.ptr, o->via.str.size);
	s[o->via.str.size] = '\0';
	if (lenp)
		*lenp = o->via.str.size;
	return s;
}
