/*
 * test_convctl_time.c - convctl's ISO 8601 times (convctl_time.c): the
 * text of a microsecond time (3 or 6 decimals, UTC) and the parser that
 * `convctl import` reads created_at with (zones, fractions, real dates).
 */
#include <stdint.h>
#include <string.h>

#include "convctl_time.h"
#include "tap.h"

static void fmt(int64_t usec, int digits, const char *want)
{
	char buf[64];

	convctl_time_format(buf, sizeof(buf), usec, digits);
	is_str(buf, want, "format %lld (%d digits)", (long long)usec, digits);
}

static void parses(const char *s, int64_t want)
{
	int64_t got = -1;

	ok(convctl_time_parse(s, &got) && got == want, "parse \"%s\"", s);
	if (got != want)
		printf("#   got %lld, want %lld\n", (long long)got,
		       (long long)want);
}

static void refuses(const char *s)
{
	int64_t got;

	ok(!convctl_time_parse(s, &got), "refuse \"%s\"", s);
}

int main(void)
{
	/* 2026-11-24T06:52:58.123456Z */
	const int64_t t = 1795503178123456LL;

	fmt(0, 3, "1970-01-01T00:00:00.000Z");
	fmt(0, 6, "1970-01-01T00:00:00.000000Z");
	fmt(t, 3, "2026-11-24T06:52:58.123Z");
	fmt(t, 6, "2026-11-24T06:52:58.123456Z");
	fmt(-1, 6, "1969-12-31T23:59:59.999999Z");
	fmt(-1500000, 3, "1969-12-31T23:59:58.500Z");
	fmt(253402300799999999LL, 6, "9999-12-31T23:59:59.999999Z");
	fmt(253402300800000000LL, 6, "@253402300800000000");
	fmt(-62167219200000000LL, 3, "0000-01-01T00:00:00.000Z");
	fmt(-62167219200000001LL, 3, "@-62167219200000001");
	fmt(INT64_MAX, 6, "@9223372036854775807");

	parses("1970-01-01T00:00:00Z", 0);
	parses("2026-11-24T06:52:58.123456Z", t);
	parses("2026-11-24T06:52:58.123456", t); /* no zone: UTC */
	parses("2026-11-24t06:52:58.123456z", t);
	parses("2026-11-24 06:52:58,123456Z", t);
	parses("2026-11-24T15:52:58.123456+09:00", t);
	parses("2026-11-24T15:52:58.123456+0900", t);
	parses("2026-11-24T15:52:58.123456+09", t);
	parses("2026-11-23T23:22:58.123456-07:30", t);
	parses("2026-11-24T06:52:58.1234569Z", t);	/* beyond µs: dropped */
	parses("2026-11-24T06:52:58.1Z", t - 23456);
	parses("2024-02-29T00:00:00Z", 1709164800000000LL);
	parses("2000-02-29T00:00:00Z", 951782400000000LL);
	parses("1969-12-31T23:59:59.5Z", -500000);
	parses("0000-01-01T00:00:00Z", -62167219200000000LL);
	parses("9999-12-31T23:59:59.999999Z", 253402300799999999LL);

	refuses("");
	refuses("2026-11-24");
	refuses("2026-11-24T06:52Z");
	refuses("26-11-24T06:52:58Z");
	refuses("2026-13-01T00:00:00Z");
	refuses("2026-00-01T00:00:00Z");
	refuses("2026-11-31T00:00:00Z");
	refuses("2023-02-29T00:00:00Z");
	refuses("1900-02-29T00:00:00Z");
	refuses("2026-11-24T24:00:00Z");
	refuses("2026-11-24T06:60:00Z");
	refuses("2026-11-24T06:52:60Z");
	refuses("2026-11-24T06:52:58.Z");
	refuses("2026-11-24T06:52:58+24:00");
	refuses("2026-11-24T06:52:58+09:60");
	refuses("2026-11-24T06:52:58+9");
	refuses("2026-11-24T06:52:58Z ");
	refuses("2026-11-24X06:52:58Z");
	refuses("2026-11-24T06:52:58ZZ");

	/* what format writes, parse reads back */
	for (int64_t v = -86400000000LL; v < 400LL * 86400000000LL * 365;
	     v += 86400000000LL * 97 + 1234567) {
		char buf[64];
		int64_t back = 0;

		convctl_time_format(buf, sizeof(buf), v, 6);
		if (!convctl_time_parse(buf, &back) || back != v) {
			ok(0, "round trip %lld (%s -> %lld)", (long long)v, buf,
			   (long long)back);
			return tap_done();
		}
	}
	ok(1, "format then parse gives back the time (400 years of samples)");
	return tap_done();
}
