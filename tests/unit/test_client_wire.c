/*
 * test_client_wire.c - libconvclient's wire format (client_wire.c), alone:
 * where a msgpack frame ends (incrementally, bounded), the msgid and
 * scalar result of a response read without msgpack-c (checked against
 * msgpack-c's own decoding), timestamps, map lookups, error objects.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "common.h"
#include "tap.h"

static enum client_wire_scan_result scan_all(const void *p, size_t n,
					     size_t limit, size_t *size)
{
	struct client_wire_scan_state st = { 0, 1 };
	enum client_wire_scan_result r;

	r = client_wire_scan(p, n, limit, &st);
	*size = st.pos;
	return r;
}

static void test_scan(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct client_wire_scan_state st = { 0, 1 };
	enum client_wire_scan_result r = CLIENT_WIRE_MORE;
	size_t size, fed;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_uint32(&pk, 70000);
	msgpack_pack_nil(&pk);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "content", 7);
	msgpack_pack_str_with_body(&pk, "x", 1);
	msgpack_pack_str_with_body(&pk, "list", 4);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_bin_with_body(&pk, "\0\1\2", 3);
	msgpack_pack_ext_with_body(&pk, "12345678", 8, -1);
	/* a second frame right behind the first */
	msgpack_pack_array(&pk, 0);

	is_int(scan_all(sb.data, sb.size, 1 << 20, &size), CLIENT_WIRE_DONE,
	       "a whole frame is found");
	is_int(size, sb.size - 1, "it ends where the next one starts");
	/* the same frame a byte at a time */
	for (fed = 1; fed <= sb.size - 1; fed++) {
		r = client_wire_scan((const unsigned char *)sb.data, fed,
				     1 << 20, &st);
		if (r != CLIENT_WIRE_MORE)
			break;
	}
	ok(r == CLIENT_WIRE_DONE && fed == sb.size - 1 &&
		   st.pos == sb.size - 1,
	   "resumed byte by byte, it ends at the same place");
	is_int(scan_all(sb.data, sb.size - 1, sb.size - 2, &size),
	       CLIENT_WIRE_TOO_LARGE, "a frame over the limit is refused");
	is_int(scan_all(sb.data, 4, sb.size - 1, &size), CLIENT_WIRE_MORE,
	       "a frame within the limit, cut short: more");
	is_int(scan_all("\x94\x01\xc1", 3, 100, &size), CLIENT_WIRE_BAD,
	       "0xc1 is never msgpack");
	/* an array announcing 2^32-1 elements cannot fit 1 MiB */
	is_int(scan_all("\xdd\xff\xff\xff\xff", 5, 1 << 20, &size),
	       CLIENT_WIRE_TOO_LARGE, "a huge announced array is refused at "
	       "once");
	is_int(scan_all("\xdb\xff\xff\xff\xff", 5, 1 << 20, &size),
	       CLIENT_WIRE_TOO_LARGE, "a huge announced string is refused "
	       "at once");
	msgpack_sbuffer_destroy(&sb);
}

/* [1, msgid, nil, result] packed with msgpack-c, result by pack(). */
static void frame(msgpack_sbuffer *sb, uint64_t msgid, int how,
		  void (*pack)(msgpack_packer *))
{
	msgpack_packer pk;

	msgpack_sbuffer_clear(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_int(&pk, 1);
	if (how == 0)
		msgpack_pack_uint64(&pk, msgid);
	else
		msgpack_pack_int64(&pk, (int64_t)msgid);
	msgpack_pack_nil(&pk);
	pack(&pk);
}

static void p_small(msgpack_packer *pk) { msgpack_pack_int(pk, 7); }
static void p_neg(msgpack_packer *pk) { msgpack_pack_int64(pk, -70000); }
static void p_big(msgpack_packer *pk) { msgpack_pack_uint64(pk, UINT64_MAX); }
static void p_nil(msgpack_packer *pk) { msgpack_pack_nil(pk); }
static void p_true(msgpack_packer *pk) { msgpack_pack_true(pk); }
static void p_str(msgpack_packer *pk)
{
	static char s[300];

	memset(s, 'a', sizeof(s));
	msgpack_pack_str_with_body(pk, s, sizeof(s));
}
static void p_fix(msgpack_packer *pk)
{
	msgpack_pack_str_with_body(pk, "pong", 4);
}
static void p_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
static void p_dbl(msgpack_packer *pk) { msgpack_pack_double(pk, 2.5); }

static int same(const msgpack_object *a, const msgpack_object *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case MSGPACK_OBJECT_STR:
		return a->via.str.size == b->via.str.size &&
		       memcmp(a->via.str.ptr, b->via.str.ptr,
			      a->via.str.size) == 0;
	case MSGPACK_OBJECT_BOOLEAN:
		return a->via.boolean == b->via.boolean;
	case MSGPACK_OBJECT_NIL:
		return 1;
	default:
		return a->via.u64 == b->via.u64;
	}
}

static void test_peek_and_scalar(void)
{
	static const struct {
		void (*pack)(msgpack_packer *);
		const char *name;
		int scalar;
	} results[] = {
		{ p_small, "fixint", 1 }, { p_neg, "negative int32", 1 },
		{ p_big, "uint64", 1 }, { p_nil, "nil", 1 },
		{ p_true, "true", 1 }, { p_str, "str16", 1 },
		{ p_fix, "fixstr", 1 }, { p_map, "a map", 0 },
		{ p_dbl, "a float", 0 },
	};
	static const uint64_t ids[] = { 0, 127, 128, 65535, 70000, UINT32_MAX };
	msgpack_sbuffer sb;

	msgpack_sbuffer_init(&sb);
	for (size_t i = 0; i < ARRAY_LEN(ids); i++) {
		for (int how = 0; how < 2; how++) {
			uint32_t msgid = 1;
			size_t hlen = 0;

			frame(&sb, ids[i], how, p_small);
			ok(client_wire_peek_msgid((unsigned char *)sb.data,
						  sb.size, &msgid, &hlen) &&
				   msgid == ids[i] && hlen >= 3 && hlen <= 11,
			   "msgid %llu (%s) read from the frame's head",
			   (unsigned long long)ids[i],
			   how ? "signed format" : "unsigned format");
		}
	}
	frame(&sb, (uint64_t)UINT32_MAX + 1, 0, p_small);
	{
		uint32_t msgid;
		size_t hlen;

		ok(!client_wire_peek_msgid((unsigned char *)sb.data, sb.size,
					   &msgid, &hlen),
		   "a msgid above 2^32-1 is not one");
		ok(!client_wire_peek_msgid((const unsigned char *)
					   "\x94\x00\x01", 3, &msgid, &hlen),
		   "a request is not a response");
		ok(!client_wire_peek_msgid((const unsigned char *)
					   "\x94\x01\xd0\xff", 4, &msgid,
					   &hlen),
		   "a negative msgid is not one");
	}
	for (size_t i = 0; i < ARRAY_LEN(results); i++) {
		msgpack_object o, want;
		msgpack_unpacked up;
		uint32_t msgid;
		size_t hlen, off = 0;
		bool got;

		frame(&sb, 5, 0, results[i].pack);
		client_wire_peek_msgid((unsigned char *)sb.data, sb.size,
				       &msgid, &hlen);
		got = client_wire_scalar((unsigned char *)sb.data, sb.size,
					 hlen, &o);
		msgpack_unpacked_init(&up);
		msgpack_unpack_next(&up, sb.data, sb.size, &off);
		want = up.data.via.array.ptr[3];
		if (results[i].scalar)
			ok(got && same(&o, &want),
			   "%s: decoded as msgpack-c decodes it",
			   results[i].name);
		else
			ok(!got, "%s: left to msgpack-c", results[i].name);
		msgpack_unpacked_destroy(&up);
		/* a frame one byte short is never a scalar result */
		ok(!client_wire_scalar((unsigned char *)sb.data, sb.size - 1,
				       hlen, &o) || sb.size - 1 == hlen,
		   "%s: cut short, refused", results[i].name);
	}
	msgpack_sbuffer_destroy(&sb);
}

static msgpack_object ext(const char *p, uint32_t n, int8_t type)
{
	msgpack_object o;

	memset(&o, 0, sizeof(o));
	o.type = MSGPACK_OBJECT_EXT;
	o.via.ext.type = type;
	o.via.ext.ptr = p;
	o.via.ext.size = n;
	return o;
}

static void test_timestamps(void)
{
	msgpack_object o;
	int64_t us = 0;

	o = ext("\x00\x00\x00\x3c", 4, -1);
	ok(convc_object_timestamp(&o, &us) && us == 60000000,
	   "timestamp 32: seconds");
	/* 64-bit form: nsec 123456789 << 34 | sec 1 */
	{
		uint64_t v = (uint64_t)123456789 << 34 | 1;
		char b[8];

		for (int i = 0; i < 8; i++)
			b[i] = (char)(v >> (56 - 8 * i));
		o = ext(b, 8, -1);
		ok(convc_object_timestamp(&o, &us) && us == 1123456,
		   "timestamp 64: nanoseconds truncated to microseconds");
	}
	o = ext("\x00\x00\x03\xe8\xff\xff\xff\xff\xff\xff\xff\xff", 12, -1);
	ok(convc_object_timestamp(&o, &us) && us == -1000000 + 1,
	   "timestamp 96: a negative second and its nanoseconds");
	o = ext("\x3b\x9a\xca\x00\x00\x00\x00\x00\x00\x00\x00\x00", 12, -1);
	ok(!convc_object_timestamp(&o, &us), "nanoseconds of 1e9 refused");
	o = ext("\x00\x00\x00\x00\x7f\xff\xff\xff\xff\xff\xff\xff", 12, -1);
	ok(!convc_object_timestamp(&o, &us), "seconds out of range refused");
	o = ext("\x00\x00\x00\x3c", 4, 1);
	ok(!convc_object_timestamp(&o, &us), "another extension type");
	o = ext("\x00\x00\x3c", 3, -1);
	ok(!convc_object_timestamp(&o, &us), "a size no form has");
}

static void test_map_and_error(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_unpacked up;
	struct convc_error e;
	const msgpack_object *v;
	int64_t i = 0;
	char *s;
	size_t off = 0, len = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str_with_body(&pk, "code", 4);
	msgpack_pack_str_with_body(&pk, "invalid_params", 14);
	msgpack_pack_str_with_body(&pk, "message", 7);
	msgpack_pack_str_with_body(&pk, "role: not one of\0x", 18);
	msgpack_pack_int(&pk, 5);
	msgpack_pack_int(&pk, -3);
	msgpack_unpacked_init(&up);
	msgpack_unpack_next(&up, sb.data, sb.size, &off);

	v = convc_map_get(&up.data, "code");
	ok(v && v->type == MSGPACK_OBJECT_STR, "map_get finds a string key");
	ok(!convc_map_get(&up.data, "cod"), "not a prefix of it");
	ok(!convc_map_get(&up.data, "5"), "nor an integer key's text");
	ok(!convc_map_get(v, "x"), "map_get of a non-map: NULL");
	ok(client_wire_int(&up.data.via.map.ptr[2].val, &i) && i == -3,
	   "a negative integer");
	ok(!client_wire_int(v, &i) && !client_wire_int(NULL, &i),
	   "a string or nothing is not an integer");
	s = client_wire_strdup(v, &len);
	ok(s && strcmp(s, "invalid_params") == 0 && len == 14,
	   "strdup of a string object");
	free(s);
	client_wire_error(&up.data, &e);
	is_str(e.code, "invalid_params", "error code");
	is_str(e.message, "role: not one of", "error message stops at a NUL");
	client_wire_error(v, &e);
	ok(strcmp(e.code, "error") == 0 &&
		   strcmp(e.message, "invalid_params") == 0,
	   "a bare string error");
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	test_scan();
	test_peek_and_scalar();
	test_timestamps();
	test_map_and_error();
	return tap_done();
}
