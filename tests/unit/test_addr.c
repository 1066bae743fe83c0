/*
 * test_addr.c - [http] listen addresses (addr.c) and the growable string
 * (buf.c): what is accepted, what is refused and why.
 */
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "tap.h"

static void accepts(const char *text, bool is_unix, const char *host,
		    unsigned port)
{
	struct addr_listen a;
	char why[128] = "";

	if (!ok(addr_parse_listen(text, &a, why, sizeof(why)) == 0,
		"accepts %s", text)) {
		printf("#   %s\n", why);
		return;
	}
	ok(a.is_unix == is_unix, "%s: unix %d", text, is_unix);
	is_str(a.host, host, "%s: host", text);
	is_int(a.port, port, "%s: port", text);
}

static void refuses(const char *text, const char *reason)
{
	struct addr_listen a;
	char why[128] = "";

	ok(addr_parse_listen(text, &a, why, sizeof(why)) < 0,
	   "refuses %s", text);
	ok(strstr(why, reason) != NULL, "%s: \"%s\" in \"%s\"", text, reason,
	   why);
}

static void test_addr(void)
{
	char longpath[200];

	accepts("127.0.0.1:9650", false, "127.0.0.1", 9650);
	accepts("127.1.2.3:0", false, "127.1.2.3", 0);
	accepts("[::1]:65535", false, "::1", 65535);
	accepts("localhost:80", false, "localhost", 80);
	accepts("/run/convd/http.sock", true, "/run/convd/http.sock", 0);
	refuses("0.0.0.0:9650", "only a loopback address");
	refuses("10.0.0.1:9650", "only a loopback address");
	refuses("[::]:9650", "only a loopback address");
	refuses("[::ffff:127.0.0.1]:9650", "only a loopback address");
	refuses("[::1:9650", "[::1]:PORT");
	refuses("::1:9650", "IP address or localhost");
	refuses("example.com:80", "IP address or localhost");
	refuses("127.0.0.1", "HOST:PORT");
	refuses(":80", "HOST:PORT");
	refuses("127.0.0.1:", "0 to 65535");
	refuses("127.0.0.1:65536", "0 to 65535");
	refuses("127.0.0.1:123456", "0 to 65535");
	refuses("127.0.0.1:-1", "0 to 65535");
	refuses("127.0.0.1:8o", "0 to 65535");
	refuses("http.sock", "HOST:PORT");
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	refuses(longpath, "shorter than 108 bytes");
}

static void test_buf(void)
{
	struct buf b = { 0 };
	msgpack_object k = { .type = MSGPACK_OBJECT_NEGATIVE_INTEGER };
	char d[48];

	buf_adds(&b, "a");
	buf_add(&b, "bc", 2);
	for (int i = 0; i < 100; i++)
		buf_printf(&b, "%d", i % 10);
	ok(!b.nomem && b.len == 103 && strlen(b.p) == 103, "buf grows");
	k.via.i64 = -5;
	b.len = 0;
	buf_add_key(&b, &k);
	is_str(b.p, "-5", "a negative key");
	buf_free(&b);
	ok(b.p == NULL && b.len == 0, "buf_free empties");
	buf_fmt_double(d, sizeof(d), 0.1);
	is_str(d, "0.1", "0.1 short");
	buf_fmt_double(d, sizeof(d), 1.0 / 3);
	is_str(d, "0.33333333333333331", "1/3 exact");
}

int main(void)
{
	test_addr();
	test_buf();
	return tap_done();
}
