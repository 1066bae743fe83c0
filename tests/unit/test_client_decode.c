/*
 * test_client_decode.c - libconvclient's decoder (client_decode.c), alone:
 * the objects it makes are the ones msgpack-c's unpacker makes (checked
 * against it, every format and width, the shortest and the longer ones),
 * every array and map keeps its exact bytes, nesting is bounded by
 * CLIENT_DECODE_MAX_DEPTH and not by msgpack-c's 32, and bytes that are
 * not one msgpack value are refused, never read past.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "common.h"
#include "tap.h"

/* Bytes from hex ("dc0002" ...); spaces are skipped. */
static size_t unhex(const char *h, unsigned char *out)
{
	size_t n = 0;

	while (*h) {
		if (*h == ' ') {
			h++;
			continue;
		}
		out[n++] = (unsigned char)(hex_digit(h[0]) << 4 |
					   hex_digit(h[1]));
		h += 2;
	}
	return n;
}

/* Decodes p[0..n) with both decoders; 1 when the objects are equal. */
static int same_as_msgpack_c(const void *p, size_t n, const char *what)
{
	msgpack_zone *zone = NULL, mz;
	msgpack_object mine, theirs;
	size_t off = 0;
	int eq = 0;

	msgpack_zone_init(&mz, 1024);
	if (client_decode(p, n, &zone, &mine) == CLIENT_DECODE_OK &&
	    msgpack_unpack(p, n, &off, &mz, &theirs) ==
		    MSGPACK_UNPACK_SUCCESS &&
	    off == n)
		eq = msgpack_object_equal(mine, theirs) &&
		     mine.type == theirs.type;
	ok(eq, "%s: the objects msgpack-c makes", what);
	if (zone)
		msgpack_zone_free(zone);
	msgpack_zone_destroy(&mz);
	return eq;
}

static void test_every_format(void)
{
	static const char *const values[] = {
		/* scalars, each width and sign */
		"c0", "c2", "c3", "00", "7f", "e0", "ff",
		"cc01", "ccff", "cd0001", "cdffff", "ce00000001", "ceffffffff",
		"cf0000000000000001", "cfffffffffffffffff",
		"d001", "d0ff", "d18000", "d1ffff", "d27fffffff", "d2ffffffff",
		"d30000000000000001", "d3ffffffffffffffff",
		"d38000000000000000",
		"ca3fc00000", "cb3ff8000000000000",
		"a0", "a3616263", "d90161", "da000161", "db0000000161",
		"c40100", "c5000100", "c600000000",
		"d4ff01", "d5010102", "d6ff00000001", "d7ff0000000000000001",
		"d8010102030405060708090a0b0c0d0e0f10",
		"c701050a", "c80000ff", "c900000002010102",
		/* containers, short and long headers */
		"90", "80", "dc0000", "dd00000000", "de0000", "df00000000",
		"93 01 a161 c403010203",
		"dc0002 d30000000000000001 c40161",
		"82 a474657874 a26869 a474797065 d90474657874",
		"df00000001 a161 dd00000002 90 80",
		"91 92 93 c0 c2 c3 81 00 81 01 90",
	};
	unsigned char buf[256];

	for (size_t i = 0; i < ARRAY_LEN(values); i++) {
		size_t n = unhex(values[i], buf);

		same_as_msgpack_c(buf, n, values[i]);
	}
}

/* The span of o must be exactly hex. */
static void span_is(const msgpack_object *o, const char *hex,
		    const char *what)
{
	unsigned char want[256];
	size_t wn = unhex(hex, want), len = 0;
	const void *p = client_decode_span(o, &len);

	ok(p && len == wn && memcmp(p, want, wn) == 0,
	   "%s: its exact bytes", what);
}

static void test_spans(void)
{
	/* {"content": [int64 1, {"k": bin "ab"}, [] as array16],
	 *  "metadata": {} as map32, "n": 1} */
	const char *hex = "83"
			  "a7636f6e74656e74"
			  "93 d30000000000000001 81 a16b c4026162 dc0000"
			  "a86d65746164617461"
			  "df00000000"
			  "a16e 01";
	unsigned char buf[256];
	size_t n = unhex(hex, buf);
	msgpack_zone *zone = NULL;
	msgpack_object o;
	const msgpack_object *content, *meta;
	size_t len;

	is_int(client_decode((const char *)buf, n, &zone, &o),
	       CLIENT_DECODE_OK, "a map with non-shortest values");
	span_is(&o, hex, "the whole map");
	content = convc_map_get(&o, "content");
	meta = convc_map_get(&o, "metadata");
	ok(content && content->type == MSGPACK_OBJECT_ARRAY &&
	   content->via.array.size == 3, "content is the array");
	if (content && content->type == MSGPACK_OBJECT_ARRAY &&
	    content->via.array.size == 3) {
		span_is(content,
			"93 d30000000000000001 81 a16b c4026162 dc0000",
			"content");
		span_is(&content->via.array.ptr[1], "81 a16b c4026162",
			"an element map");
		span_is(&content->via.array.ptr[2], "dc0000",
			"an empty array16");
		is_int(content->via.array.ptr[0].via.u64, 1, "int64 1 is 1");
	}
	ok(meta && meta->type == MSGPACK_OBJECT_MAP &&
	   meta->via.map.size == 0, "metadata is an empty map");
	if (meta)
		span_is(meta, "df00000000", "an empty map32");
	ok(!client_decode_span(convc_map_get(&o, "n"), &len),
	   "a scalar has no span");
	msgpack_zone_free(zone);
}

/* depth arrays, one inside the other, around "x". */
static unsigned char *nested(size_t depth, size_t *n)
{
	unsigned char *p = malloc(depth + 2);

	if (!p)
		abort();
	memset(p, 0x91, depth);
	p[depth] = 0xa1;
	p[depth + 1] = 'x';
	*n = depth + 2;
	return p;
}

static void test_depth(void)
{
	static const size_t depths[] = { 33, 64, 67, CLIENT_DECODE_MAX_DEPTH };

	for (size_t i = 0; i < ARRAY_LEN(depths); i++) {
		size_t n, len = 0, d = depths[i];
		unsigned char *p = nested(d, &n);
		msgpack_zone *zone = NULL;
		msgpack_object o;
		const msgpack_object *e;
		int r = client_decode((const char *)p, n, &zone, &o);

		is_int(r, CLIENT_DECODE_OK, "%zu levels are decoded", d);
		if (r == CLIENT_DECODE_OK) {
			e = &o;
			for (size_t k = 1; k < d; k++)
				e = &e->via.array.ptr[0];
			ok(client_decode_span(e, &len) == (void *)(p + d - 1) &&
			   len == 3, "%zu levels: the innermost array's bytes",
			   d);
			e = &e->via.array.ptr[0];
			ok(e->type == MSGPACK_OBJECT_STR &&
			   e->via.str.size == 1 && e->via.str.ptr[0] == 'x',
			   "%zu levels: the string inside", d);
			ok(client_decode_span(&o, &len) == (void *)p &&
			   len == n, "%zu levels: the whole frame", d);
		}
		if (zone)
			msgpack_zone_free(zone);
		free(p);
	}
	{
		/* msgpack-c's unpacker cannot: why this decoder exists */
		size_t n, off = 0;
		unsigned char *p = nested(33, &n);
		msgpack_zone mz;
		msgpack_object o;

		msgpack_zone_init(&mz, 1024);
		ok(msgpack_unpack((const char *)p, n, &off, &mz, &o) !=
			   MSGPACK_UNPACK_SUCCESS,
		   "msgpack-c's unpacker refuses 33 levels");
		msgpack_zone_destroy(&mz);
		free(p);
	}
	{
		static const size_t deep[] = { CLIENT_DECODE_MAX_DEPTH + 1,
					       100000 };

		for (size_t i = 0; i < ARRAY_LEN(deep); i++) {
			size_t n;
			unsigned char *p = nested(deep[i], &n);
			msgpack_zone *zone = NULL;
			msgpack_object o;

			is_int(client_decode((const char *)p, n, &zone, &o),
			       CLIENT_DECODE_DEEP, "%zu levels are refused",
			       deep[i]);
			if (zone)
				msgpack_zone_free(zone);
			free(p);
		}
	}
}

static void test_refused(void)
{
	static const char *const bad[] = {
		"c1",			/* never used */
		"92 01",		/* an element missing */
		"a3 6162",		/* a string cut short */
		"dd ffffffff 00",	/* 4G elements announced */
		"df ffffffff 00",
		"db fffffff0 61",	/* a 4 GB string announced */
		"c6 fffffff0 61",
		"c9 fffffff0 01 61",
		"cb 3ff8",		/* a float cut short */
		"91 c1",		/* inside a container */
		"01 02",		/* two values */
		"",
	};
	unsigned char buf[64];

	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		size_t n = unhex(bad[i], buf);
		msgpack_zone *zone = NULL;
		msgpack_object o;

		is_int(client_decode((const char *)buf, n, &zone, &o),
		       CLIENT_DECODE_BAD, "refused: \"%s\"", bad[i]);
		if (zone)
			msgpack_zone_free(zone);
	}
}

/* 100,000 values in one array, each with its object. */
static void test_many_values(void)
{
	const size_t count = 100000;
	unsigned char *p = malloc(5 + count * 2);
	msgpack_zone *zone = NULL;
	msgpack_object o;
	size_t n = 0, len = 0, i;

	if (!p)
		abort();
	p[n++] = 0xdd;
	p[n++] = (unsigned char)(count >> 24);
	p[n++] = (unsigned char)(count >> 16);
	p[n++] = (unsigned char)(count >> 8);
	p[n++] = (unsigned char)count;
	for (i = 0; i < count; i++) {
		p[n++] = 0x91;		/* [i % 128] */
		p[n++] = (unsigned char)(i % 128);
	}
	is_int(client_decode((const char *)p, n, &zone, &o), CLIENT_DECODE_OK,
	       "an array of 100,000 arrays");
	ok(o.via.array.size == count, "100,000 elements");
	for (i = 0; i < count; i++)
		if (o.via.array.ptr[i].via.array.ptr[0].via.u64 != i % 128 ||
		    client_decode_span(&o.via.array.ptr[i], &len) !=
			    (void *)(p + 5 + 2 * i))
			break;
	is_int(i, count, "every element and its bytes");
	same_as_msgpack_c(p, n, "100,000 arrays");
	msgpack_zone_free(zone);
	free(p);
}

/* Counts that the frame cannot hold, level after level: each is within
 * the bytes left, their sum is not; refused before their room is made. */
static void test_announced(void)
{
	unsigned char p[400];
	size_t n = 0;
	msgpack_zone *zone = NULL;
	msgpack_object o;

	for (int i = 0; i < 50; i++) {
		p[n++] = 0xdc;		/* array 16 of 200 */
		p[n++] = 0;
		p[n++] = 200;
	}
	memset(p + n, 0xc0, sizeof(p) - n);
	is_int(client_decode((const char *)p, sizeof(p), &zone, &o),
	       CLIENT_DECODE_BAD, "10,000 values announced in 400 bytes");
	if (zone)
		msgpack_zone_free(zone);
}

int main(void)
{
	test_every_format();
	test_spans();
	test_depth();
	test_refused();
	test_many_values();
	test_announced();
	return tap_done();
}
