/*
 * proto.c - the MessagePack-RPC codec.
 *
 * proto_decode() is a single forward pass over the input with an explicit
 * stack (no recursion).  It keeps `pending`, the number of values that must
 * still follow before the top-level object is complete, and `owed`, the
 * nodes those of them that become nodes will take.  Every value takes at
 * least one byte, so
 *
 *	pos + pending <= max_frame	and	n + owed <= max_nodes
 *
 * are invariants: a header announcing more than the frame allows is
 * refused as soon as the header itself has been read, before its body is
 * awaited; a container whose elements would not fit in the nodes left is
 * kept as one raw node instead (proto.h).  The values inside a raw
 * container are read by the same loop (checked, never stored); the stack
 * holds one entry per open container, PROTO_MAX_DEPTH at most.  Errors
 * are found in byte order, so feeding a stream in pieces gives
 * PROTO_INCOMPLETE until the first bad byte arrives, then the same error a
 * one-shot decode of the whole stream would give.
 */
#include <string.h>

#include "errbuf.h"
#include "proto.h"
#include "utf8.h"

static inline uint16_t load16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t load32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t load64(const uint8_t *p)
{
	return (uint64_t)load32(p) << 32 | load32(p + 4);
}

#define NO_NODE UINT32_MAX

/* An open container with elements still to come. */
struct open_frame {
	uint64_t left;		/* values still to come (map: keys + values) */
	uint32_t idx;		/* its node, or NO_NODE inside a raw one */
	uint32_t deepest;	/* deepest level reached inside it so far */
	bool nodes;		/* its elements are nodes */
};

void proto_request_limits(struct proto_limits *lim, size_t max_frame)
{
	lim->max_frame = max_frame;
	lim->max_depth = PROTO_MAX_DEPTH;
	/* [0, msgid, method, params]: the root and the params, and the map
	 * of [{named params}] */
	lim->node_depth = 2;
	lim->max_nodes = PROTO_MAX_NODES;
	lim->max_container = PROTO_MAX_NODES;
}

/* Whether the container being opened at depth d (its node nd, the stack
 * below it) gets its elements as nodes; `left` nodes are free. */
static bool expand(const struct proto_limits *lim, const struct proto_doc *doc,
		   const struct open_frame *stack, uint32_t sp,
		   const struct proto_node *nd, uint64_t items, uint64_t left)
{
	uint32_t d = sp + 1;

	if (nd->count > lim->max_container || items > left)
		return false;
	if (lim->node_depth == 0 || d <= lim->node_depth)
		return true;
	/* the named params' map: the only element of an array at
	 * node_depth whose elements are nodes */
	return d == lim->node_depth + 1 && nd->type == PROTO_MAP && sp > 0 &&
	       stack[sp - 1].nodes &&
	       doc->nodes[stack[sp - 1].idx].type == PROTO_ARRAY &&
	       doc->nodes[stack[sp - 1].idx].count == 1;
}

enum proto_status proto_decode(const uint8_t *buf, size_t len,
			       const struct proto_limits *lim,
			       struct proto_doc *doc, size_t *consumed)
{
	struct open_frame stack[PROTO_MAX_DEPTH];
	struct proto_node scratch;		/* a value that is no node */
	const uint64_t max_frame = lim->max_frame;
	const uint32_t max_depth = lim->max_depth < PROTO_MAX_DEPTH ?
					   lim->max_depth : PROTO_MAX_DEPTH;
	const uint32_t max_nodes = lim->max_nodes < 1 ? 1
				   : lim->max_nodes < PROTO_MAX_NODES ?
						     lim->max_nodes
						     : PROTO_MAX_NODES;
	uint64_t pending = 1;	/* values still needed to finish the object */
	uint64_t owed = 1;	/* nodes still owed to them */
	uint32_t sp = 0;	/* open containers on the stack */
	uint32_t n = 0;		/* nodes written */
	size_t pos = 0;

	doc->n = 0;
	if (max_frame < 1)
		return PROTO_ERR_TOO_LARGE;

	for (;;) {
		/* Bytes we may still use for this value without breaking
		 * the frame limit, given the values that must follow it. */
		const uint64_t room = max_frame - pos - (pending - 1);
		const size_t have = len - pos;
		const uint8_t *p = buf + pos;
		const bool is_node = sp == 0 || stack[sp - 1].nodes;
		struct proto_node *nd = is_node ? &doc->nodes[n] : &scratch;
		uint32_t done_depth = 0;	/* an empty container's */
		uint64_t hdr, body, count;
		uint64_t need;	/* bytes to read before the length is known */
		uint8_t c;

		if (have < 1) {			/* room >= 1 always */
			*consumed = pos + (size_t)pending;
			return PROTO_INCOMPLETE;
		}
		c = p[0];
		nd->count = 0;
		nd->ext_type = 0;
		nd->raw = false;
		nd->depth = 0;

		if (c <= 0x7f) {		/* positive fixint */
			nd->type = PROTO_INT;
			nd->v.i = c;
			pos += 1;
			goto scalar_done;
		}
		if (c >= 0xe0) {		/* negative fixint */
			nd->type = PROTO_INT;
			nd->v.i = (int8_t)c;
			pos += 1;
			goto scalar_done;
		}
		if (c <= 0x8f) {		/* fixmap */
			nd->type = PROTO_MAP;
			hdr = 1;
			count = c & 0x0f;
			goto container;
		}
		if (c <= 0x9f) {		/* fixarray */
			nd->type = PROTO_ARRAY;
			hdr = 1;
			count = c & 0x0f;
			goto container;
		}
		if (c <= 0xbf) {		/* fixstr */
			nd->type = PROTO_STR;
			hdr = 1;
			body = c & 0x1f;
			goto bytes;
		}

		switch (c) {
		case 0xc0:
			nd->type = PROTO_NIL;
			pos += 1;
			goto scalar_done;
		case 0xc1:
			return PROTO_ERR_SYNTAX;
		case 0xc2:
		case 0xc3:
			nd->type = PROTO_BOOL;
			nd->v.b = c == 0xc3;
			pos += 1;
			goto scalar_done;

		case 0xc4:	/* bin 8 */
		case 0xd9:	/* str 8 */
			hdr = 2;
			break;
		case 0xc5:	/* bin 16 */
		case 0xda:	/* str 16 */
		case 0xc7:	/* ext 8: len8 type */
			hdr = 3;
			break;
		case 0xc8:	/* ext 16 */
			hdr = 4;
			break;
		case 0xc6:	/* bin 32 */
		case 0xdb:	/* str 32 */
			hdr = 5;
			break;
		case 0xc9:	/* ext 32 */
			hdr = 6;
			break;
		case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
			hdr = 2;	/* fixext: type byte */
			break;
		case 0xdc: case 0xde:	/* array 16, map 16 */
			hdr = 3;
			break;
		case 0xdd: case 0xdf:	/* array 32, map 32 */
			hdr = 5;
			break;

		case 0xca: hdr = 5; break;	/* float 32 */
		case 0xcb: hdr = 9; break;	/* float 64 */
		case 0xcc: case 0xd0: hdr = 2; break;
		case 0xcd: case 0xd1: hdr = 3; break;
		case 0xce: case 0xd2: hdr = 5; break;
		case 0xcf: case 0xd3: hdr = 9; break;
		default:
			return PROTO_ERR_SYNTAX;	/* not reached */
		}

		/* Every remaining format has a fixed-size header.  ext 8/16/32
		 * put their type byte after the length: judge the length as
		 * soon as it is there. */
		if (hdr > room)
			return PROTO_ERR_TOO_LARGE;
		need = c >= 0xc7 && c <= 0xc9 ? hdr - 1 : hdr;
		if (need > have) {
			*consumed = pos + (size_t)(hdr + pending - 1);
			return PROTO_INCOMPLETE;
		}

		switch (c) {
		case 0xca: {
			uint32_t u = load32(p + 1);
			float f;

			memcpy(&f, &u, sizeof(f));
			nd->type = PROTO_FLOAT;
			nd->v.f = f;
			pos += 5;
			goto scalar_done;
		}
		case 0xcb: {
			uint64_t u = load64(p + 1);

			nd->type = PROTO_FLOAT;
			memcpy(&nd->v.f, &u, sizeof(nd->v.f));
			pos += 9;
			goto scalar_done;
		}
		case 0xcc:
			nd->type = PROTO_INT;
			nd->v.i = p[1];
			pos += 2;
			goto scalar_done;
		case 0xcd:
			nd->type = PROTO_INT;
			nd->v.i = load16(p + 1);
			pos += 3;
			goto scalar_done;
		case 0xce:
			nd->type = PROTO_INT;
			nd->v.i = load32(p + 1);
			pos += 5;
			goto scalar_done;
		case 0xcf: {
			uint64_t u = load64(p + 1);

			if (u <= INT64_MAX) {
				nd->type = PROTO_INT;
				nd->v.i = (int64_t)u;
			} else {
				nd->type = PROTO_UINT;
				nd->v.u = u;
			}
			pos += 9;
			goto scalar_done;
		}
		case 0xd0:
			nd->type = PROTO_INT;
			nd->v.i = (int8_t)p[1];
			pos += 2;
			goto scalar_done;
		case 0xd1:
			nd->type = PROTO_INT;
			nd->v.i = (int16_t)load16(p + 1);
			pos += 3;
			goto scalar_done;
		case 0xd2:
			nd->type = PROTO_INT;
			nd->v.i = (int32_t)load32(p + 1);
			pos += 5;
			goto scalar_done;
		case 0xd3:
			nd->type = PROTO_INT;
			nd->v.i = (int64_t)load64(p + 1);
			pos += 9;
			goto scalar_done;

		case 0xc4:
			nd->type = PROTO_BIN;
			body = p[1];
			goto bytes;
		case 0xc5:
			nd->type = PROTO_BIN;
			body = load16(p + 1);
			goto bytes;
		case 0xc6:
			nd->type = PROTO_BIN;
			body = load32(p + 1);
			goto bytes;
		case 0xd9:
			nd->type = PROTO_STR;
			body = p[1];
			goto bytes;
		case 0xda:
			nd->type = PROTO_STR;
			body = load16(p + 1);
			goto bytes;
		case 0xdb:
			nd->type = PROTO_STR;
			body = load32(p + 1);
			goto bytes;
		case 0xc7:	/* the type byte is read at `bytes` */
			nd->type = PROTO_EXT;
			body = p[1];
			goto bytes;
		case 0xc8:
			nd->type = PROTO_EXT;
			body = load16(p + 1);
			goto bytes;
		case 0xc9:
			nd->type = PROTO_EXT;
			body = load32(p + 1);
			goto bytes;
		case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
			nd->type = PROTO_EXT;
			body = (uint64_t)1 << (c - 0xd4);	/* 1..16 */
			goto bytes;
		case 0xdc:
			nd->type = PROTO_ARRAY;
			count = load16(p + 1);
			goto container;
		case 0xdd:
			nd->type = PROTO_ARRAY;
			count = load32(p + 1);
			goto container;
		case 0xde:
			nd->type = PROTO_MAP;
			count = load16(p + 1);
			goto container;
		case 0xdf:
			nd->type = PROTO_MAP;
			count = load32(p + 1);
			goto container;
		default:
			return PROTO_ERR_SYNTAX;	/* not reached */
		}

bytes:
		/* str, bin, ext: hdr bytes then body bytes; an ext header
		 * ends with its type. */
		if (hdr > room || body > room - hdr)
			return PROTO_ERR_TOO_LARGE;
		if (hdr + body > have) {
			*consumed = pos + (size_t)(hdr + body + pending - 1);
			return PROTO_INCOMPLETE;
		}
		if (nd->type == PROTO_EXT)
			nd->ext_type = (int8_t)p[hdr - 1];
		nd->v.s.p = (const char *)p + hdr;
		nd->v.s.len = (size_t)body;
		pos += (size_t)(hdr + body);
		goto scalar_done;

container: {
		uint64_t items = nd->type == PROTO_MAP ? count * 2 : count;
		bool elems_nodes;

		/* (fixarray / fixmap come here directly: hdr 1 <= room, have) */
		if (sp + 1 > max_depth)
			return PROTO_ERR_TOO_DEEP;
		/* Each element takes a byte at least. */
		if (items > room - hdr)
			return PROTO_ERR_TOO_LARGE;
		nd->count = (uint32_t)count;
		/* this node is owed already: n + 1 + (owed - 1) + items */
		elems_nodes = is_node &&
			      expand(lim, doc, stack, sp, nd, items,
				     (uint64_t)max_nodes - n - owed);
		nd->raw = !elems_nodes;
		nd->v.s.p = (const char *)p;
		nd->v.s.len = (size_t)hdr;
		nd->depth = 1;
		pos += (size_t)hdr;
		if (items > 0) {
			pending += items - 1;
			stack[sp].left = items;
			stack[sp].idx = is_node ? n : NO_NODE;
			stack[sp].deepest = sp + 1;
			stack[sp].nodes = elems_nodes;
			sp++;
			if (is_node) {
				n++;
				owed--;
			}
			if (elems_nodes)
				owed += items;
			continue;
		}
		/* An empty container is complete at once. */
		done_depth = sp + 1;
	}

scalar_done:
		if (is_node) {
			n++;
			owed--;
			nd->next = n;
		}
		pending--;
		if (sp > 0 && stack[sp - 1].deepest < done_depth)
			stack[sp - 1].deepest = done_depth;
		while (sp > 0 && --stack[sp - 1].left == 0) {
			const struct open_frame *f = &stack[sp - 1];

			if (f->idx != NO_NODE) {
				struct proto_node *cn = &doc->nodes[f->idx];

				cn->next = n;
				cn->v.s.len = (size_t)((const char *)buf +
						       pos - cn->v.s.p);
				cn->depth = (uint16_t)(f->deepest - sp + 1);
			}
			sp--;
			if (sp > 0 && stack[sp - 1].deepest < f->deepest)
				stack[sp - 1].deepest = f->deepest;
		}
		if (pending == 0) {
			doc->n = n;
			*consumed = pos;
			return PROTO_OK;
		}
	}
}

const char *proto_status_str(enum proto_status st)
{
	switch (st) {
	case PROTO_OK:
		return "ok";
	case PROTO_INCOMPLETE:
		return "incomplete message";
	case PROTO_ERR_SYNTAX:
		return "not MessagePack (byte 0xc1)";
	case PROTO_ERR_TOO_LARGE:
		return "message too large";
	case PROTO_ERR_TOO_DEEP:
		return "message nested too deeply";
	}
	return "unknown status";
}

/* --- envelope ---------------------------------------------------------- */

/* The reason in err; -1. */
#define env_fail(err, errlen, ...) \
	(errbuf_set((err), (errlen), __VA_ARGS__), -1)

static bool node_is_msgid(const struct proto_node *n)
{
	return n->type == PROTO_INT && n->v.i >= 0 && n->v.i <= UINT32_MAX;
}

int proto_parse_envelope(const struct proto_doc *doc, struct proto_msg *msg,
			 char *err, size_t errlen)
{
	const struct proto_node *nodes = doc->nodes;
	uint32_t count, i, want;
	int64_t type;

	memset(msg, 0, sizeof(*msg));
	if (doc->n == 0 || nodes[0].type != PROTO_ARRAY)
		return env_fail(err, errlen, "message is not an array");
	count = nodes[0].count;
	if (nodes[0].raw)	/* too many elements to be nodes */
		return env_fail(err, errlen,
				"message is an array of %u elements; expected "
				"[type, msgid, method, params]",
				count);
	if (count == 0)
		return env_fail(err, errlen,
				"message is an empty array; expected "
				"[type, msgid, method, params]");
	if (nodes[1].type != PROTO_INT || nodes[1].v.i < 0 || nodes[1].v.i > 2) {
		/* Not a known type: if it has a request's shape, its msgid
		 * can still be read for the error reply. */
		i = nodes[1].next;
		if (count == 4 && node_is_msgid(&nodes[i])) {
			msg->has_msgid = true;
			msg->msgid = (uint32_t)nodes[i].v.i;
		}
		return env_fail(err, errlen,
				"message type must be 0 (request), "
				"1 (response) or 2 (notification)");
	}
	type = nodes[1].v.i;
	msg->kind = (enum proto_kind)type;
	i = nodes[1].next;

	if (msg->kind == PROTO_NOTIFY) {
		want = 3;
	} else {
		want = 4;
		/* Read the msgid as early as possible, for the error reply. */
		if (count >= 2 && node_is_msgid(&nodes[i])) {
			msg->has_msgid = true;
			msg->msgid = (uint32_t)nodes[i].v.i;
		}
	}
	if (count != want)
		return env_fail(err, errlen,
				"a %s must be an array of %u elements, not %u",
				msg->kind == PROTO_REQUEST  ? "request" :
				msg->kind == PROTO_RESPONSE ? "response" :
							    "notification",
				want, count);

	if (msg->kind != PROTO_NOTIFY) {
		if (!msg->has_msgid)
			return env_fail(err, errlen,
					"msgid must be an integer from 0 to "
					"4294967295");
		i = nodes[i].next;
	}

	if (msg->kind == PROTO_RESPONSE) {
		msg->error = i;
		if (nodes[i].type != PROTO_NIL && nodes[i].type != PROTO_MAP)
			return env_fail(err, errlen,
					"response error must be nil or a map");
		msg->result = nodes[i].next;
		return 0;
	}

	/* Many MessagePack-RPC clients send the method name as bin (or the
	 * old raw type): both are accepted. */
	if ((nodes[i].type != PROTO_STR && nodes[i].type != PROTO_BIN) ||
	    nodes[i].v.s.len == 0)
		return env_fail(err, errlen, "method must be a non-empty string");
	if (memchr(nodes[i].v.s.p, '\0', nodes[i].v.s.len) != NULL ||
	    !utf8_valid(nodes[i].v.s.p, nodes[i].v.s.len))
		return env_fail(err, errlen,
				"method must be valid UTF-8 without NUL bytes");
	msg->method = nodes[i].v.s;
	i = nodes[i].next;
	if (nodes[i].type != PROTO_ARRAY && nodes[i].type != PROTO_MAP)
		return env_fail(err, errlen, "params must be an array or a map");
	msg->params = i;
	return 0;
}

/* --- node helpers ------------------------------------------------------- */

bool proto_str_eq(const struct proto_node *n, const char *s)
{
	size_t len = strlen(s);

	return n->type == PROTO_STR && n->v.s.len == len &&
	       (len == 0 || memcmp(n->v.s.p, s, len) == 0);
}

uint32_t proto_map_get(const struct proto_doc *doc, uint32_t map,
		       const char *key)
{
	const struct proto_node *nodes = doc->nodes;
	uint32_t i, k;

	if (map >= doc->n || nodes[map].type != PROTO_MAP || nodes[map].raw)
		return 0;
	i = map + 1;
	for (k = 0; k < nodes[map].count; k++) {
		uint32_t val = nodes[i].next;

		if (proto_str_eq(&nodes[i], key))
			return val;
		i = nodes[val].next;
	}
	return 0;
}

#define NSEC_PER_SEC 1000000000U

int proto_node_timestamp(const struct proto_node *n, usec_t *out)
{
	const uint8_t *p = (const uint8_t *)n->v.s.p;
	int64_t sec, usec, frac;
	uint32_t nsec;

	if (n->type != PROTO_EXT || n->ext_type != -1)
		return -1;
	switch (n->v.s.len) {
	case 4:		/* timestamp 32: uint32 seconds */
		sec = load32(p);
		nsec = 0;
		break;
	case 8: {	/* timestamp 64: nsec:30 | sec:34 */
		uint64_t v = load64(p);

		nsec = (uint32_t)(v >> 34);
		sec = (int64_t)(v & 0x3ffffffffULL);
		break;
	}
	case 12:	/* timestamp 96: nsec:u32, sec:i64 */
		nsec = load32(p);
		sec = (int64_t)load64(p + 4);
		break;
	default:
		return -1;
	}
	if (nsec >= NSEC_PER_SEC)
		return -1;
	/* sec * 10^6 + frac, without overflowing on the way near INT64_MIN */
	frac = nsec / 1000;
	if (sec < 0 && frac > 0) {
		sec++;
		frac -= USEC_PER_SEC;
	}
	if (__builtin_mul_overflow(sec, USEC_PER_SEC, &usec) ||
	    __builtin_add_overflow(usec, frac, &usec))
		return -1;
	*out = usec;
	return 0;
}

/* --- encoding ----------------------------------------------------------- */

int proto_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
	return msgpack_pack_str_with_body(pk, s, len);
}

int proto_pack_cstr(msgpack_packer *pk, const char *s)
{
	return msgpack_pack_str_with_body(pk, s, strlen(s));
}

int proto_pack_timestamp(msgpack_packer *pk, usec_t t)
{
	int64_t sec = t / USEC_PER_SEC;
	int64_t rem = t % USEC_PER_SEC;
	uint8_t b[12];
	uint32_t nsec;

	if (rem < 0) {		/* floor, so that nsec is never negative */
		rem += USEC_PER_SEC;
		sec--;
	}
	nsec = (uint32_t)rem * 1000U;

	if ((uint64_t)sec >> 34 == 0) {
		uint64_t v = (uint64_t)nsec << 34 | (uint64_t)sec;

		if (v >> 32 == 0) {	/* timestamp 32 */
			for (int k = 0; k < 4; k++)
				b[k] = (uint8_t)(v >> (24 - 8 * k));
			if (msgpack_pack_ext(pk, 4, -1) != 0)
				return -1;
			return msgpack_pack_ext_body(pk, b, 4);
		}
		for (int k = 0; k < 8; k++)	/* timestamp 64 */
			b[k] = (uint8_t)(v >> (56 - 8 * k));
		if (msgpack_pack_ext(pk, 8, -1) != 0)
			return -1;
		return msgpack_pack_ext_body(pk, b, 8);
	}
	/* timestamp 96: negative or far-future seconds */
	for (int k = 0; k < 4; k++)
		b[k] = (uint8_t)(nsec >> (24 - 8 * k));
	for (int k = 0; k < 8; k++)
		b[4 + k] = (uint8_t)((uint64_t)sec >> (56 - 8 * k));
	if (msgpack_pack_ext(pk, 12, -1) != 0)
		return -1;
	return msgpack_pack_ext_body(pk, b, 12);
}

int proto_pack_result_head(msgpack_packer *pk, uint32_t msgid)
{
	if (msgpack_pack_array(pk, 4) != 0 ||
	    msgpack_pack_uint8(pk, PROTO_RESPONSE) != 0 ||
	    msgpack_pack_uint32(pk, msgid) != 0 ||
	    msgpack_pack_nil(pk) != 0)
		return -1;
	return 0;
}

int proto_pack_error(msgpack_packer *pk, bool has_msgid, uint32_t msgid,
		     const char *code, const char *message)
{
	if (msgpack_pack_array(pk, 4) != 0 ||
	    msgpack_pack_uint8(pk, PROTO_RESPONSE) != 0)
		return -1;
	if ((has_msgid ? msgpack_pack_uint32(pk, msgid)
		       : msgpack_pack_nil(pk)) != 0)
		return -1;
	if (msgpack_pack_map(pk, 2) != 0 ||
	    proto_pack_cstr(pk, "code") != 0 ||
	    proto_pack_cstr(pk, code) != 0 ||
	    proto_pack_cstr(pk, "message") != 0 ||
	    proto_pack_cstr(pk, message) != 0 ||
	    msgpack_pack_nil(pk) != 0)
		return -1;
	return 0;
}

int proto_pack_request_head(msgpack_packer *pk, uint32_t msgid,
			    const char *method)
{
	if (msgpack_pack_array(pk, 4) != 0 ||
	    msgpack_pack_uint8(pk, PROTO_REQUEST) != 0 ||
	    msgpack_pack_uint32(pk, msgid) != 0 ||
	    proto_pack_cstr(pk, method) != 0)
		return -1;
	return 0;
}
