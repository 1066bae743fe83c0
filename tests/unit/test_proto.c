/*
 * test_proto.c - the msgpack decoder (raw nodes below the request's top
 * levels included), envelopes, timestamps, UTF-8 (utf8.c, the request
 * path's check) and the packing helpers.  Values are encoded with
 * msgpack-c's packer (or by hand for non-minimal encodings) and decoded
 * with ours; random documents are also decoded by msgpack-c's unpacker and
 * the two trees compared.
 */
#include <math.h>
#include <stdlib.h>

#include "proto.h"
#include "tap.h"
#include "utf8.h"

static const struct proto_limits LIM = {
	.max_frame = 1 << 20,
	.max_depth = PROTO_DEFAULT_DEPTH,
	.max_nodes = PROTO_MAX_NODES,
	.max_container = PROTO_DEFAULT_CONTAINER,
};

static struct proto_doc doc;
static msgpack_sbuffer sb;
static msgpack_packer pk;

static int pack_failures;

/* Packing into an sbuffer only fails when out of memory. */
static void must(int rc)
{
	if (rc != 0)
		pack_failures++;
}

static void reset(void)
{
	msgpack_sbuffer_clear(&sb);
}

static enum proto_status dec_lim(const void *buf, size_t len,
				 const struct proto_limits *lim,
				 size_t *consumed)
{
	size_t dummy = (size_t)-1;

	return proto_decode(buf, len, lim, &doc, consumed ? consumed : &dummy);
}

static enum proto_status dec(const void *buf, size_t len, size_t *consumed)
{
	return dec_lim(buf, len, &LIM, consumed);
}

/* Decodes the packer's buffer, expecting one node of `type` whose encoding
 * starts with byte `first`. */
static const struct proto_node *dec_one(const char *what, uint8_t first,
				     enum proto_type type)
{
	size_t used = 0;
	enum proto_status st = dec(sb.data, sb.size, &used);

	ok(sb.size > 0 && (uint8_t)sb.data[0] == first,
	   "%s: msgpack-c wrote format 0x%02x", what, first);
	if (!ok(st == PROTO_OK && used == sb.size && doc.n == 1 &&
		doc.nodes[0].type == type && doc.nodes[0].next == 1,
		"%s: decoded as one node", what)) {
		printf("#   status %s, used %zu of %zu, n %u, type %d\n",
		       proto_status_str(st), used, sb.size, doc.n,
		       (int)doc.nodes[0].type);
		return NULL;
	}
	return &doc.nodes[0];
}

/* --- every format through msgpack-c's packer --------------------------- */

static void check_int(const char *what, uint8_t first, int64_t want)
{
	const struct proto_node *n = dec_one(what, first, PROTO_INT);

	if (n)
		is_int(n->v.i, want, "%s: value", what);
}

static void test_scalars(void)
{
	const struct proto_node *n;

	reset();
	(void)msgpack_pack_nil(&pk);
	dec_one("nil", 0xc0, PROTO_NIL);

	reset();
	(void)msgpack_pack_true(&pk);
	if ((n = dec_one("true", 0xc3, PROTO_BOOL)))
		ok(n->v.b == true, "true: value");
	reset();
	(void)msgpack_pack_false(&pk);
	if ((n = dec_one("false", 0xc2, PROTO_BOOL)))
		ok(n->v.b == false, "false: value");

	reset(); (void)msgpack_pack_int64(&pk, 0);
	check_int("positive fixint 0", 0x00, 0);
	reset(); (void)msgpack_pack_int64(&pk, 127);
	check_int("positive fixint 127", 0x7f, 127);
	reset(); (void)msgpack_pack_int64(&pk, -1);
	check_int("negative fixint -1", 0xff, -1);
	reset(); (void)msgpack_pack_int64(&pk, -32);
	check_int("negative fixint -32", 0xe0, -32);

	reset(); (void)msgpack_pack_uint64(&pk, 200);
	check_int("uint8", 0xcc, 200);
	reset(); (void)msgpack_pack_uint64(&pk, 255);
	check_int("uint8 max", 0xcc, 255);
	reset(); (void)msgpack_pack_uint64(&pk, 60000);
	check_int("uint16", 0xcd, 60000);
	reset(); (void)msgpack_pack_uint64(&pk, 65535);
	check_int("uint16 max", 0xcd, 65535);
	reset(); (void)msgpack_pack_uint64(&pk, 4000000000U);
	check_int("uint32", 0xce, 4000000000LL);
	reset(); (void)msgpack_pack_uint64(&pk, UINT32_MAX);
	check_int("uint32 max", 0xce, UINT32_MAX);
	reset(); (void)msgpack_pack_uint64(&pk, 1ULL << 40);
	check_int("uint64", 0xcf, 1LL << 40);
	reset(); (void)msgpack_pack_uint64(&pk, INT64_MAX);
	check_int("uint64 INT64_MAX", 0xcf, INT64_MAX);

	reset(); (void)msgpack_pack_uint64(&pk, (uint64_t)INT64_MAX + 1);
	if ((n = dec_one("uint64 INT64_MAX+1", 0xcf, PROTO_UINT)))
		ok(n->v.u == (uint64_t)INT64_MAX + 1, "uint64 INT64_MAX+1: value");
	reset(); (void)msgpack_pack_uint64(&pk, UINT64_MAX);
	if ((n = dec_one("uint64 max", 0xcf, PROTO_UINT)))
		ok(n->v.u == UINT64_MAX, "uint64 max: value");

	reset(); (void)msgpack_pack_int64(&pk, -33);
	check_int("int8", 0xd0, -33);
	reset(); (void)msgpack_pack_int64(&pk, -128);
	check_int("int8 min", 0xd0, -128);
	reset(); (void)msgpack_pack_int64(&pk, -30000);
	check_int("int16", 0xd1, -30000);
	reset(); (void)msgpack_pack_int64(&pk, INT16_MIN);
	check_int("int16 min", 0xd1, INT16_MIN);
	reset(); (void)msgpack_pack_int64(&pk, -2000000000);
	check_int("int32", 0xd2, -2000000000);
	reset(); (void)msgpack_pack_int64(&pk, INT32_MIN);
	check_int("int32 min", 0xd2, INT32_MIN);
	reset(); (void)msgpack_pack_int64(&pk, -(1LL << 40));
	check_int("int64", 0xd3, -(1LL << 40));
	reset(); (void)msgpack_pack_int64(&pk, INT64_MIN);
	check_int("int64 min", 0xd3, INT64_MIN);

	/* forced widths: a small value in a wide format */
	reset(); (void)msgpack_pack_fix_uint8(&pk, 5);
	check_int("fix uint8 5", 0xcc, 5);
	reset(); (void)msgpack_pack_fix_uint16(&pk, 5);
	check_int("fix uint16 5", 0xcd, 5);
	reset(); (void)msgpack_pack_fix_uint32(&pk, 5);
	check_int("fix uint32 5", 0xce, 5);
	reset(); (void)msgpack_pack_fix_uint64(&pk, 5);
	check_int("fix uint64 5", 0xcf, 5);
	reset(); (void)msgpack_pack_fix_int8(&pk, 5);
	check_int("fix int8 5", 0xd0, 5);
	reset(); (void)msgpack_pack_fix_int16(&pk, -5);
	check_int("fix int16 -5", 0xd1, -5);
	reset(); (void)msgpack_pack_fix_int32(&pk, 5);
	check_int("fix int32 5", 0xd2, 5);
	reset(); (void)msgpack_pack_fix_int64(&pk, -5);
	check_int("fix int64 -5", 0xd3, -5);

	reset(); (void)msgpack_pack_float(&pk, 1.5f);
	if ((n = dec_one("float32", 0xca, PROTO_FLOAT)))
		ok(n->v.f == 1.5, "float32: value");
	reset(); (void)msgpack_pack_float(&pk, -0.1f);
	if ((n = dec_one("float32 -0.1", 0xca, PROTO_FLOAT)))
		ok(n->v.f == (double)-0.1f, "float32 -0.1: value");
	reset(); (void)msgpack_pack_double(&pk, 3.25e300);
	if ((n = dec_one("float64", 0xcb, PROTO_FLOAT)))
		ok(n->v.f == 3.25e300, "float64: value");
	reset(); (void)msgpack_pack_double(&pk, NAN);
	if ((n = dec_one("float64 NaN", 0xcb, PROTO_FLOAT)))
		ok(isnan(n->v.f), "float64 NaN: value");
	reset(); (void)msgpack_pack_double(&pk, -INFINITY);
	if ((n = dec_one("float64 -inf", 0xcb, PROTO_FLOAT)))
		ok(isinf(n->v.f) && n->v.f < 0, "float64 -inf: value");
}

static char *pattern(size_t len, unsigned seed)
{
	char *p = malloc(len ? len : 1);

	for (size_t i = 0; i < len; i++)
		p[i] = (char)('a' + (i * 7 + seed) % 26);
	return p;
}

/* str / bin of `len` bytes: expect format `first` and header size `hdr`. */
static void check_bytes(bool bin, size_t len, uint8_t first, size_t hdr)
{
	char what[64];
	char *body = pattern(len, (unsigned)len);
	const struct proto_node *n;

	snprintf(what, sizeof(what), "%s of %zu bytes", bin ? "bin" : "str",
		 len);
	reset();
	if (bin)
		(void)msgpack_pack_bin_with_body(&pk, body, len);
	else
		(void)msgpack_pack_str_with_body(&pk, body, len);
	n = dec_one(what, first, bin ? PROTO_BIN : PROTO_STR);
	if (n) {
		ok(n->v.s.len == len && n->v.s.p == sb.data + hdr &&
		   memcmp(n->v.s.p, body, len) == 0,
		   "%s: zero-copy view of the body", what);
	}
	free(body);
}

static void check_ext(size_t len, int8_t type, uint8_t first, size_t hdr)
{
	char what[64];
	char *body = pattern(len, 3);
	const struct proto_node *n;

	snprintf(what, sizeof(what), "ext %d of %zu bytes", type, len);
	reset();
	(void)msgpack_pack_ext_with_body(&pk, body, len, type);
	n = dec_one(what, first, PROTO_EXT);
	if (n) {
		ok(n->ext_type == type && n->v.s.len == len &&
		   n->v.s.p == sb.data + hdr &&
		   memcmp(n->v.s.p, body, len) == 0,
		   "%s: type and payload", what);
	}
	free(body);
}

static void test_bytes(void)
{
	check_bytes(false, 0, 0xa0, 1);
	check_bytes(false, 31, 0xbf, 1);
	check_bytes(false, 32, 0xd9, 2);
	check_bytes(false, 255, 0xd9, 2);
	check_bytes(false, 256, 0xda, 3);
	check_bytes(false, 65535, 0xda, 3);
	check_bytes(false, 65536, 0xdb, 5);
	check_bytes(true, 0, 0xc4, 2);
	check_bytes(true, 255, 0xc4, 2);
	check_bytes(true, 256, 0xc5, 3);
	check_bytes(true, 65535, 0xc5, 3);
	check_bytes(true, 65536, 0xc6, 5);

	check_ext(1, 5, 0xd4, 2);
	check_ext(2, -5, 0xd5, 2);
	check_ext(4, 127, 0xd6, 2);
	check_ext(8, -128, 0xd7, 2);
	check_ext(16, 0, 0xd8, 2);
	check_ext(0, 1, 0xc7, 3);
	check_ext(3, 1, 0xc7, 3);
	check_ext(17, 2, 0xc7, 3);
	check_ext(255, 3, 0xc7, 3);
	check_ext(256, 4, 0xc8, 4);
	check_ext(65535, 5, 0xc8, 4);
	check_ext(65536, 6, 0xc9, 6);
}

static void test_containers(void)
{
	const struct proto_node *n;
	size_t used;
	struct proto_limits big = LIM;

	reset();
	(void)msgpack_pack_array(&pk, 0);
	if ((n = dec_one("empty fixarray", 0x90, PROTO_ARRAY)))
		is_int(n->count, 0, "empty fixarray: count");
	reset();
	(void)msgpack_pack_map(&pk, 0);
	if ((n = dec_one("empty fixmap", 0x80, PROTO_MAP)))
		is_int(n->count, 0, "empty fixmap: count");

	reset();
	(void)msgpack_pack_array(&pk, 15);
	for (int i = 0; i < 15; i++)
		(void)msgpack_pack_int(&pk, i);
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && used == sb.size &&
	   (uint8_t)sb.data[0] == 0x9f && doc.n == 16 &&
	   doc.nodes[0].count == 15 && doc.nodes[0].next == 16 &&
	   doc.nodes[15].v.i == 14,
	   "fixarray of 15");

	reset();
	(void)msgpack_pack_array(&pk, 16);
	for (int i = 0; i < 16; i++)
		(void)msgpack_pack_int(&pk, i * 1000);
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && used == sb.size &&
	   (uint8_t)sb.data[0] == 0xdc && doc.n == 17 &&
	   doc.nodes[0].count == 16 && doc.nodes[16].v.i == 15000,
	   "array16 of 16");

	reset();
	(void)msgpack_pack_map(&pk, 15);
	for (int i = 0; i < 15; i++) {
		(void)msgpack_pack_int(&pk, i);
		(void)msgpack_pack_str_with_body(&pk, "v", 1);
	}
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && used == sb.size &&
	   (uint8_t)sb.data[0] == 0x8f && doc.n == 31 &&
	   doc.nodes[0].count == 15 && doc.nodes[0].type == PROTO_MAP,
	   "fixmap of 15 pairs");

	reset();
	(void)msgpack_pack_map(&pk, 16);
	for (int i = 0; i < 16; i++) {
		(void)msgpack_pack_int(&pk, i);
		(void)msgpack_pack_nil(&pk);
	}
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && used == sb.size &&
	   (uint8_t)sb.data[0] == 0xde && doc.n == 33 &&
	   doc.nodes[0].count == 16,
	   "map16 of 16 pairs");

	/* array32 / map32 are only written for >= 65536 elements */
	big.max_container = 70000;
	big.max_frame = 1 << 20;
	reset();
	(void)msgpack_pack_array(&pk, 65536);
	ok((uint8_t)sb.data[0] == 0xdd, "msgpack-c wrote array32");
	ok(dec_lim(sb.data, sb.size, &big, NULL) == PROTO_INCOMPLETE,
	   "array32 of 65536, header alone: incomplete");
	for (int i = 0; i < 65536; i++)
		(void)msgpack_pack_int(&pk, i % 100);
	ok(dec_lim(sb.data, sb.size, &big, &used) == PROTO_OK &&
	   used == sb.size && doc.n == 1 && doc.nodes[0].raw &&
	   doc.nodes[0].count == 65536 && doc.nodes[0].next == 1 &&
	   doc.nodes[0].depth == 1 &&
	   doc.nodes[0].v.s.p == sb.data && doc.nodes[0].v.s.len == sb.size,
	   "array32 of 65536: one raw node (more than max_nodes)");
	reset();
	(void)msgpack_pack_map(&pk, 65536);
	ok((uint8_t)sb.data[0] == 0xdf, "msgpack-c wrote map32");
	for (int i = 0; i < 65536; i++) {
		(void)msgpack_pack_int(&pk, i);
		(void)msgpack_pack_array(&pk, 1);
		(void)msgpack_pack_nil(&pk);
	}
	ok(dec_lim(sb.data, sb.size, &big, &used) == PROTO_OK &&
	   used == sb.size && doc.n == 1 && doc.nodes[0].raw &&
	   doc.nodes[0].type == PROTO_MAP && doc.nodes[0].count == 65536 &&
	   doc.nodes[0].depth == 2 && doc.nodes[0].v.s.len == sb.size,
	   "map32 of 65536 pairs of [nil]: one raw node, 2 deep");
}

/* Non-minimal encodings are valid msgpack and must decode. */
static void test_nonminimal(void)
{
	static const uint8_t str8[] = { 0xd9, 3, 'a', 'b', 'c' };
	static const uint8_t str16[] = { 0xda, 0, 1, 'x' };
	static const uint8_t str32[] = { 0xdb, 0, 0, 0, 2, 'h', 'i' };
	static const uint8_t bin16[] = { 0xc5, 0, 0 };
	static const uint8_t bin32[] = { 0xc6, 0, 0, 0, 1, 0xff };
	static const uint8_t ext16[] = { 0xc8, 0, 1, 9, 'z' };
	static const uint8_t ext32[] = { 0xc9, 0, 0, 0, 0, 0xff };
	static const uint8_t arr32[] = { 0xdd, 0, 0, 0, 2, 0x01, 0xc0 };
	static const uint8_t arr16[] = { 0xdc, 0, 0 };
	static const uint8_t map32[] = { 0xdf, 0, 0, 0, 1, 0xa1, 'k', 0x07 };
	static const uint8_t map16[] = { 0xde, 0, 1, 0xc3, 0xc2 };
	static const uint8_t u64[] = { 0xcf, 0, 0, 0, 0, 0, 0, 0, 7 };
	static const uint8_t i64[] = { 0xd3, 0xff, 0xff, 0xff, 0xff,
				       0xff, 0xff, 0xff, 0xfe };
	static const uint8_t i8[] = { 0xd0, 0x7f };
	size_t used;

	ok(dec(str8, sizeof(str8), &used) == PROTO_OK && used == 5 &&
	   proto_str_eq(&doc.nodes[0], "abc"), "str8 with a short string");
	ok(dec(str16, sizeof(str16), &used) == PROTO_OK &&
	   proto_str_eq(&doc.nodes[0], "x"), "str16 with one byte");
	ok(dec(str32, sizeof(str32), &used) == PROTO_OK &&
	   proto_str_eq(&doc.nodes[0], "hi"), "str32 with two bytes");
	ok(dec(bin16, sizeof(bin16), &used) == PROTO_OK &&
	   doc.nodes[0].type == PROTO_BIN && doc.nodes[0].v.s.len == 0,
	   "bin16 empty");
	ok(dec(bin32, sizeof(bin32), &used) == PROTO_OK &&
	   doc.nodes[0].type == PROTO_BIN && doc.nodes[0].v.s.len == 1 &&
	   (uint8_t)doc.nodes[0].v.s.p[0] == 0xff, "bin32 of one byte");
	ok(dec(ext16, sizeof(ext16), &used) == PROTO_OK &&
	   doc.nodes[0].type == PROTO_EXT && doc.nodes[0].ext_type == 9 &&
	   doc.nodes[0].v.s.len == 1, "ext16 of one byte");
	ok(dec(ext32, sizeof(ext32), &used) == PROTO_OK &&
	   doc.nodes[0].type == PROTO_EXT && doc.nodes[0].ext_type == -1 &&
	   doc.nodes[0].v.s.len == 0, "ext32 empty");
	ok(dec(arr32, sizeof(arr32), &used) == PROTO_OK && doc.n == 3 &&
	   doc.nodes[0].count == 2 && doc.nodes[1].v.i == 1 &&
	   doc.nodes[2].type == PROTO_NIL, "array32 of two");
	ok(dec(arr16, sizeof(arr16), &used) == PROTO_OK && doc.n == 1 &&
	   doc.nodes[0].type == PROTO_ARRAY && doc.nodes[0].count == 0,
	   "array16 empty");
	ok(dec(map32, sizeof(map32), &used) == PROTO_OK && doc.n == 3 &&
	   proto_map_get(&doc, 0, "k") == 2 && doc.nodes[2].v.i == 7,
	   "map32 of one pair");
	ok(dec(map16, sizeof(map16), &used) == PROTO_OK && doc.n == 3 &&
	   doc.nodes[1].type == PROTO_BOOL && doc.nodes[1].v.b,
	   "map16 with a bool key");
	ok(dec(u64, sizeof(u64), &used) == PROTO_OK &&
	   doc.nodes[0].type == PROTO_INT && doc.nodes[0].v.i == 7,
	   "uint64 holding 7");
	ok(dec(i64, sizeof(i64), &used) == PROTO_OK &&
	   doc.nodes[0].type == PROTO_INT && doc.nodes[0].v.i == -2,
	   "int64 holding -2");
	ok(dec(i8, sizeof(i8), &used) == PROTO_OK &&
	   doc.nodes[0].type == PROTO_INT && doc.nodes[0].v.i == 127,
	   "int8 holding 127");
}

/* [1, [2, [3]], {"a": [4, 5], "b": {}}, 6] */
static void test_next(void)
{
	static const uint8_t b[] = {
		0x94, 0x01, 0x92, 0x02, 0x91, 0x03,
		0x82, 0xa1, 'a', 0x92, 0x04, 0x05, 0xa1, 'b', 0x80, 0x06,
	};
	/*                 0   1  2  3  4  5  6  7  8   9  10 11 12 13 */
	static const uint32_t want_next[] = {
		14, 2, 6, 4, 6, 6, 13, 8, 11, 10, 11, 12, 13, 14,
	};
	size_t used;
	bool all = true;

	if (!ok(dec(b, sizeof(b), &used) == PROTO_OK && used == sizeof(b) &&
		doc.n == 14, "nested document decodes into 14 nodes"))
		return;
	for (uint32_t i = 0; i < ARRAY_LEN(want_next); i++)
		if (doc.nodes[i].next != want_next[i]) {
			printf("#   node %u: next %u, want %u\n", i,
			       doc.nodes[i].next, want_next[i]);
			all = false;
		}
	ok(all, "next indexes skip each value with its children");
	is_int(proto_map_get(&doc, 6, "a"), 8, "map_get finds 'a'");
	is_int(proto_map_get(&doc, 6, "b"), 12, "map_get finds 'b' after a "
	       "nested value");
	is_int(proto_map_get(&doc, 6, "c"), 0, "map_get: absent key gives 0");
	is_int(proto_map_get(&doc, 0, "a"), 0, "map_get on an array gives 0");
	is_int(proto_map_get(&doc, 99, "a"), 0,
	       "map_get out of range gives 0");
	is_int(doc.nodes[2].count, 2, "inner array count");
	is_int(doc.nodes[6].count, 2, "map count is pairs");
}

/* --- streaming --------------------------------------------------------- */

/* Every proper prefix of a complete object is INCOMPLETE. */
static void check_prefixes(const char *what, const uint8_t *b, size_t len,
			   const struct proto_limits *lim)
{
	size_t k, used;
	bool all = true;

	for (k = 0; k < len; k++) {
		enum proto_status st = dec_lim(b, k, lim, &used);

		if (st != PROTO_INCOMPLETE) {
			printf("#   prefix %zu of %zu: %s\n", k, len,
			       proto_status_str(st));
			all = false;
			break;
		}
	}
	ok(all, "%s: each of %zu prefixes is incomplete", what, len);
	ok(dec_lim(b, len, lim, &used) == PROTO_OK && used == len,
	   "%s: complete at %zu bytes", what, len);
}

static void pack_everything(void)
{
	char big[300];
	msgpack_timestamp ts = { .tv_sec = -5, .tv_nsec = 7 };

	memset(big, 'q', sizeof(big));
	(void)msgpack_pack_array(&pk, 20);
	(void)msgpack_pack_nil(&pk);
	(void)msgpack_pack_true(&pk);
	(void)msgpack_pack_int64(&pk, -7);
	(void)msgpack_pack_uint64(&pk, 250);
	(void)msgpack_pack_uint64(&pk, 65000);
	(void)msgpack_pack_uint64(&pk, UINT32_MAX);
	(void)msgpack_pack_uint64(&pk, UINT64_MAX);
	(void)msgpack_pack_int64(&pk, INT64_MIN);
	(void)msgpack_pack_float(&pk, 2.5f);
	(void)msgpack_pack_double(&pk, -1e-300);
	(void)msgpack_pack_str_with_body(&pk, "hello", 5);
	(void)msgpack_pack_str_with_body(&pk, big, 40);
	(void)msgpack_pack_str_with_body(&pk, big, 300);
	(void)msgpack_pack_bin_with_body(&pk, big, 3);
	(void)msgpack_pack_ext_with_body(&pk, big, 16, 42);
	(void)msgpack_pack_ext_with_body(&pk, big, 20, -3);
	(void)msgpack_pack_timestamp(&pk, &ts);
	(void)msgpack_pack_map(&pk, 2);
	(void)msgpack_pack_str_with_body(&pk, "k", 1);
	(void)msgpack_pack_array(&pk, 2);
	(void)msgpack_pack_int(&pk, 1);
	(void)msgpack_pack_map(&pk, 0);
	(void)msgpack_pack_int(&pk, 3);
	(void)msgpack_pack_array(&pk, 0);
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_str_with_body(&pk, "deep", 4);
	(void)msgpack_pack_int(&pk, -100);
}

static void test_split(void)
{
	size_t used, first;
	uint8_t *two;

	reset();
	pack_everything();
	check_prefixes("every format", (const uint8_t *)sb.data, sb.size,
		       &LIM);

	/* Two objects back to back: the first is consumed exactly. */
	first = sb.size;
	(void)msgpack_pack_array(&pk, 2);
	(void)msgpack_pack_int(&pk, 9);
	(void)msgpack_pack_str_with_body(&pk, "x", 1);
	two = (uint8_t *)sb.data;
	ok(dec(two, sb.size, &used) == PROTO_OK && used == first,
	   "first of two objects consumes only itself");
	ok(dec(two + first, sb.size - first, &used) == PROTO_OK &&
	   used == sb.size - first && doc.n == 3 &&
	   proto_str_eq(&doc.nodes[2], "x"),
	   "the second object decodes from where the first ended");
	ok(dec(two, first + 1, &used) == PROTO_OK && used == first,
	   "a partial second object does not matter to the first");

	/* Feeding one byte at a time, as a slow client would. */
	{
		size_t have = 0, off = 0;
		int frames = 0;
		bool good = true;

		while (have < sb.size) {
			have++;
			for (;;) {
				enum proto_status st =
					dec(two + off, have - off, &used);

				if (st == PROTO_INCOMPLETE)
					break;
				if (st != PROTO_OK) {
					good = false;
					break;
				}
				frames++;
				off += used;
			}
		}
		ok(good && frames == 2 && off == sb.size,
		   "byte-by-byte feeding yields both frames");
	}
}

/* --- limits ------------------------------------------------------------ */

static void test_huge(void)
{
	static const uint8_t str32[] = { 0xdb, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t bin32[] = { 0xc6, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t ext32[] = { 0xc9, 0xff, 0xff, 0xff, 0xff, 1 };
	static const uint8_t arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t nested[] = { 0x94, 0x00, 0x01, 0xa4, 'p', 'i',
					  'n', 'g', 0x91, 0xdb, 0x10, 0, 0,
					  0 };
	struct proto_limits l = LIM;
	size_t used;

	ok(dec(str32, 5, &used) == PROTO_ERR_TOO_LARGE,
	   "str32 announcing 4 GiB: refused after its 5-byte header");
	ok(dec(str32, 4, &used) == PROTO_INCOMPLETE,
	   "str32: 4 bytes of header are not enough to judge");
	ok(dec(str32, 1, &used) == PROTO_INCOMPLETE,
	   "str32: type byte alone is incomplete");
	ok(dec(bin32, 5, &used) == PROTO_ERR_TOO_LARGE,
	   "bin32 announcing 4 GiB: refused after its header");
	ok(dec(ext32, 6, &used) == PROTO_ERR_TOO_LARGE,
	   "ext32 announcing 4 GiB: refused after its header");
	ok(dec(ext32, 5, &used) == PROTO_ERR_TOO_LARGE,
	   "ext32 announcing 4 GiB: refused before its type byte "
	   "(fuzz crash-0987baa8)");
	ok(dec(ext32, 4, &used) == PROTO_INCOMPLETE,
	   "ext32: 3 of 4 length bytes are not enough to judge");
	{
		static const uint8_t ext8[] = { 0xc7, 0x05 };
		static const uint8_t ext16[] = { 0xc8, 0x01, 0x00 };
		struct proto_limits small = LIM;

		small.max_frame = 8;
		ok(dec(ext8, 2, &used) == PROTO_INCOMPLETE &&
		   dec(ext16, 3, &used) == PROTO_INCOMPLETE,
		   "ext8 / ext16 without their type byte: incomplete");
		ok(dec_lim(ext8, 2, &small, &used) == PROTO_INCOMPLETE,
		   "ext8 of 5 fits in 8 bytes");
		ok(dec_lim(ext16, 3, &small, &used) == PROTO_ERR_TOO_LARGE,
		   "ext16 of 256 does not fit in 8 bytes: refused before its "
		   "type byte");
	}
	ok(dec(nested, sizeof(nested), &used) == PROTO_ERR_TOO_LARGE,
	   "a 256 MiB string inside a request: refused after its header");
	ok(dec(arr32, 5, &used) == PROTO_ERR_TOO_LARGE,
	   "array32 of 4G elements: refused after its header");
	ok(dec(map32, 5, &used) == PROTO_ERR_TOO_LARGE,
	   "map32 of 4G pairs: refused after its header");

	/* With container and node limits out of the way, the frame limit
	 * still bounds what a count may announce. */
	l.max_container = UINT32_MAX;
	l.max_nodes = UINT32_MAX;
	ok(dec_lim(arr32, 5, &l, &used) == PROTO_ERR_TOO_LARGE,
	   "array32 of 4G: the frame bounds the count, whatever max_nodes");
	l.max_frame = 100;
	{
		static const uint8_t a[] = { 0xdc, 0x00, 0x61 }; /* 97 */
		static const uint8_t b[] = { 0xdc, 0x00, 0x62 }; /* 98 */

		ok(dec_lim(a, 3, &l, &used) == PROTO_INCOMPLETE,
		   "array16 of 97 may fit in 100 bytes");
		ok(dec_lim(b, 3, &l, &used) == PROTO_ERR_TOO_LARGE,
		   "array16 of 98 cannot fit in 100 bytes");
	}

	/* Exactly at the frame limit. */
	l = LIM;
	l.max_frame = 10;
	{
		static const uint8_t s9[] = { 0xa9, 'a', 'b', 'c', 'd', 'e',
					      'f', 'g', 'h', 'i' };
		static const uint8_t s10[] = { 0xaa, 'a', 'b', 'c', 'd', 'e',
					       'f', 'g', 'h', 'i', 'j' };
		static const uint8_t arr[] = { 0x92, 0xa7, 'a', 'b', 'c', 'd',
					       'e', 'f', 'g', 0xc0 };
		static const uint8_t arr2[] = { 0x92, 0xa8 };
		static const uint8_t arr9[] = { 0x99 };
		static const uint8_t arr10[] = { 0x9a };
		static const uint8_t f64[] = { 0x91, 0xcb };
		static const uint8_t f64late[] = { 0x92, 0x01, 0xcb };
		static const uint8_t u64[] = { 0x93, 0xc0, 0xc0, 0xcf };

		ok(dec_lim(s9, 10, &l, &used) == PROTO_OK && used == 10,
		   "a 10-byte object fits max_frame 10");
		ok(dec_lim(s10, 1, &l, &used) == PROTO_ERR_TOO_LARGE,
		   "an 11-byte fixstr is refused after its first byte");
		ok(dec_lim(arr, sizeof(arr), &l, &used) == PROTO_OK,
		   "[str7, nil] fits exactly");
		ok(dec_lim(arr2, 2, &l, &used) == PROTO_ERR_TOO_LARGE,
		   "[str8, x] cannot fit: the pending element counts");
		ok(dec_lim(arr9, 1, &l, &used) == PROTO_INCOMPLETE,
		   "fixarray of 9 may still fit in 10 bytes");
		ok(dec_lim(arr10, 1, &l, &used) == PROTO_ERR_TOO_LARGE,
		   "fixarray of 10 needs 11 bytes at least");
		ok(dec_lim(f64, 2, &l, &used) == PROTO_INCOMPLETE,
		   "float64 at offset 1 still fits");
		ok(dec_lim(f64late, 3, &l, &used) == PROTO_ERR_TOO_LARGE,
		   "float64 at offset 2 does not: refused at its first byte");
		ok(dec_lim(u64, 4, &l, &used) == PROTO_ERR_TOO_LARGE,
		   "uint64 at offset 3 does not: refused at its first byte");
	}

	/* The buffer may hold more than max_frame (the next frames). */
	{
		uint8_t b[64];

		memset(b, 0xc0, sizeof(b));
		b[0] = 0x93;
		ok(dec_lim(b, sizeof(b), &l, &used) == PROTO_OK && used == 4,
		   "a buffer longer than max_frame holding small frames");
	}

	l.max_frame = 0;
	ok(dec_lim("\xc0", 1, &l, &used) == PROTO_ERR_TOO_LARGE,
	   "max_frame 0 refuses everything");
}

static void pack_nested(int depth, bool maps)
{
	for (int i = 0; i < depth - 1; i++) {
		if (maps) {
			(void)msgpack_pack_map(&pk, 1);
			(void)msgpack_pack_int(&pk, i);
		} else {
			(void)msgpack_pack_array(&pk, 1);
		}
	}
	if (maps)
		(void)msgpack_pack_map(&pk, 0);
	else
		(void)msgpack_pack_array(&pk, 0);
}

static void test_limits(void)
{
	struct proto_limits l = LIM;
	enum proto_status st;
	size_t used;

	reset();
	pack_nested(8, false);
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && doc.n == 8,
	   "arrays nested 8 deep are allowed");
	reset();
	pack_nested(9, false);
	ok(dec(sb.data, sb.size, &used) == PROTO_ERR_TOO_DEEP,
	   "arrays nested 9 deep: too deep (an empty innermost counts)");
	ok(dec(sb.data, 8, &used) == PROTO_INCOMPLETE,
	   "arrays nested 9 deep: the first 8 headers are incomplete");
	reset();
	pack_nested(8, true);
	ok(dec(sb.data, sb.size, &used) == PROTO_OK,
	   "maps nested 8 deep are allowed");
	reset();
	pack_nested(9, true);
	ok(dec(sb.data, sb.size, &used) == PROTO_ERR_TOO_DEEP,
	   "maps nested 9 deep: too deep");
	reset();
	pack_nested(1000, false);
	ok(dec(sb.data, sb.size, &used) == PROTO_ERR_TOO_DEEP,
	   "arrays nested 1000 deep: too deep, no stack overflow");
	l.max_depth = 1000;
	/* a container at depth d (node d - 1) has its element as a node
	 * while 1 <= 512 - d: the 512th is raw, 1000 - 511 deep */
	st = dec_lim(sb.data, sb.size, &l, &used);
	ok(st == PROTO_OK &&
	   doc.n == PROTO_MAX_NODES && !doc.nodes[510].raw &&
	   doc.nodes[511].raw && doc.nodes[511].depth == 1000 - 511 &&
	   doc.nodes[0].depth == 1000 && doc.nodes[0].next == doc.n,
	   "arrays nested 1000 deep with max_depth 1000: 511 nodes, then "
	   "one raw node (%u nodes, depth %u)", doc.n, doc.nodes[0].depth);
	l.max_depth = UINT32_MAX;
	reset();
	pack_nested(PROTO_MAX_DEPTH, false);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_OK &&
	   doc.nodes[0].depth == PROTO_MAX_DEPTH,
	   "nested PROTO_MAX_DEPTH deep: allowed");
	reset();
	pack_nested(PROTO_MAX_DEPTH + 1, true);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_ERR_TOO_DEEP,
	   "max_depth is capped at PROTO_MAX_DEPTH");
	reset();
	pack_nested(100000, false);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_ERR_TOO_DEEP,
	   "arrays nested 100000 deep: too deep, no stack overflow");
	l.max_depth = 0;
	ok(dec_lim("\x05", 1, &l, &used) == PROTO_OK,
	   "max_depth 0 still allows a scalar");
	ok(dec_lim("\x90", 1, &l, &used) == PROTO_ERR_TOO_DEEP,
	   "max_depth 0 refuses an empty array");
	l = LIM;

	reset();
	(void)msgpack_pack_array(&pk, 64);
	for (int i = 0; i < 64; i++)
		(void)msgpack_pack_nil(&pk);
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && doc.n == 65,
	   "an array of 64 is allowed");
	reset();
	(void)msgpack_pack_array(&pk, 65);
	for (int i = 0; i < 65; i++)
		(void)msgpack_pack_nil(&pk);
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && doc.n == 1 &&
	   doc.nodes[0].raw && doc.nodes[0].count == 65,
	   "an array of 65 (max_container 64) is one raw node");
	reset();
	(void)msgpack_pack_map(&pk, 64);
	for (int i = 0; i < 64; i++) {
		(void)msgpack_pack_int(&pk, i);
		(void)msgpack_pack_int(&pk, -i);
	}
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && doc.n == 129,
	   "a map of 64 pairs is allowed");
	reset();
	(void)msgpack_pack_map(&pk, 65);
	for (int i = 0; i < 65; i++) {
		(void)msgpack_pack_int(&pk, i);
		(void)msgpack_pack_int(&pk, -i);
	}
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && doc.n == 1 &&
	   doc.nodes[0].raw && doc.nodes[0].count == 65 &&
	   doc.nodes[0].depth == 1,
	   "a map of 65 pairs is one raw node");

	/* Node budget: 1 + 8 + 8 * 62 = 505 fits, 1 + 8 + 8 * 63 = 513
	 * does not: the inner array that would take the nodes past 512 is
	 * one raw node. */
	reset();
	(void)msgpack_pack_array(&pk, 8);
	for (int a = 0; a < 8; a++) {
		(void)msgpack_pack_array(&pk, 62);
		for (int i = 0; i < 62; i++)
			(void)msgpack_pack_int(&pk, i);
	}
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && doc.n == 505,
	   "505 nodes are allowed");
	reset();
	(void)msgpack_pack_array(&pk, 8);
	for (int a = 0; a < 8; a++) {
		(void)msgpack_pack_array(&pk, 63);
		for (int i = 0; i < 63; i++)
			(void)msgpack_pack_int(&pk, i);
	}
	/* the a-th inner array opens at node 1 + 64a with 8 - a owed: its
	 * 63 fit while 63 <= 512 - (1 + 64a) - (8 - a), a <= 6 */
	st = dec(sb.data, sb.size, &used);
	ok(st == PROTO_OK && used == sb.size &&
	   doc.n == 1 + 7 * 64 + 1 && doc.nodes[449].raw &&
	   doc.nodes[449].count == 63 && !doc.nodes[385].raw &&
	   doc.nodes[449].next == 450 && doc.nodes[0].next == 450,
	   "513 nodes: the last inner array is one raw node (%u nodes)",
	   doc.n);
	ok(dec(sb.data, sb.size - 1, &used) == PROTO_INCOMPLETE,
	   "513 nodes: incomplete until the last byte");

	l.max_nodes = 10;
	reset();
	(void)msgpack_pack_array(&pk, 9);
	for (int i = 0; i < 9; i++)
		(void)msgpack_pack_nil(&pk);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_OK && doc.n == 10,
	   "max_nodes 10: 10 nodes are allowed");
	reset();
	(void)msgpack_pack_array(&pk, 10);
	for (int i = 0; i < 10; i++)
		(void)msgpack_pack_nil(&pk);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_OK && doc.n == 1 &&
	   doc.nodes[0].raw,
	   "max_nodes 10: an array of 10 (11 nodes) is one raw node");
	reset();
	(void)msgpack_pack_map(&pk, 5);
	for (int i = 0; i < 10; i++)
		(void)msgpack_pack_nil(&pk);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_OK && doc.n == 1 &&
	   doc.nodes[0].raw,
	   "max_nodes 10: a map of 5 pairs (11 nodes) is one raw node");
	l.max_nodes = 0;
	ok(dec_lim("\xc0", 1, &l, &used) == PROTO_OK && doc.n == 1,
	   "max_nodes 0 is taken as 1: the root");
	ok(dec_lim("\x91\xc0", 2, &l, &used) == PROTO_OK && doc.n == 1 &&
	   doc.nodes[0].raw && doc.nodes[0].v.s.len == 2,
	   "max_nodes 0: [nil] is one raw node");
}

static void test_syntax(void)
{
	static const uint8_t in_array[] = { 0x93, 0x01, 0xc1, 0x02 };
	static const uint8_t as_key[] = { 0x81, 0xc1, 0x01 };
	static const uint8_t as_val[] = { 0x81, 0xa1, 'k', 0xc1 };
	static const uint8_t after[] = { 0x92, 0xa3, 'a', 'b', 'c', 0xc1 };
	size_t used;

	ok(dec("\xc1", 1, &used) == PROTO_ERR_SYNTAX, "0xc1 alone");
	ok(dec(in_array, sizeof(in_array), &used) == PROTO_ERR_SYNTAX,
	   "0xc1 inside an array");
	ok(dec(in_array, 2, &used) == PROTO_INCOMPLETE,
	   "the bytes before it are an incomplete prefix");
	ok(dec(as_key, sizeof(as_key), &used) == PROTO_ERR_SYNTAX,
	   "0xc1 as a map key");
	ok(dec(as_val, sizeof(as_val), &used) == PROTO_ERR_SYNTAX,
	   "0xc1 as a map value");
	ok(dec(after, sizeof(after), &used) == PROTO_ERR_SYNTAX,
	   "0xc1 after a string");
	ok(dec("\x01\xc1", 2, &used) == PROTO_OK && used == 1,
	   "0xc1 after a complete object belongs to the next frame");
	ok(dec("", 0, &used) == PROTO_INCOMPLETE, "empty input: incomplete");
}

/* --- random documents, compared with msgpack-c's unpacker ------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static int budget;
static int raw_seen;	/* raw nodes that same() compared */

static void gen(int depth)
{
	static const char blob[70000];
	unsigned kind =
		(unsigned)(rnd() % (depth < 6 && budget > 220 ? 14 : 11));

	budget--;
	switch (kind) {
	case 0: (void)msgpack_pack_nil(&pk); break;
	case 1: (void)msgpack_pack_true(&pk); break;
	case 2: (void)msgpack_pack_int64(&pk, (int64_t)rnd() >> (rnd() % 64));
		break;
	case 3: (void)msgpack_pack_uint64(&pk, rnd() >> (rnd() % 64)); break;
	case 4: (void)msgpack_pack_float(&pk, (float)(rnd() % 1000) / 8); break;
	case 5: (void)msgpack_pack_double(&pk, (double)rnd() / 3); break;
	case 6: {
		size_t len = rnd() % 8 == 0 ? rnd() % 70000 : rnd() % 300;

		(void)msgpack_pack_str_with_body(&pk, blob, len);
		break;
	}
	case 7: (void)msgpack_pack_bin_with_body(&pk, blob, rnd() % 300);
		break;
	case 8: (void)msgpack_pack_ext_with_body(&pk, blob, rnd() % 20,
						 (int8_t)rnd());
		break;
	case 9: {
		msgpack_timestamp ts = {
			.tv_sec = (int64_t)rnd() >> (rnd() % 64),
			.tv_nsec = (uint32_t)(rnd() % 1000000000),
		};

		(void)msgpack_pack_timestamp(&pk, &ts);
		break;
	}
	case 10: (void)msgpack_pack_int64(&pk, -(int64_t)(rnd() % 100000));
		break;
	case 11:
	case 12: {
		unsigned cnt = (unsigned)(rnd() % 20);

		(void)msgpack_pack_array(&pk, cnt);
		for (unsigned i = 0; i < cnt; i++)
			gen(depth + 1);
		break;
	}
	default: {
		unsigned cnt = (unsigned)(rnd() % 18);

		(void)msgpack_pack_map(&pk, cnt);
		for (unsigned i = 0; i < 2 * cnt; i++)
			gen(depth + 1);
		break;
	}
	}
}

/* Nesting of msgpack-c's object (a scalar 0). */
static uint32_t obj_depth(const msgpack_object *o)
{
	uint32_t d = 0;

	if (o->type == MSGPACK_OBJECT_ARRAY) {
		for (uint32_t k = 0; k < o->via.array.size; k++)
			if (obj_depth(&o->via.array.ptr[k]) > d)
				d = obj_depth(&o->via.array.ptr[k]);
		return d + 1;
	}
	if (o->type == MSGPACK_OBJECT_MAP) {
		for (uint32_t k = 0; k < o->via.map.size; k++) {
			if (obj_depth(&o->via.map.ptr[k].key) > d)
				d = obj_depth(&o->via.map.ptr[k].key);
			if (obj_depth(&o->via.map.ptr[k].val) > d)
				d = obj_depth(&o->via.map.ptr[k].val);
		}
		return d + 1;
	}
	return 0;
}

/* A container node's bytes hold exactly the value o, as deep as o. */
static bool same_span(const msgpack_object *o, const struct proto_node *n)
{
	msgpack_unpacked up;
	size_t off = 0;
	bool eq;

	msgpack_unpacked_init(&up);
	eq = msgpack_unpack_next(&up, n->v.s.p, n->v.s.len, &off) ==
		     MSGPACK_UNPACK_SUCCESS &&
	     off == n->v.s.len && msgpack_object_equal(up.data, *o) &&
	     n->depth == obj_depth(o);
	msgpack_unpacked_destroy(&up);
	return eq;
}

/* Compares msgpack-c's object with our node i; returns the next index. */
static uint32_t same(const msgpack_object *o, uint32_t i, bool *good)
{
	const struct proto_node *n = &doc.nodes[i];
	uint32_t j = i + 1;

	if (i >= doc.n) {
		*good = false;
		return i;
	}
	if ((o->type == MSGPACK_OBJECT_ARRAY ||
	     o->type == MSGPACK_OBJECT_MAP) && !same_span(o, n))
		*good = false;
	if (n->raw) {	/* its elements are no nodes */
		*good &= (o->type == MSGPACK_OBJECT_ARRAY &&
			  n->type == PROTO_ARRAY &&
			  n->count == o->via.array.size) ||
			 (o->type == MSGPACK_OBJECT_MAP && n->type == PROTO_MAP &&
			  n->count == o->via.map.size);
		raw_seen++;
		*good &= n->next == j;
		return j;
	}
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		*good &= n->type == PROTO_NIL;
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		*good &= n->type == PROTO_BOOL && n->v.b == o->via.boolean;
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX)
			*good &= n->type == PROTO_UINT && n->v.u == o->via.u64;
		else
			*good &= n->type == PROTO_INT &&
				 n->v.i == (int64_t)o->via.u64;
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		*good &= n->type == PROTO_INT && n->v.i == o->via.i64;
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		*good &= n->type == PROTO_FLOAT &&
			 memcmp(&n->v.f, &o->via.f64, sizeof(double)) == 0;
		break;
	case MSGPACK_OBJECT_STR:
		*good &= n->type == PROTO_STR && n->v.s.len == o->via.str.size &&
			 memcmp(n->v.s.p, o->via.str.ptr, n->v.s.len) == 0;
		break;
	case MSGPACK_OBJECT_BIN:
		*good &= n->type == PROTO_BIN && n->v.s.len == o->via.bin.size &&
			 memcmp(n->v.s.p, o->via.bin.ptr, n->v.s.len) == 0;
		break;
	case MSGPACK_OBJECT_EXT:
		*good &= n->type == PROTO_EXT && n->ext_type == o->via.ext.type &&
			 n->v.s.len == o->via.ext.size &&
			 memcmp(n->v.s.p, o->via.ext.ptr, n->v.s.len) == 0;
		break;
	case MSGPACK_OBJECT_ARRAY:
		*good &= n->type == PROTO_ARRAY && n->count == o->via.array.size;
		for (uint32_t k = 0; *good && k < o->via.array.size; k++)
			j = same(&o->via.array.ptr[k], j, good);
		break;
	case MSGPACK_OBJECT_MAP:
		*good &= n->type == PROTO_MAP && n->count == o->via.map.size;
		for (uint32_t k = 0; *good && k < o->via.map.size; k++) {
			j = same(&o->via.map.ptr[k].key, j, good);
			j = same(&o->via.map.ptr[k].val, j, good);
		}
		break;
	}
	*good &= n->next == j;
	return j;
}

static void test_random(void)
{
	const struct proto_limits l = {
		.max_frame = 1 << 24,
		.max_depth = 8,
		.max_nodes = PROTO_MAX_NODES,
		.max_container = 64,
	};
	msgpack_unpacked up;
	int docs = 0, mismatches = 0, split_bad = 0;

	msgpack_unpacked_init(&up);
	for (int t = 0; t < 400; t++) {
		size_t used = 0, off = 0;
		bool good = true;
		enum proto_status st;

		reset();
		budget = 300;
		gen(0);
		st = dec_lim(sb.data, sb.size, &l, &used);
		if (st != PROTO_OK || used != sb.size) {
			printf("#   doc %d: %s\n", t, proto_status_str(st));
			mismatches++;
			continue;
		}
		if (msgpack_unpack_next(&up, sb.data, sb.size, &off) !=
			    MSGPACK_UNPACK_SUCCESS ||
		    off != sb.size) {
			mismatches++;
			continue;
		}
		if (same(&up.data, 0, &good) != doc.n || !good)
			mismatches++;
		docs++;
		/* a few prefixes of each */
		for (int s = 0; s < 8 && sb.size > 1; s++) {
			size_t k = (size_t)(rnd() % sb.size);

			if (dec_lim(sb.data, k, &l, &used) != PROTO_INCOMPLETE)
				split_bad++;
		}
	}
	msgpack_unpacked_destroy(&up);
	is_int(mismatches, 0, "400 random documents decode like msgpack-c");
	ok(docs == 400, "all 400 random documents were compared");
	is_int(split_bad, 0, "random prefixes of them are incomplete");
}

/* The same documents with containers below depth 2 (and ones of more
 * than 8 elements) as raw nodes: what is a node is the same, and a raw
 * node's bytes are the value msgpack-c reads there. */
static void test_random_raw(void)
{
	const struct proto_limits l = {
		.max_frame = 1 << 24,
		.max_depth = 8,
		.node_depth = 2,
		.max_nodes = PROTO_MAX_NODES,
		.max_container = 8,
	};
	msgpack_unpacked up;
	int mismatches = 0;

	raw_seen = 0;
	msgpack_unpacked_init(&up);
	for (int t = 0; t < 400; t++) {
		size_t used = 0, off = 0;
		bool good = true;

		reset();
		budget = 300;
		gen(0);
		if (dec_lim(sb.data, sb.size, &l, &used) != PROTO_OK ||
		    used != sb.size ||
		    msgpack_unpack_next(&up, sb.data, sb.size, &off) !=
			    MSGPACK_UNPACK_SUCCESS ||
		    same(&up.data, 0, &good) != doc.n || !good) {
			printf("#   doc %d differs\n", t);
			mismatches++;
		}
	}
	msgpack_unpacked_destroy(&up);
	is_int(mismatches, 0, "400 random documents with raw nodes decode "
	       "like msgpack-c");
	ok(raw_seen >= 50, "raw nodes were compared (%d)", raw_seen);
}

/* --- requests: the envelope and params as nodes, values as raw nodes -- */

static void test_request_nodes(void)
{
	struct proto_limits l;
	struct proto_msg m;
	enum proto_status st;
	const struct proto_node *c;
	char err[128];
	size_t used, start, end;
	bool prefixes = true;

	proto_request_limits(&l, 4 << 20);
	ok(l.max_frame == 4 << 20 && l.max_depth == PROTO_MAX_DEPTH &&
	   l.node_depth == 2 && l.max_nodes == PROTO_MAX_NODES,
	   "proto_request_limits");

	/* [0, 7, "add_message", [{"user_id": "u", "content": [100000]}]] */
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, 7);
	must(proto_pack_cstr(&pk, "add_message"));
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_map(&pk, 2);
	must(proto_pack_cstr(&pk, "user_id"));
	must(proto_pack_cstr(&pk, "u"));
	must(proto_pack_cstr(&pk, "content"));
	start = sb.size;
	(void)msgpack_pack_array(&pk, 100000);
	for (int i = 0; i < 100000; i++) {
		(void)msgpack_pack_map(&pk, 1);
		must(proto_pack_cstr(&pk, "t"));
		(void)msgpack_pack_int(&pk, i % 128);
	}
	end = sb.size;
	st = dec_lim(sb.data, sb.size, &l, &used);
	ok(st == PROTO_OK && used == sb.size && doc.n == 10,
	   "100000 values in a named parameter: 10 nodes (%u)", doc.n);
	c = &doc.nodes[9];
	ok(c->type == PROTO_ARRAY && c->raw && c->count == 100000 &&
	   c->depth == 2 && c->next == 10 &&
	   c->v.s.p == sb.data + start && c->v.s.len == end - start,
	   "the content is one raw node holding its exact bytes");
	ok(!doc.nodes[5].raw && doc.nodes[5].type == PROTO_MAP &&
	   doc.nodes[5].count == 2 && !doc.nodes[4].raw,
	   "params and the named params' map are nodes");
	ok(doc.nodes[0].v.s.p == sb.data && doc.nodes[0].v.s.len == sb.size &&
	   doc.nodes[0].depth == 5,
	   "the root's bytes and depth (envelope 3 + content 2)");
	ok(proto_parse_envelope(&doc, &m, err, sizeof(err)) == 0 &&
	   m.params == 4 && proto_map_get(&doc, 5, "content") == 9 &&
	   proto_map_get(&doc, 9, "t") == 0,
	   "envelope; map_get finds the raw value, and nothing inside it");

	/* Fed in pieces: incomplete until the last byte, as before; the
	 * size each prefix gives is a bound of the whole (a value a byte). */
	for (size_t k = 0; k < sb.size; k += 997)
		if (dec_lim(sb.data, k, &l, &used) != PROTO_INCOMPLETE ||
		    used <= k || used > sb.size)
			prefixes = false;
	ok(prefixes, "its prefixes are incomplete, each with a bound");
	ok(dec_lim(sb.data, start + 5, &l, &used) == PROTO_INCOMPLETE &&
	   used == start + 5 + 100000,
	   "after the content's header: 100000 values of a byte at least "
	   "(%zu)", used);
	{
		/* one decode per arrival of the bound, byte by byte */
		size_t have = 0, need = 0;
		int decodes = 0;

		for (have = 1; have <= sb.size; have++) {
			if (have < need)
				continue;
			decodes++;
			if (dec_lim(sb.data, have, &l, &used) == PROTO_OK)
				break;
			need = used;
		}
		ok(have == sb.size && decodes < 100,
		   "fed a byte at a time, waiting for the bound: %d decodes",
		   decodes);
	}

	/* Positional: the content array at depth 3 is raw too. */
	reset();
	must(proto_pack_request_head(&pk, 8, "add_message"));
	(void)msgpack_pack_array(&pk, 4);
	must(proto_pack_cstr(&pk, "u"));
	must(proto_pack_cstr(&pk, "p"));
	must(proto_pack_cstr(&pk, "user"));
	(void)msgpack_pack_map(&pk, 1);
	must(proto_pack_cstr(&pk, "text"));
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_map(&pk, 0);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_OK && doc.n == 9 &&
	   doc.nodes[8].raw && doc.nodes[8].type == PROTO_MAP &&
	   doc.nodes[8].depth == 3,
	   "positional params: a map value is one raw node, 3 deep");

	/* [0, 9, "ping", [[...]]]: the only element of params is no map,
	 * so it stays raw; a bare map of params is a node with raw values */
	reset();
	must(proto_pack_request_head(&pk, 9, "ping"));
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_map(&pk, 0);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_OK && doc.n == 6 &&
	   doc.nodes[5].raw && doc.nodes[5].depth == 2,
	   "[[{}]] as params: its array is raw");
	reset();
	must(proto_pack_request_head(&pk, 9, "ping"));
	(void)msgpack_pack_map(&pk, 1);
	must(proto_pack_cstr(&pk, "state"));
	(void)msgpack_pack_map(&pk, 1);
	must(proto_pack_cstr(&pk, "k"));
	(void)msgpack_pack_nil(&pk);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_OK && doc.n == 7 &&
	   !doc.nodes[4].raw && doc.nodes[6].raw &&
	   doc.nodes[6].v.s.len == 4,
	   "a bare map of params: a node; its map value raw");

	/* Depth: content nested up to the frame's bound, and beyond. */
	for (int d = PROTO_MAX_DEPTH - 4; d <= PROTO_MAX_DEPTH - 2; d++) {
		reset();
		must(proto_pack_request_head(&pk, 10, "add_message"));
		(void)msgpack_pack_array(&pk, 1);
		(void)msgpack_pack_map(&pk, 1);
		must(proto_pack_cstr(&pk, "content"));
		pack_nested(d, d % 2 == 0);
		st = dec_lim(sb.data, sb.size, &l, &used);
		if (d + 3 <= PROTO_MAX_DEPTH)
			ok(st == PROTO_OK && doc.nodes[7].raw &&
			   doc.nodes[7].depth == d &&
			   doc.nodes[0].depth == d + 3,
			   "content %d deep in a request: decoded, depth %d",
			   d, doc.nodes[7].depth);
		else
			ok(st == PROTO_ERR_TOO_DEEP,
			   "content %d deep in a request: beyond "
			   "PROTO_MAX_DEPTH", d);
	}

	/* Bad bytes inside a raw value are found all the same. */
	{
		static const uint8_t c1[] = {
			0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g',
			0x91, 0x92, 0x92, 0x01, 0xc1, 0x02 };
		static const uint8_t big[] = {
			0x94, 0x00, 0x01, 0xa4, 'p', 'i', 'n', 'g',
			0x91, 0x92, 0x91, 0xdb, 0x10, 0, 0, 0 };

		ok(dec_lim(c1, sizeof(c1), &l, &used) == PROTO_ERR_SYNTAX &&
		   dec_lim(c1, 12, &l, &used) == PROTO_INCOMPLETE,
		   "0xc1 inside a raw value: not msgpack");
		l.max_frame = 1 << 20;
		ok(dec_lim(big, sizeof(big), &l, &used) ==
			   PROTO_ERR_TOO_LARGE,
		   "a 256 MiB string inside a raw value: refused after its "
		   "header");
	}

	/* A root of more elements than nodes: raw, refused by the
	 * envelope without reading into it. */
	reset();
	(void)msgpack_pack_array(&pk, 600);
	for (int i = 0; i < 600; i++)
		(void)msgpack_pack_int(&pk, 0);
	ok(dec_lim(sb.data, sb.size, &l, &used) == PROTO_OK &&
	   doc.nodes[0].raw &&
	   proto_parse_envelope(&doc, &m, err, sizeof(err)) == -1 &&
	   !m.has_msgid &&
	   strcmp(err, "message is an array of 600 elements; expected "
		       "[type, msgid, method, params]") == 0,
	   "a root of 600 elements: \"%s\"", err);
}

/* --- envelopes --------------------------------------------------------- */

static int env(struct proto_msg *m, char *err, size_t errlen)
{
	size_t used;

	if (dec(sb.data, sb.size, &used) != PROTO_OK) {
		snprintf(err, errlen, "did not decode");
		return -2;
	}
	return proto_parse_envelope(&doc, m, err, errlen);
}

static void check_bad_env(const char *what, bool has_msgid, uint32_t msgid,
			  const char *want_err)
{
	struct proto_msg m;
	char err[256] = "";
	int r = env(&m, err, sizeof(err));

	ok(r == -1, "%s: rejected", what);
	ok(m.has_msgid == has_msgid && (!has_msgid || m.msgid == msgid),
	   "%s: has_msgid %s", what, has_msgid ? "true" : "false");
	if (!ok(strstr(err, want_err) != NULL, "%s: says '%s'", what, want_err))
		printf("#   got \"%s\"\n", err);
}

static void test_envelope(void)
{
	struct proto_msg m;
	char err[256];

	reset();
	must(proto_pack_request_head(&pk, 77, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	ok(env(&m, err, sizeof(err)) == 0 && m.kind == PROTO_REQUEST &&
	   m.has_msgid && m.msgid == 77 && m.method.len == 4 &&
	   memcmp(m.method.p, "ping", 4) == 0 && m.params == 4 &&
	   doc.nodes[m.params].type == PROTO_ARRAY,
	   "request [0, 77, ping, []]");

	reset();
	must(proto_pack_request_head(&pk, UINT32_MAX, "add_message"));
	(void)msgpack_pack_map(&pk, 1);
	must(proto_pack_cstr(&pk, "user_id"));
	must(proto_pack_cstr(&pk, "u"));
	ok(env(&m, err, sizeof(err)) == 0 && m.msgid == UINT32_MAX &&
	   doc.nodes[m.params].type == PROTO_MAP,
	   "request with msgid 4294967295 and a map of params");

	reset();
	(void)msgpack_pack_array(&pk, 3);
	(void)msgpack_pack_int(&pk, 2);
	must(proto_pack_cstr(&pk, "log"));
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_int(&pk, 5);
	ok(env(&m, err, sizeof(err)) == 0 && m.kind == PROTO_NOTIFY &&
	   !m.has_msgid && m.method.len == 3 && m.params == 3,
	   "notification [2, log, [5]]");

	reset();
	must(proto_pack_result_head(&pk, 9));
	must(proto_pack_cstr(&pk, "pong"));
	ok(env(&m, err, sizeof(err)) == 0 && m.kind == PROTO_RESPONSE &&
	   m.has_msgid && m.msgid == 9 && m.error == 3 &&
	   doc.nodes[m.error].type == PROTO_NIL && m.result == 4 &&
	   proto_str_eq(&doc.nodes[m.result], "pong"),
	   "response [1, 9, nil, pong]");

	reset();
	must(proto_pack_error(&pk, true, 12, "invalid_params", "limit: bad"));
	ok(env(&m, err, sizeof(err)) == 0 && m.kind == PROTO_RESPONSE &&
	   m.msgid == 12 && doc.nodes[m.error].type == PROTO_MAP &&
	   proto_str_eq(&doc.nodes[proto_map_get(&doc, m.error, "code")],
			"invalid_params") &&
	   proto_str_eq(&doc.nodes[proto_map_get(&doc, m.error, "message")],
			"limit: bad") &&
	   doc.nodes[m.result].type == PROTO_NIL,
	   "error response [1, 12, {code, message}, nil]");

	/* invalid ones */
	reset();
	(void)msgpack_pack_map(&pk, 0);
	check_bad_env("a map", false, 0, "not an array");
	reset();
	(void)msgpack_pack_int(&pk, 0);
	check_bad_env("an integer", false, 0, "not an array");
	reset();
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("an empty array", false, 0, "empty array");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 3);
	(void)msgpack_pack_int(&pk, 1);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("type 3", true, 1, "message type must be");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, -1);
	(void)msgpack_pack_int(&pk, 1);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("type -1", true, 1, "message type must be");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	must(proto_pack_cstr(&pk, "0"));
	(void)msgpack_pack_int(&pk, 1);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("type as a string", true, 1, "message type must be");

	reset();
	(void)msgpack_pack_array(&pk, 3);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, 5);
	must(proto_pack_cstr(&pk, "ping"));
	check_bad_env("request of 3 elements", true, 5,
		      "a request must be an array of 4 elements, not 3");
	reset();
	(void)msgpack_pack_array(&pk, 5);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, 6);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	(void)msgpack_pack_nil(&pk);
	check_bad_env("request of 5 elements", true, 6,
		      "array of 4 elements, not 5");
	reset();
	(void)msgpack_pack_array(&pk, 1);
	(void)msgpack_pack_int(&pk, 0);
	check_bad_env("request of 1 element", false, 0,
		      "array of 4 elements, not 1");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 2);
	(void)msgpack_pack_int(&pk, 6);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("notification of 4 elements", false, 0,
		      "a notification must be an array of 3 elements");
	reset();
	(void)msgpack_pack_array(&pk, 3);
	(void)msgpack_pack_int(&pk, 1);
	(void)msgpack_pack_int(&pk, 6);
	(void)msgpack_pack_nil(&pk);
	check_bad_env("response of 3 elements", true, 6,
		      "a response must be an array of 4 elements");

	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, -1);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("negative msgid", false, 0, "msgid must be an integer");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_uint64(&pk, (uint64_t)UINT32_MAX + 1);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("msgid 2^32", false, 0, "msgid must be an integer");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_uint64(&pk, UINT64_MAX);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("msgid 2^64-1", false, 0, "msgid must be an integer");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	must(proto_pack_cstr(&pk, "1"));
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("msgid as a string", false, 0, "msgid must be");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_double(&pk, 1.0);
	must(proto_pack_cstr(&pk, "ping"));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("msgid as a float", false, 0, "msgid must be");

	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, 3);
	(void)msgpack_pack_int(&pk, 1);
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("method as an integer", true, 3,
		      "method must be a non-empty string");
	reset();
	must(proto_pack_request_head(&pk, 4, ""));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("empty method", true, 4,
		      "method must be a non-empty string");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, 4);
	(void)msgpack_pack_bin_with_body(&pk, "ping", 4);
	(void)msgpack_pack_array(&pk, 0);
	ok(env(&m, err, sizeof(err)) == 0 && m.kind == PROTO_REQUEST &&
	   m.has_msgid && m.msgid == 4 && m.method.len == 4 &&
	   memcmp(m.method.p, "ping", 4) == 0,
	   "method as bin: accepted (issue 14)");
	reset();
	(void)msgpack_pack_array(&pk, 3);
	(void)msgpack_pack_int(&pk, 2);
	(void)msgpack_pack_bin_with_body(&pk, "nvim_set_client_info", 20);
	(void)msgpack_pack_array(&pk, 0);
	ok(env(&m, err, sizeof(err)) == 0 && m.kind == PROTO_NOTIFY &&
	   m.method.len == 20, "notification with a bin method: accepted");
	reset();
	(void)msgpack_pack_array(&pk, 3);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, 9);
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("three elements", true, 9, "must be an array of 4");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, 8);
	must(proto_pack_str(&pk, "pi\0ng", 5));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("method with a NUL", true, 8, "without NUL");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 0);
	(void)msgpack_pack_int(&pk, 8);
	must(proto_pack_str(&pk, "p\xffng", 4));
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("method not UTF-8", true, 8, "valid UTF-8");
	reset();
	must(proto_pack_request_head(&pk, 10, "ping"));
	must(proto_pack_cstr(&pk, "x"));
	check_bad_env("params as a string", true, 10,
		      "params must be an array or a map");
	reset();
	must(proto_pack_request_head(&pk, 11, "ping"));
	(void)msgpack_pack_nil(&pk);
	check_bad_env("params nil", true, 11, "params must be an array");
	reset();
	(void)msgpack_pack_array(&pk, 3);
	(void)msgpack_pack_int(&pk, 2);
	(void)msgpack_pack_nil(&pk);
	(void)msgpack_pack_array(&pk, 0);
	check_bad_env("notification without a method", false, 0,
		      "method must be");
	reset();
	(void)msgpack_pack_array(&pk, 3);
	(void)msgpack_pack_int(&pk, 2);
	must(proto_pack_cstr(&pk, "log"));
	(void)msgpack_pack_int(&pk, 1);
	check_bad_env("notification with int params", false, 0,
		      "params must be");
	reset();
	(void)msgpack_pack_array(&pk, 4);
	(void)msgpack_pack_int(&pk, 1);
	(void)msgpack_pack_int(&pk, 13);
	must(proto_pack_cstr(&pk, "oops"));
	(void)msgpack_pack_nil(&pk);
	check_bad_env("response with a string error", true, 13,
		      "error must be nil or a map");

	/* A short err buffer is never overrun and stays terminated. */
	{
		char tiny[8];

		memset(tiny, 'x', sizeof(tiny));
		reset();
		(void)msgpack_pack_map(&pk, 0);
		(void)env(&m, tiny, sizeof(tiny));
		ok(memchr(tiny, '\0', sizeof(tiny)) != NULL,
		   "error text is truncated into a short buffer");
		ok(env(&m, NULL, 0) == -1, "errlen 0 is allowed");
	}
}

/* --- timestamps -------------------------------------------------------- */

static void check_ts(usec_t t, size_t want_len)
{
	const struct proto_node *n;
	size_t used;
	usec_t back = 0;
	msgpack_unpacked up;
	msgpack_timestamp mts;
	size_t off = 0;
	char what[80];
	int64_t sec, rem;

	snprintf(what, sizeof(what), "timestamp %lld usec", (long long)t);
	reset();
	ok(proto_pack_timestamp(&pk, t) == 0, "%s: packed", what);
	if (!ok(dec(sb.data, sb.size, &used) == PROTO_OK, "%s: decodes", what))
		return;
	n = &doc.nodes[0];
	ok(n->type == PROTO_EXT && n->ext_type == -1 && n->v.s.len == want_len,
	   "%s: ext -1 of %zu bytes", what, want_len);
	ok(proto_node_timestamp(n, &back) == 0 && back == t,
	   "%s: round trip", what);

	/* msgpack-c agrees on the value */
	sec = t / USEC_PER_SEC;
	rem = t % USEC_PER_SEC;
	if (rem < 0) {
		rem += USEC_PER_SEC;
		sec--;
	}
	msgpack_unpacked_init(&up);
	ok(msgpack_unpack_next(&up, sb.data, sb.size, &off) ==
		   MSGPACK_UNPACK_SUCCESS &&
	   msgpack_object_to_timestamp(&up.data, &mts) &&
	   mts.tv_sec == sec && mts.tv_nsec == rem * 1000,
	   "%s: msgpack-c reads the same time", what);
	msgpack_unpacked_destroy(&up);
}

static void check_ts_bytes(const char *what, const uint8_t *b, size_t len,
			   int want_rc, usec_t want)
{
	size_t used;
	usec_t t = 12345;

	if (!ok(dec(b, len, &used) == PROTO_OK, "%s: decodes", what))
		return;
	if (want_rc == 0)
		ok(proto_node_timestamp(&doc.nodes[0], &t) == 0 && t == want,
		   "%s: is %lld", what, (long long)want);
	else
		ok(proto_node_timestamp(&doc.nodes[0], &t) == -1 && t == 12345,
		   "%s: not a timestamp", what);
}

static void test_timestamps(void)
{
	check_ts(0, 4);
	check_ts(1700000000LL * USEC_PER_SEC, 4);
	check_ts(((1LL << 32) - 1) * USEC_PER_SEC, 4);
	check_ts((1LL << 32) * USEC_PER_SEC, 8);
	check_ts(1500000, 8);
	check_ts(1700000000123456LL, 8);
	check_ts(((1LL << 34) - 1) * USEC_PER_SEC + 999999, 8);
	check_ts((1LL << 34) * USEC_PER_SEC, 12);
	check_ts(-1, 12);
	check_ts(-USEC_PER_SEC, 12);
	check_ts(-1500000, 12);
	check_ts(-86400LL * 365 * 100 * USEC_PER_SEC + 7, 12);
	check_ts(INT64_MAX, 12);
	check_ts(INT64_MIN, 12);

	/* Our encoder writes what msgpack-c's writes. */
	{
		static const usec_t ts[] = { 0, 1, 999999, 4294967296000000LL,
					     -1, -999999, -1000001 };
		bool all = true;

		for (size_t k = 0; k < ARRAY_LEN(ts); k++) {
			msgpack_sbuffer other;
			msgpack_packer opk;
			int64_t sec = ts[k] / USEC_PER_SEC;
			int64_t rem = ts[k] % USEC_PER_SEC;
			msgpack_timestamp m;

			if (rem < 0) {
				rem += USEC_PER_SEC;
				sec--;
			}
			m.tv_sec = sec;
			m.tv_nsec = (uint32_t)rem * 1000;
			msgpack_sbuffer_init(&other);
			msgpack_packer_init(&opk, &other, msgpack_sbuffer_write);
			(void)msgpack_pack_timestamp(&opk, &m);
			reset();
			if (proto_pack_timestamp(&pk, ts[k]) != 0 ||
			    other.size != sb.size ||
			    memcmp(other.data, sb.data, sb.size) != 0)
				all = false;
			msgpack_sbuffer_destroy(&other);
		}
		ok(all, "proto_pack_timestamp matches msgpack_pack_timestamp");
	}

	{
		static const uint8_t t32[] = { 0xd6, 0xff, 0, 0, 0, 10 };
		static const uint8_t t64[] = { 0xd7, 0xff, 0, 0, 0x0f, 0xa0,
					       0, 0, 0, 2 };	/* 1000 ns */
		static const uint8_t t64bad[] = { 0xd7, 0xff, 0xee, 0x6b, 0x28,
						  0x00, 0, 0, 0, 0 }; /* 1e9 */
		static const uint8_t t96[] = { 0xc7, 12, 0xff, 0, 0, 0x03,
					       0xe8, 0xff, 0xff, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff };
		static const uint8_t t96bad[] = { 0xc7, 12, 0xff, 0x3b, 0x9a,
						  0xca, 0x00, 0, 0, 0, 0, 0, 0,
						  0, 0 };
		static const uint8_t t96big[] = { 0xc7, 12, 0xff, 0, 0, 0, 0,
						  0x7f, 0xff, 0xff, 0xff, 0xff,
						  0xff, 0xff, 0xff };
		static const uint8_t t96min[] = { 0xc7, 12, 0xff, 0, 0, 0, 0,
						  0x80, 0, 0, 0, 0, 0, 0, 0 };
		static const uint8_t wrongtype[] = { 0xd6, 0x01, 0, 0, 0, 1 };
		static const uint8_t wronglen[] = { 0xd5, 0xff, 0, 1 };
		static const uint8_t notext[] = { 0xa4, 0, 0, 0, 1 };

		check_ts_bytes("timestamp32 of 10 s", t32, sizeof(t32), 0,
			       10 * USEC_PER_SEC);
		check_ts_bytes("timestamp64 of 2 s + 1000 ns", t64, sizeof(t64),
			       0, 2 * USEC_PER_SEC + 1);
		check_ts_bytes("timestamp64 with 1e9 ns", t64bad,
			       sizeof(t64bad), -1, 0);
		check_ts_bytes("timestamp96 of -1 s + 1000 ns", t96,
			       sizeof(t96), 0, -USEC_PER_SEC + 1);
		check_ts_bytes("timestamp96 with 1e9 ns", t96bad,
			       sizeof(t96bad), -1, 0);
		check_ts_bytes("timestamp96 of INT64_MAX s", t96big,
			       sizeof(t96big), -1, 0);
		check_ts_bytes("timestamp96 of INT64_MIN s", t96min,
			       sizeof(t96min), -1, 0);
		check_ts_bytes("ext 1 of 4 bytes", wrongtype, sizeof(wrongtype),
			       -1, 0);
		check_ts_bytes("ext -1 of 2 bytes", wronglen, sizeof(wronglen),
			       -1, 0);
		check_ts_bytes("a 4-byte string", notext, sizeof(notext), -1,
			       0);
	}
}

/* --- UTF-8 -------------------------------------------------------------- */

/* Reference check, written differently: decode, then judge the value. */
static bool ref_utf8(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t need, k;

		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			need = 1;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			need = 2;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			need = 3;
			cp = s[i] & 0x07;
		} else {
			return false;
		}
		if (i + need >= len)
			return false;	/* truncated */
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) ||
		    (need == 3 && cp < 0x10000))
			return false;
		if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

static void check_utf8(const char *what, const char *s, size_t len,
		       bool want)
{
	char buf[64];
	bool all = true;

	ok(utf8_valid(s, len) == want, "UTF-8 %s: %s", what,
	   want ? "valid" : "invalid");
	/* the same with ASCII around it, to cross the 8-byte fast path */
	for (size_t pre = 0; pre < 20 && pre + len + 9 <= sizeof(buf); pre++) {
		memset(buf, 'a', sizeof(buf));
		memcpy(buf + pre, s, len);
		if (utf8_valid(buf, pre + len + 9) != want)
			all = false;
	}
	ok(all, "UTF-8 %s: same inside ASCII at every offset", what);
}

static void test_utf8(void)
{
	check_utf8("empty", "", 0, true);
	check_utf8("ASCII", "hello, world", 12, true);
	check_utf8("U+00E9", "\xc3\xa9", 2, true);
	check_utf8("U+0080 (smallest 2-byte)", "\xc2\x80", 2, true);
	check_utf8("U+07FF", "\xdf\xbf", 2, true);
	check_utf8("U+0800 (smallest 3-byte)", "\xe0\xa0\x80", 3, true);
	check_utf8("U+20AC", "\xe2\x82\xac", 3, true);
	check_utf8("U+D7FF", "\xed\x9f\xbf", 3, true);
	check_utf8("U+E000", "\xee\x80\x80", 3, true);
	check_utf8("U+FFFF", "\xef\xbf\xbf", 3, true);
	check_utf8("U+10000 (smallest 4-byte)", "\xf0\x90\x80\x80", 4, true);
	check_utf8("U+1F600", "\xf0\x9f\x98\x80", 4, true);
	check_utf8("U+10FFFF (largest)", "\xf4\x8f\xbf\xbf", 4, true);
	check_utf8("Chinese", "\xe7\xb9\x81\xe9\xab\x94", 6, true);
	check_utf8("NUL (valid UTF-8)", "a\0b", 3, true);

	check_utf8("overlong NUL C0 80", "\xc0\x80", 2, false);
	check_utf8("overlong C1 BF", "\xc1\xbf", 2, false);
	check_utf8("overlong E0 80 80", "\xe0\x80\x80", 3, false);
	check_utf8("overlong E0 9F BF", "\xe0\x9f\xbf", 3, false);
	check_utf8("overlong F0 80 80 80", "\xf0\x80\x80\x80", 4, false);
	check_utf8("overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", 4, false);
	check_utf8("surrogate U+D800", "\xed\xa0\x80", 3, false);
	check_utf8("surrogate U+DBFF", "\xed\xaf\xbf", 3, false);
	check_utf8("surrogate U+DC00", "\xed\xb0\x80", 3, false);
	check_utf8("surrogate U+DFFF", "\xed\xbf\xbf", 3, false);
	check_utf8("surrogate pair", "\xed\xa0\xbd\xed\xb8\x80", 6, false);
	check_utf8("U+110000", "\xf4\x90\x80\x80", 4, false);
	check_utf8("F5 lead", "\xf5\x80\x80\x80", 4, false);
	check_utf8("F8 lead", "\xf8\x88\x80\x80\x80", 5, false);
	check_utf8("FE", "\xfe", 1, false);
	check_utf8("FF", "\xff", 1, false);
	check_utf8("lone continuation", "\x80", 1, false);
	check_utf8("continuation after ASCII", "a\xbf", 2, false);
	check_utf8("truncated 2-byte", "\xc3", 1, false);
	check_utf8("truncated 3-byte", "\xe2\x82", 2, false);
	check_utf8("truncated 4-byte", "\xf0\x9f\x98", 3, false);
	check_utf8("bad 2nd byte", "\xc3\x28", 2, false);
	check_utf8("bad 3rd byte", "\xe2\x82\x28", 3, false);
	check_utf8("bad 4th byte", "\xf0\x9f\x98\x28", 4, false);
	check_utf8("ASCII in place of continuation", "\xe2\x28\xa1", 3,
		   false);

	/* Exhaustive against the reference for 1, 2 and 3 bytes; the
	 * interesting part of 4-byte space. */
	{
		uint8_t b[4];
		long bad = 0;

		for (uint32_t v = 0; v < 0x1000000; v++) {
			b[0] = (uint8_t)(v >> 16);
			b[1] = (uint8_t)(v >> 8);
			b[2] = (uint8_t)v;
			if (utf8_valid((char *)b, 3) != ref_utf8(b, 3))
				bad++;
			if (v < 0x10000 &&
			    utf8_valid((char *)b + 1, 2) !=
				    ref_utf8(b + 1, 2))
				bad++;
		}
		is_int(bad, 0, "all 1-3 byte strings agree with the reference");

		bad = 0;
		for (uint32_t l = 0xe0; l <= 0xff; l++)
			for (uint32_t c1 = 0; c1 < 256; c1++)
				for (uint32_t c2 = 0x70; c2 < 0xd0; c2 += 3)
					for (uint32_t c3 = 0x70; c3 < 0xd0;
					     c3 += 5) {
						b[0] = (uint8_t)l;
						b[1] = (uint8_t)c1;
						b[2] = (uint8_t)c2;
						b[3] = (uint8_t)c3;
						if (utf8_valid((char *)b,
								     4) !=
						    ref_utf8(b, 4))
							bad++;
					}
		is_int(bad, 0, "4-byte strings agree with the reference");
	}
}

/* --- packing helpers ---------------------------------------------------- */

static void test_packing(void)
{
	size_t used;
	struct proto_msg m;
	char err[128];

	reset();
	ok(proto_pack_error(&pk, false, 0, "invalid_request",
			    "message is not an array") == 0,
	   "pack error without msgid");
	ok(dec(sb.data, sb.size, &used) == PROTO_OK && used == sb.size &&
	   doc.nodes[0].type == PROTO_ARRAY && doc.nodes[0].count == 4 &&
	   doc.nodes[1].v.i == 1 && doc.nodes[2].type == PROTO_NIL &&
	   doc.nodes[3].type == PROTO_MAP && doc.nodes[3].count == 2 &&
	   proto_str_eq(&doc.nodes[proto_map_get(&doc, 3, "code")],
			"invalid_request") &&
	   proto_str_eq(&doc.nodes[proto_map_get(&doc, 3, "message")],
			"message is not an array") &&
	   doc.nodes[doc.nodes[3].next].type == PROTO_NIL,
	   "error reply [1, nil, {code, message}, nil]");
	ok(proto_parse_envelope(&doc, &m, err, sizeof(err)) == -1 &&
	   !m.has_msgid,
	   "a nil msgid reply is not a valid response envelope");

	reset();
	ok(proto_pack_result_head(&pk, 300) == 0 &&
	   msgpack_pack_map(&pk, 2) == 0 &&
	   proto_pack_cstr(&pk, "id") == 0 &&
	   msgpack_pack_int64(&pk, 42) == 0 &&
	   proto_pack_cstr(&pk, "created_at") == 0 &&
	   proto_pack_timestamp(&pk, 1700000000000001LL) == 0,
	   "pack a result");
	{
		usec_t t = 0;
		uint32_t r;

		ok(dec(sb.data, sb.size, &used) == PROTO_OK &&
		   used == sb.size &&
		   proto_parse_envelope(&doc, &m, err, sizeof(err)) == 0 &&
		   m.kind == PROTO_RESPONSE && m.msgid == 300 &&
		   doc.nodes[m.error].type == PROTO_NIL,
		   "result reply parses as a response");
		r = m.result;
		ok(doc.nodes[proto_map_get(&doc, r, "id")].v.i == 42 &&
		   proto_node_timestamp(
			   &doc.nodes[proto_map_get(&doc, r, "created_at")],
			   &t) == 0 &&
		   t == 1700000000000001LL,
		   "result body");
	}

	reset();
	ok(proto_pack_request_head(&pk, 5, "get_thread") == 0 &&
	   msgpack_pack_array(&pk, 1) == 0 &&
	   proto_pack_str(&pk, "U123", 4) == 0,
	   "pack a request");
	ok(dec(sb.data, sb.size, &used) == PROTO_OK &&
	   proto_parse_envelope(&doc, &m, err, sizeof(err)) == 0 &&
	   m.kind == PROTO_REQUEST && m.msgid == 5 && m.method.len == 10 &&
	   memcmp(m.method.p, "get_thread", 10) == 0 &&
	   doc.nodes[m.params].count == 1 &&
	   proto_str_eq(&doc.nodes[m.params + 1], "U123"),
	   "request round trip");

	/* proto_str_eq */
	reset();
	must(proto_pack_str(&pk, "", 0));
	ok(dec(sb.data, sb.size, &used) == PROTO_OK &&
	   proto_str_eq(&doc.nodes[0], "") && !proto_str_eq(&doc.nodes[0], "a"),
	   "str_eq on an empty string");
	reset();
	(void)msgpack_pack_bin_with_body(&pk, "abc", 3);
	ok(dec(sb.data, sb.size, &used) == PROTO_OK &&
	   !proto_str_eq(&doc.nodes[0], "abc"),
	   "str_eq is false for bin");
	reset();
	must(proto_pack_cstr(&pk, "abc"));
	ok(dec(sb.data, sb.size, &used) == PROTO_OK &&
	   proto_str_eq(&doc.nodes[0], "abc") &&
	   !proto_str_eq(&doc.nodes[0], "ab") &&
	   !proto_str_eq(&doc.nodes[0], "abcd") &&
	   !proto_str_eq(&doc.nodes[0], "abd"),
	   "str_eq compares length and bytes");
}

static int failing_write(void *data, const char *buf, size_t len)
{
	(void)data;
	(void)buf;
	(void)len;
	return -1;
}

static void test_pack_failures(void)
{
	msgpack_packer bad;

	msgpack_packer_init(&bad, NULL, failing_write);
	ok(proto_pack_str(&bad, "x", 1) != 0, "pack_str reports failure");
	ok(proto_pack_cstr(&bad, "x") != 0, "pack_cstr reports failure");
	ok(proto_pack_timestamp(&bad, 0) != 0 &&
	   proto_pack_timestamp(&bad, 1) != 0 &&
	   proto_pack_timestamp(&bad, -1) != 0,
	   "pack_timestamp reports failure");
	ok(proto_pack_result_head(&bad, 1) != 0,
	   "pack_result_head reports failure");
	ok(proto_pack_error(&bad, true, 1, "a", "b") != 0 &&
	   proto_pack_error(&bad, false, 1, "a", "b") != 0,
	   "pack_error reports failure");
	ok(proto_pack_request_head(&bad, 1, "ping") != 0,
	   "pack_request_head reports failure");
}

static void test_status_str(void)
{
	static const enum proto_status all[] = {
		PROTO_OK, PROTO_INCOMPLETE, PROTO_ERR_SYNTAX,
		PROTO_ERR_TOO_LARGE, PROTO_ERR_TOO_DEEP,
	};
	bool distinct = true;

	for (size_t i = 0; i < ARRAY_LEN(all); i++)
		for (size_t j = i + 1; j < ARRAY_LEN(all); j++)
			if (strcmp(proto_status_str(all[i]),
				   proto_status_str(all[j])) == 0)
				distinct = false;
	ok(distinct, "each status has its own text");
	is_str(proto_status_str(PROTO_ERR_TOO_LARGE), "message too large",
	       "TOO_LARGE text");
	is_str(proto_status_str((enum proto_status)99), "unknown status",
	       "an unknown status");
}

int main(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	test_scalars();
	test_bytes();
	test_containers();
	test_nonminimal();
	test_next();
	test_split();
	test_huge();
	test_limits();
	test_syntax();
	test_random();
	test_random_raw();
	test_request_nodes();
	test_envelope();
	test_timestamps();
	test_utf8();
	test_packing();
	test_pack_failures();
	test_status_str();
	is_int(pack_failures, 0, "no packing helper failed along the way");

	msgpack_sbuffer_destroy(&sb);
	return tap_done();
}
