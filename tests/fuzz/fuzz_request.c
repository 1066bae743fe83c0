/*
 * fuzz_request.c - libFuzzer target for convd's request read path.
 *
 * The input is a byte stream as a client would send it.  Frames are decoded
 * one after another (as the server does), each envelope is checked, the
 * method looked up and its params validated, and a reply is packed: an
 * error, or a result echoing the validated arguments.  Every reply is then
 * decoded again and must be a well-formed response.
 *
 * Frames are decoded with convd's own request limits (proto_request_limits):
 * the envelope and params are nodes, a parameter's array or map one raw
 * node whose bytes are read again (content.h: depth, text) as convd does.
 *
 * Our decoder is also checked against msgpack-c's unpacker: where ours
 * accepts an object, msgpack-c must read the same bytes into the same tree
 * (a raw node: the same value from its bytes); where ours says incomplete
 * or 0xc1, msgpack-c must agree (unless msgpack-c's own depth limit, 32,
 * stops it first).
 *
 * Build: ./configure --enable-fuzzing CC=clang && make tests/fuzz/fuzz_request
 * Run:   tests/fuzz/fuzz_request -max_total_time=300 SRCDIR/tests/fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content.h"
#include "mpread.h"
#include "proto.h"
#include "utf8.h"
#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* proto_request_limits(64 KiB), set on the first input */
static struct proto_limits LIM;

/* Replies are ours: decode them with room to spare. */
static const struct proto_limits REPLY_LIM = {
	.max_frame = 1 << 20,
	.max_depth = PROTO_MAX_DEPTH,	/* stored values spliced in */
	.max_nodes = PROTO_MAX_NODES,
	.max_container = PROTO_DEFAULT_CONTAINER,
};

static const struct validate_limits VLIM = { .max_content = 16 * 1024 };

static struct proto_doc doc, reply;

#define CHECK(cond)                                                      \
	do {                                                             \
		if (!(cond)) {                                           \
			fprintf(stderr, "%s:%d: check failed: %s\n",     \
				__FILE__, __LINE__, #cond);              \
			abort();                                         \
		}                                                        \
	} while (0)

/* Equal bytes; an empty string may be a NULL pointer (msgpack-c gives
 * NULL for a zero-length str/bin/ext), and memcmp(NULL, ..., 0) is
 * undefined behaviour. */
static int same_bytes(const void *a, const void *b, size_t n)
{
	return n == 0 || memcmp(a, b, n) == 0;
}

/* Whether o holds a NaN (not equal to itself: msgpack_object_equal). */
static bool has_nan(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return o->via.f64 != o->via.f64;
	case MSGPACK_OBJECT_ARRAY:
		for (uint32_t k = 0; k < o->via.array.size; k++)
			if (has_nan(&o->via.array.ptr[k]))
				return true;
		return false;
	case MSGPACK_OBJECT_MAP:
		for (uint32_t k = 0; k < o->via.map.size; k++)
			if (has_nan(&o->via.map.ptr[k].key) ||
			    has_nan(&o->via.map.ptr[k].val))
				return true;
		return false;
	default:
		return false;
	}
}

/* A container node's bytes are the value o. */
static void same_span(const msgpack_object *o, const struct proto_node *n)
{
	msgpack_unpacked up;
	size_t off = 0;

	msgpack_unpacked_init(&up);
	CHECK(msgpack_unpack_next(&up, n->v.s.p, n->v.s.len, &off) ==
	      MSGPACK_UNPACK_SUCCESS);
	CHECK(off == n->v.s.len);
	CHECK(has_nan(o) || msgpack_object_equal(up.data, *o));
	msgpack_unpacked_destroy(&up);
}

/* Same tree?  Returns the node index after o's subtree. */
static uint32_t same(const msgpack_object *o, uint32_t i)
{
	const struct proto_node *n;
	uint32_t j = i + 1;

	CHECK(i < doc.n);
	n = &doc.nodes[i];
	if (o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_MAP)
		same_span(o, n);	/* its bytes, raw or not */
	if (n->raw) {
		CHECK((o->type == MSGPACK_OBJECT_ARRAY && n->type == PROTO_ARRAY &&
		       n->count == o->via.array.size) ||
		      (o->type == MSGPACK_OBJECT_MAP && n->type == PROTO_MAP &&
		       n->count == o->via.map.size));
		CHECK(n->next == j);
		return j;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		CHECK(n->type == PROTO_NIL);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		CHECK(n->type == PROTO_BOOL && n->v.b == o->via.boolean);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			CHECK(n->type == PROTO_UINT && n->v.u == o->via.u64);
		else
			CHECK(n->type == PROTO_INT &&
			      n->v.i == (int64_t)o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		CHECK(n->type == PROTO_INT && n->v.i == o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		CHECK(n->type == PROTO_FLOAT &&
		      memcmp(&n->v.f, &o->via.f64, sizeof(double)) == 0);
		break;
	case MSGPACK_OBJECT_STR:
		CHECK(n->type == PROTO_STR && n->v.s.len == o->via.str.size &&
		      same_bytes(n->v.s.p, o->via.str.ptr, n->v.s.len));
		break;
	case MSGPACK_OBJECT_BIN:
		CHECK(n->type == PROTO_BIN && n->v.s.len == o->via.bin.size &&
		      same_bytes(n->v.s.p, o->via.bin.ptr, n->v.s.len));
		break;
	case MSGPACK_OBJECT_EXT:
		CHECK(n->type == PROTO_EXT && n->ext_type == o->via.ext.type &&
		      n->v.s.len == o->via.ext.size &&
		      same_bytes(n->v.s.p, o->via.ext.ptr, n->v.s.len));
		break;
	case MSGPACK_OBJECT_ARRAY:
		CHECK(n->type == PROTO_ARRAY && n->count == o->via.array.size);
		for (uint32_t k = 0; k < o->via.array.size; k++)
			j = same(&o->via.array.ptr[k], j);
		break;
	case MSGPACK_OBJECT_MAP:
		CHECK(n->type == PROTO_MAP && n->count == o->via.map.size);
		for (uint32_t k = 0; k < o->via.map.size; k++) {
			j = same(&o->via.map.ptr[k].key, j);
			j = same(&o->via.map.ptr[k].val, j);
		}
		break;
	}
	CHECK(n->next == j);
	return j;
}

static void compare_with_msgpack_c(const uint8_t *buf, size_t len,
				   enum proto_status st, size_t used)
{
	msgpack_unpacked up;
	msgpack_unpack_return r;
	size_t off = 0;

	/* Limit errors are ours alone; and msgpack-c would allocate what
	 * a refused header announces. */
	if (st != PROTO_OK && st != PROTO_INCOMPLETE && st != PROTO_ERR_SYNTAX)
		return;
	msgpack_unpacked_init(&up);
	r = msgpack_unpack_next(&up, (const char *)buf, len, &off);
	if (r == MSGPACK_UNPACK_NOMEM_ERROR) {
		/* msgpack-c's stack holds 32 levels; ours PROTO_MAX_DEPTH */
		msgpack_unpacked_destroy(&up);
		return;
	}
	switch (st) {
	case PROTO_OK:
		CHECK(r == MSGPACK_UNPACK_SUCCESS);
		CHECK(off == used);
		CHECK(same(&up.data, 0) == doc.n);
		break;
	case PROTO_INCOMPLETE:
		CHECK(r == MSGPACK_UNPACK_CONTINUE);
		break;
	default:
		CHECK(r == MSGPACK_UNPACK_PARSE_ERROR);
		break;
	}
	msgpack_unpacked_destroy(&up);
}

/* Touches every node through the read helpers. */
static void walk(void)
{
	for (uint32_t i = 0; i < doc.n; i++) {
		const struct proto_node *n = &doc.nodes[i];
		usec_t t;

		CHECK(n->next > i && n->next <= doc.n);
		CHECK(n->type != PROTO_ARRAY && n->type != PROTO_MAP ? !n->raw
		      : n->raw || n->count == 0 || n->next > i + 1);
		switch (n->type) {
		case PROTO_STR:
			(void)utf8_valid(n->v.s.p, n->v.s.len);
			(void)proto_str_eq(n, "user_id");
			break;
		case PROTO_EXT:
			if (proto_node_timestamp(n, &t) == 0)
				CHECK(n->ext_type == -1);
			break;
		case PROTO_MAP:
			if (proto_map_get(&doc, i, "user_id") != 0)
				CHECK(n->count > 0 && !n->raw);
			/* fall through */
		case PROTO_ARRAY:
			CHECK(n->depth >= 1 && n->v.s.len >= 1);
			if (n->raw) {
				CHECK(n->next == i + 1);
				/* read again as convd reads stored bytes */
				if (n->depth <= MPREAD_MAX_DEPTH)
					CHECK(content_depth(n->v.s,
							    MPREAD_MAX_DEPTH) ==
					      n->depth);
			}
			break;
		default:
			break;
		}
	}
}

/* The reply must be one well-formed response frame. */
static void check_reply(const msgpack_sbuffer *sb, bool has_msgid,
			uint32_t msgid)
{
	struct proto_msg m;
	char err[128];
	size_t used = 0;

	CHECK(proto_decode((const uint8_t *)sb->data, sb->size, &REPLY_LIM,
			   &reply, &used) == PROTO_OK);
	CHECK(used == sb->size);
	CHECK(reply.n >= 5 && reply.nodes[0].type == PROTO_ARRAY &&
	      reply.nodes[0].count == 4);
	if (has_msgid) {
		CHECK(proto_parse_envelope(&reply, &m, err, sizeof(err)) == 0);
		CHECK(m.kind == PROTO_RESPONSE && m.msgid == msgid);
	} else {
		CHECK(reply.nodes[2].type == PROTO_NIL);
	}
}

static void reply_error(msgpack_sbuffer *sb, msgpack_packer *pk,
			bool has_msgid, uint32_t msgid, const char *code,
			const char *message)
{
	/* clients decode str as UTF-8: our messages must be valid */
	CHECK(utf8_valid(message, strlen(message)));
	msgpack_sbuffer_clear(sb);
	CHECK(proto_pack_error(pk, has_msgid, msgid, code, message) == 0);
	check_reply(sb, has_msgid, msgid);
}

static void reply_args(msgpack_sbuffer *sb, msgpack_packer *pk,
		       uint32_t msgid, const struct method_spec *spec,
		       const struct validate_args *args)
{
	msgpack_sbuffer_clear(sb);
	CHECK(proto_pack_result_head(pk, msgid) == 0);
	/* result: [arg..., a timestamp] */
	CHECK(msgpack_pack_array(pk, spec->nparams + 1u) == 0);
	for (int k = 0; k < spec->nparams; k++) {
		const struct validate_arg *a = &args->v[k];

		if (!a->present) {
			CHECK(spec->params[k].required == false);
			CHECK(msgpack_pack_nil(pk) == 0);
		} else if (spec->params[k].kind == METHOD_PK_INT) {
			CHECK(a->i >= spec->params[k].min &&
			      a->i <= spec->params[k].max);
			CHECK(msgpack_pack_int64(pk, a->i) == 0);
		} else if (spec->params[k].kind == METHOD_PK_BOOL) {
			CHECK(a->i == 0 || a->i == 1);
			CHECK((a->i ? msgpack_pack_true(pk)
				    : msgpack_pack_false(pk)) == 0);
		} else if (a->raw) {
			/* spliced back as convd answers stored values;
			 * structured content has a text that fits */
			char text[64 * 1024];

			CHECK(a->s.len <= sizeof(text));
			CHECK(content_text(a->s, text, a->s.len) >= 0);
			CHECK(content_pack(pk, a->s) == 0);
		} else {
			CHECK(a->s.len > 0 && utf8_valid(a->s.p, a->s.len));
			CHECK(memchr(a->s.p, '\0', a->s.len) == NULL);
			CHECK(proto_pack_str(pk, a->s.p, a->s.len) == 0);
		}
	}
	CHECK(proto_pack_timestamp(pk, (usec_t)msgid * 1000003 -
					       ((usec_t)1 << 40)) == 0);
	check_reply(sb, true, msgid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t off = 0;

	if (LIM.max_frame == 0)
		proto_request_limits(&LIM, 64 * 1024);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	while (off < size) {
		const uint8_t *buf = data + off;
		size_t len = size - off, used = 0;
		enum proto_status st;
		struct proto_msg msg;
		const struct method_spec *spec;
		struct validate_args args;
		char err[256];

		st = proto_decode(buf, len, &LIM, &doc, &used);
		compare_with_msgpack_c(buf, len, st, used);
		if (st == PROTO_INCOMPLETE)
			break;
		if (st != PROTO_OK) {
			/* the server answers, then closes the connection */
			reply_error(&sb, &pk, false, 0, "invalid_request",
				    proto_status_str(st));
			break;
		}
		CHECK(used > 0 && used <= len && used <= LIM.max_frame);
		CHECK(doc.n > 0 && doc.n <= LIM.max_nodes &&
		      doc.nodes[0].next == doc.n);
		CHECK(doc.nodes[0].type != PROTO_ARRAY ||
		      (doc.nodes[0].v.s.p == (const char *)buf &&
		       doc.nodes[0].v.s.len == used &&
		       doc.nodes[0].depth <= PROTO_MAX_DEPTH));
		off += used;
		walk();

		if (proto_parse_envelope(&doc, &msg, err, sizeof(err)) != 0) {
			CHECK(strlen(err) > 0);
			reply_error(&sb, &pk, msg.has_msgid, msg.msgid,
				    "invalid_request", err);
			continue;
		}
		if (msg.kind == PROTO_RESPONSE) {
			CHECK(msg.error < doc.n && msg.result < doc.n);
			continue;
		}
		CHECK(msg.params < doc.n && msg.method.len > 0);
		spec = method_find(msg.method.p, msg.method.len);
		if (spec == NULL) {
			if (msg.kind == PROTO_REQUEST)
				reply_error(&sb, &pk, true, msg.msgid,
					    "no_such_method", "no such method");
			continue;
		}
		CHECK(strlen(spec->name) == msg.method.len &&
		      memcmp(spec->name, msg.method.p, msg.method.len) == 0);
		if (validate_params(spec, &doc, msg.params, &VLIM, &args, err,
				    sizeof(err)) != 0) {
			CHECK(strlen(err) > 0);
			if (msg.kind == PROTO_REQUEST)
				reply_error(&sb, &pk, true, msg.msgid,
					    "invalid_params", err);
			continue;
		}
		if (msg.kind == PROTO_REQUEST)
			reply_args(&sb, &pk, msg.msgid, spec, &args);
	}
	msgpack_sbuffer_destroy(&sb);
	return 0;
}
