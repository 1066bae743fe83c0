/*
 * test_prom.c - the Prometheus exposition of a stats map (prom.c), the
 * text both GET /metrics and `convctl stats --prometheus` print: known
 * leaves become named metrics with their units converted, methods the
 * labelled families and the latency histogram, unknown leaves generic
 * gauges; label values escaped and kept UTF-8; names never used twice.
 */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"
#include "tap.h"

/* ------------------------------------------------------------------ */
/* building stats maps                                                 */

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void begin(void)
{
	msgpack_sbuffer_destroy(&sb);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void map(size_t n)
{
	msgpack_pack_map(&pk, n);
}

static void str(const char *s)
{
	msgpack_pack_str_with_body(&pk, s, strlen(s));
}

static void strn(const char *s, size_t n)
{
	msgpack_pack_str_with_body(&pk, s, n);
}

static void num(int64_t v)
{
	msgpack_pack_int64(&pk, v);
}

/* A msgpack timestamp (extension -1, 64-bit form) of sec seconds and
 * nsec nanoseconds. */
static void stamp(uint64_t sec, uint32_t nsec)
{
	uint64_t v = (uint64_t)nsec << 34 | sec;
	char b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (char)(v >> (56 - 8 * i));
	msgpack_pack_ext_with_body(&pk, b, 8, -1);
}

/* The exposition of what was packed since begin(); NULL if it is not a
 * single map or the formatter fails.  The caller frees it. */
static char *expose(void)
{
	msgpack_unpacked up;
	struct buf out = { 0 };
	size_t off = 0;
	char *text = NULL;

	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, sb.data, sb.size, &off) ==
		    MSGPACK_UNPACK_SUCCESS &&
	    off == sb.size && prom_format(&out, &up.data) == 0)
		text = strdup(out.p ? out.p : "");
	buf_free(&out);
	msgpack_unpacked_destroy(&up);
	return text;
}

static int has(const char *text, const char *line)
{
	return text && strstr(text, line) != NULL;
}

static size_t count(const char *text, const char *s)
{
	size_t n = 0;

	for (const char *p = text; p && (p = strstr(p, s)); p += strlen(s))
		n++;
	return n;
}

/* ------------------------------------------------------------------ */

static void test_known_leaves(void)
{
	char *t;

	begin();
	map(4);
	str("uptime_s"); num(5);
	str("version"); str("1.2.3");
	str("started_at"); stamp(1700000000, 250000000);
	str("clients"); map(2);
		str("accepted"); num(3);
		str("connected"); num(2);
	t = expose();
	ok(t != NULL, "a map is formatted");
	ok(has(t, "# HELP convd_uptime_seconds Seconds since convd started.\n"
		  "# TYPE convd_uptime_seconds gauge\n"
		  "convd_uptime_seconds 5\n"),
	   "a known gauge: HELP, TYPE, sample");
	ok(has(t, "# TYPE convd_build_info gauge\n"
		  "convd_build_info{version=\"1.2.3\"} 1\n"),
	   "a string is an info metric with its value as the label");
	ok(has(t, "convd_start_time_seconds 1700000000.25\n"),
	   "a timestamp in Unix seconds");
	ok(has(t, "# TYPE convd_clients_accepted_total counter\n"
		  "convd_clients_accepted_total 3\n"),
	   "a counter ends in _total");
	ok(has(t, "convd_clients_connected 2\n"), "a nested gauge");
	ok(strstr(t, "convd_uptime_seconds") < strstr(t, "convd_build_info") &&
	   strstr(t, "convd_build_info") < strstr(t, "convd_start_time") &&
	   strstr(t, "convd_start_time") <
		   strstr(t, "convd_clients_accepted_total"),
	   "families in the order of their first sample in the map");
	is_int(count(t, "# TYPE "), 5, "one TYPE line per family");
	free(t);
}

static void test_methods(void)
{
	char *t;

	begin();
	map(1);
	str("methods"); map(2);
	str("ping"); map(3);
		str("requests"); num(10);
		str("errors"); map(1); str("overloaded"); num(2);
		str("latency_us"); map(6);
			str("p50"); num(40);
			str("max"); num(1500);
			str("buckets"); map(3);
				str("250"); num(7);
				str("1000"); num(9);
				str("+Inf"); num(10);
			str("sum"); num(2500);
			str("count"); num(10);
			str("p99"); num(900);
	str("add_message"); map(1);
		str("requests"); num(4);
	t = expose();
	ok(t != NULL, "methods formatted");
	ok(has(t, "# TYPE convd_requests_total counter\n"
		  "convd_requests_total{method=\"ping\"} 10\n"
		  "convd_requests_total{method=\"add_message\"} 4\n"),
	   "one family, a sample per method, under one TYPE line");
	ok(has(t, "convd_request_errors_total{method=\"ping\","
		  "code=\"overloaded\"} 2\n"),
	   "errors by method and code");
	ok(has(t, "# TYPE convd_request_duration_seconds histogram\n"),
	   "the latency histogram");
	ok(has(t, "convd_request_duration_seconds_bucket{method=\"ping\","
		  "le=\"0.00025\"} 7\n"),
	   "a bucket's bound in seconds");
	ok(has(t, "convd_request_duration_seconds_bucket{method=\"ping\","
		  "le=\"0.001\"} 9\n"), "the next bucket");
	ok(has(t, "convd_request_duration_seconds_bucket{method=\"ping\","
		  "le=\"+Inf\"} 10\n"), "+Inf");
	ok(has(t, "convd_request_duration_seconds_sum{method=\"ping\"} "
		  "0.0025\n"), "the sum in seconds");
	ok(has(t, "convd_request_duration_seconds_count{method=\"ping\"} "
		  "10\n"), "the count");
	ok(has(t, "convd_request_duration_max_seconds{method=\"ping\"} "
		  "0.0015\n"), "the maximum in seconds");
	ok(!has(t, "p50") && !has(t, "p99") && !has(t, "0.00004"),
	   "percentiles left out");
	free(t);
}

static void test_unknown_leaves(void)
{
	char *t;

	begin();
	map(6);
	str("new-thing"); map(2);
		str("count"); num(7);
		str("state"); str("warm");
	str("nothing"); msgpack_pack_nil(&pk);
	str("bytes"); msgpack_pack_bin_with_body(&pk, "ab", 2);
	str("empty"); map(0);
	str("flag"); msgpack_pack_true(&pk);
	str("ratio"); msgpack_pack_double(&pk, 0.5);
	t = expose();
	ok(t != NULL, "unknown leaves formatted");
	ok(has(t, "# TYPE convd_new_thing_count gauge\n"
		  "convd_new_thing_count 7\n"),
	   "an unknown number: a gauge named after its path");
	ok(has(t, "# HELP convd_new_thing_count "), "with a HELP line");
	ok(has(t, "convd_new_thing_state_info{value=\"warm\"} 1\n"),
	   "an unknown string: an _info metric");
	ok(has(t, "convd_flag 1\n"), "a boolean as 1");
	ok(has(t, "convd_ratio 0.5\n"), "a float as it is");
	ok(!has(t, "nothing") && !has(t, "bytes") && !has(t, "empty"),
	   "nil, binary and empty maps are left out");
	free(t);
}

static void test_names_never_twice(void)
{
	char *t;

	begin();
	map(2);
	str("uptime_s"); num(5);
	/* an unknown leaf whose generated name is a known metric's */
	str("uptime"); map(1); str("seconds"); num(9);
	t = expose();
	ok(t != NULL, "formatted");
	is_int(count(t, "# TYPE convd_uptime_seconds "), 1,
	       "the known metric's name is used once");
	ok(has(t, "convd_uptime_seconds 5\n") && !has(t, " 9\n"),
	   "the unknown leaf that would take it is dropped");
	free(t);
}

static void test_label_values(void)
{
	static const char bad[] = "caf\xe9 \xff\"x\\y\nz \xe2\x82";
	char *t;

	begin();
	map(1);
	str("pool"); map(1);
		str("last_error"); strn(bad, sizeof(bad) - 1);
	t = expose();
	ok(has(t, "convd_pool_last_error_info{value=\"caf\xEF\xBF\xBD "
		  "\xEF\xBF\xBD\\\"x\\\\y\\nz \xEF\xBF\xBD\xEF\xBF\xBD\"} 1\n"),
	   "label value: \\\" \\\\ \\n escaped, each invalid byte "
	   "(stray, cut short) U+FFFD");
	free(t);
	begin();
	map(1);
	str("version"); str("\xe2\x82\xac \xf0\x9f\x98\x80");
	t = expose();
	ok(has(t, "convd_build_info{version=\"\xe2\x82\xac "
		  "\xf0\x9f\x98\x80\"} 1\n"), "valid UTF-8 kept as it is");
	free(t);
}

static void test_not_a_map(void)
{
	char *t;

	begin();
	map(0);
	t = expose();
	ok(t && t[0] == '\0', "an empty map: an empty exposition");
	free(t);
}

int main(void)
{
	msgpack_sbuffer_init(&sb);
	test_known_leaves();
	test_methods();
	test_unknown_leaves();
	test_names_never_twice();
	test_label_values();
	test_not_a_map();
	msgpack_sbuffer_destroy(&sb);
	return tap_done();
}
