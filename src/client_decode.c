/*
 * client_decode.c - libconvclient: a response frame decoded into msgpack-c
 * objects without msgpack-c's unpacker, each array's and map's exact bytes
 * kept beside it (pure).
 *
 * msgpack-c's unpacker stops at MSGPACK_EMBED_STACK_SIZE levels (32, fixed
 * when msgpack-c was compiled) and forgets how each value was encoded.
 * Here the frame is read with mpread (the reader convd uses for stored
 * structured values) in one loop: the open containers are an explicit
 * stack (on the C stack for 32 levels, then on the heap, grown as needed
 * up to CLIENT_DECODE_MAX_DEPTH), so memory is O(depth) besides the
 * objects themselves, and nothing recurses.
 *
 * The objects are the ones msgpack-c's unpacker makes (strings, bins and
 * extensions point into the frame; arrays and maps live in the zone).
 * Every array's and map's element array in the zone comes right after a
 * struct client_span saying where the container's bytes lie in the frame:
 * client_decode_span() gives them back, which is how structured content,
 * metadata and states reach the caller byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "mpread.h"

/* What precedes every container's elements in the zone. */
struct client_span {
	uint64_t magic;
	const char *p;		/* the container's first byte in the frame */
	size_t len;		/* its size, header and elements */
};

#define CLIENT_SPAN_MAGIC 0x636f6e7663737061ULL	/* "convcspa" */

/* A container whose elements are being read. */
struct open_container {
	msgpack_object *o;
	struct client_span *span;
	uint64_t left;		/* values still to read (a map's: both) */
	uint32_t next;		/* the next one's index */
};

void client_decode_scalar(msgpack_object *o, const struct mpread_val *v)
{
	memset(o, 0, sizeof(*o));
	switch (v->type) {
	case MPR_NIL:
		o->type = MSGPACK_OBJECT_NIL;
		break;
	case MPR_BOOL:
		o->type = MSGPACK_OBJECT_BOOLEAN;
		o->via.boolean = v->b;
		break;
	case MPR_INT:
		if (v->neg) {
			o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
			o->via.i64 = v->i;
		} else {
			o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
			o->via.u64 = v->u;
		}
		break;
	case MPR_FLOAT:
		o->type = v->f32 ? MSGPACK_OBJECT_FLOAT32
				 : MSGPACK_OBJECT_FLOAT64;
		o->via.f64 = v->f;
		break;
	case MPR_STR:		/* lengths < 2^32: 32-bit length fields */
		o->type = MSGPACK_OBJECT_STR;
		o->via.str.ptr = v->s.p;
		o->via.str.size = (uint32_t)v->s.len;
		break;
	case MPR_BIN:
		o->type = MSGPACK_OBJECT_BIN;
		o->via.bin.ptr = v->s.p;
		o->via.bin.size = (uint32_t)v->s.len;
		break;
	case MPR_EXT:
		o->type = MSGPACK_OBJECT_EXT;
		o->via.ext.type = v->ext_type;
		o->via.ext.ptr = v->s.p;
		o->via.ext.size = (uint32_t)v->s.len;
		break;
	case MPR_ARRAY:
	case MPR_MAP:
		break;		/* containers: see container() */
	}
}

/*
 * A container's object: its elements' room in the zone (made on first
 * use), after its span.  The caller has bounded the count by the frame's
 * size.
 */
static enum client_decode_result container(msgpack_object *o,
					   const struct mpread_val *v,
					   const uint8_t *start,
					   msgpack_zone **zone,
					   struct client_span **spanp)
{
	size_t each = v->type == MPR_MAP ? sizeof(msgpack_object_kv)
					 : sizeof(msgpack_object);
	struct client_span *span;

	if (v->count > (SIZE_MAX - sizeof(*span)) / each)
		return CLIENT_DECODE_NOMEM;
	if (!*zone && !(*zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE)))
		return CLIENT_DECODE_NOMEM;
	span = msgpack_zone_malloc(*zone, sizeof(*span) + v->count * each);
	if (!span)
		return CLIENT_DECODE_NOMEM;
	span->magic = CLIENT_SPAN_MAGIC;
	span->p = (const char *)start;
	span->len = 0;
	memset(o, 0, sizeof(*o));
	if (v->type == MPR_MAP) {
		o->type = MSGPACK_OBJECT_MAP;
		o->via.map.size = v->count;
		o->via.map.ptr = (msgpack_object_kv *)(void *)(span + 1);
	} else {
		o->type = MSGPACK_OBJECT_ARRAY;
		o->via.array.size = v->count;
		o->via.array.ptr = (msgpack_object *)(void *)(span + 1);
	}
	*spanp = span;
	return CLIENT_DECODE_OK;
}

/* Open containers held on the C stack before the heap is used. */
#define LOCAL_DEPTH 32

/* One more open container on the stack: `local` (LOCAL_DEPTH entries)
 * first, then the heap, doubled as needed. */
static enum client_decode_result push(struct open_container **stack,
				      struct open_container *local,
				      size_t *depth, size_t *cap,
				      const struct open_container *top)
{
	if (*depth >= CLIENT_DECODE_MAX_DEPTH)
		return CLIENT_DECODE_DEEP;
	if (*depth == *cap) {
		size_t n = *cap * 2;
		struct open_container *p;

		if (n > CLIENT_DECODE_MAX_DEPTH)
			n = CLIENT_DECODE_MAX_DEPTH;
		p = *stack == local ? malloc(n * sizeof(*p))
				    : realloc(*stack, n * sizeof(*p));
		if (!p)
			return CLIENT_DECODE_NOMEM;
		if (*stack == local)
			memcpy(p, local, *depth * sizeof(*p));
		*stack = p;
		*cap = n;
	}
	(*stack)[(*depth)++] = *top;
	return CLIENT_DECODE_OK;
}

enum client_decode_result client_decode(const char *frame, size_t len,
					msgpack_zone **zone,
					msgpack_object *root)
{
	struct open_container local[LOCAL_DEPTH];
	struct open_container *stack = local;
	size_t depth = 0, cap = LOCAL_DEPTH;
	uint64_t declared = 1;	/* values announced so far, the root's too */
	msgpack_object *slot = root;
	enum client_decode_result res = CLIENT_DECODE_OK;
	struct mpread r;

	mpread_init(&r, frame, len);
	for (;;) {
		const uint8_t *start = r.p;
		struct mpread_val v;
		struct open_container *top;

		if (mpread_next(&r, &v) < 0) {
			res = CLIENT_DECODE_BAD;
			break;
		}
		if (v.type == MPR_ARRAY || v.type == MPR_MAP) {
			struct open_container oc = { slot, NULL, 0, 0 };

			/* Every value announced takes a byte of the frame at
			 * least: counts beyond that are refused before their
			 * room is made, so the objects take at most 16 bytes
			 * a byte of the frame (and a span a container). */
			declared += v.type == MPR_MAP ? 2 * (uint64_t)v.count
						      : v.count;
			if (declared > len) {
				res = CLIENT_DECODE_BAD;
				break;
			}
			res = container(slot, &v, start, zone, &oc.span);
			if (res != CLIENT_DECODE_OK)
				break;
			oc.left = v.type == MPR_MAP ? 2 * (uint64_t)v.count
						    : v.count;
			if (oc.left == 0)
				oc.span->len = (size_t)(r.p - start);
			else if ((res = push(&stack, local, &depth, &cap,
					     &oc)) != CLIENT_DECODE_OK)
				break;
		} else {
			client_decode_scalar(slot, &v);
		}
		/* close the containers that are complete */
		while (depth > 0 && stack[depth - 1].left == 0) {
			top = &stack[--depth];
			top->span->len = (size_t)((const char *)r.p -
						  top->span->p);
		}
		if (depth == 0)
			break;
		top = &stack[depth - 1];
		top->left--;
		if (top->o->type == MSGPACK_OBJECT_ARRAY) {
			slot = &top->o->via.array.ptr[top->next++];
		} else {
			msgpack_object_kv *kv =
				&top->o->via.map.ptr[top->next / 2];

			slot = top->next % 2 ? &kv->val : &kv->key;
			top->next++;
		}
	}
	if (stack != local)
		free(stack);
	if (res == CLIENT_DECODE_OK && r.p != r.end)
		res = CLIENT_DECODE_BAD;	/* bytes after the value */
	return res;
}

const void *client_decode_span(const msgpack_object *o, size_t *len)
{
	const void *elems;
	const struct client_span *span;

	if (o->type == MSGPACK_OBJECT_ARRAY)
		elems = o->via.array.ptr;
	else if (o->type == MSGPACK_OBJECT_MAP)
		elems = o->via.map.ptr;
	else
		return NULL;
	if (!elems)
		return NULL;
	span = (const struct client_span *)elems - 1;
	if (span->magic != CLIENT_SPAN_MAGIC)
		return NULL;
	*len = span->len;
	return span->p;
}
