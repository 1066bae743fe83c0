/*
 * bench/client_decode.c - libconvclient's response decoder (client_decode,
 * on mpread) against msgpack-c's unpacker (msgpack_unpack), which 1.2
 * used: the time to decode one response, for responses as convd sends
 * them.  Not part of `make check`; build and run from the source tree:
 *
 *   gcc -O2 -std=gnu11 -Iinclude bench/client_decode.c src/client_decode.c \
 *       src/mpread.c src/client_wire.c src/client_err.c \
 *       $(pkg-config --cflags --libs msgpack) -o /tmp/client_decode &&
 *   /tmp/client_decode
 *
 * Prints, per response shape: CPU nanoseconds per decode for each decoder,
 * the best of 7 rounds.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_internal.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);	/* CPU: load-proof */
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* [1, 7, nil, [ROW x rows]]: a get_recent_conversations answer; each row
 * {id, role, content, created_at, provider} with text or, structured,
 * a content of three parts. */
static void response(msgpack_sbuffer *sb, int rows, bool structured)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 7);
	msgpack_pack_nil(&pk);
	msgpack_pack_array(&pk, rows);
	for (int i = 0; i < rows; i++) {
		msgpack_pack_map(&pk, 5);
		pack_str(&pk, "id");
		msgpack_pack_int64(&pk, 1000000 + i);
		pack_str(&pk, "role");
		pack_str(&pk, i % 2 ? "assistant" : "user");
		pack_str(&pk, "content");
		if (structured) {
			msgpack_pack_array(&pk, 3);
			msgpack_pack_map(&pk, 2);
			pack_str(&pk, "type"); pack_str(&pk, "text");
			pack_str(&pk, "text");
			pack_str(&pk, "What is the weather in Taipei today?");
			msgpack_pack_map(&pk, 4);
			pack_str(&pk, "type"); pack_str(&pk, "tool_use");
			pack_str(&pk, "id"); pack_str(&pk, "toolu_01");
			pack_str(&pk, "name"); pack_str(&pk, "weather");
			pack_str(&pk, "input");
			msgpack_pack_map(&pk, 1);
			pack_str(&pk, "city"); pack_str(&pk, "Taipei");
			msgpack_pack_map(&pk, 2);
			pack_str(&pk, "type"); pack_str(&pk, "thinking");
			pack_str(&pk, "signature");
			msgpack_pack_bin_with_body(&pk, "0123456789abcdef", 16);
		} else {
			pack_str(&pk, "What is the weather in Taipei today? "
				      "Tell me in two sentences.");
		}
		pack_str(&pk, "created_at");
		msgpack_pack_ext_with_body(&pk, "\0\0\0\0\x65\x43\x21\x00", 8,
					   -1);
		pack_str(&pk, "provider");
		pack_str(&pk, "openai");
	}
}

/* Seconds for n decodes of sb with client_decode (mine) or msgpack-c. */
static double round_of(const msgpack_sbuffer *sb, long n, bool mine)
{
	double t0 = now();
	long ok = 0;

	for (long i = 0; i < n; i++) {
		if (mine) {
			msgpack_zone *zone = NULL;
			msgpack_object o;

			ok += client_decode(sb->data, sb->size, &zone, &o) ==
			      CLIENT_DECODE_OK;
			msgpack_zone_free(zone);
		} else {
			msgpack_unpacked up;
			size_t off = 0;

			msgpack_unpacked_init(&up);
			ok += msgpack_unpack_next(&up, sb->data, sb->size,
						  &off) ==
			      MSGPACK_UNPACK_SUCCESS;
			msgpack_unpacked_destroy(&up);
		}
	}
	if (ok != n)
		abort();
	return now() - t0;
}

/* The best of 7 rounds each, the two decoders taking turns (the machine
 * may be shared: the minimum is the least disturbed). */
static void run(const char *what, int rows, bool structured, long n)
{
	msgpack_sbuffer sb;
	double best[2] = { 1e9, 1e9 };

	response(&sb, rows, structured);
	for (int round = 0; round < 7; round++) {
		for (int mine = 0; mine < 2; mine++) {
			double t = round_of(&sb, n, mine);

			if (t < best[mine])
				best[mine] = t;
		}
	}
	printf("%-20s %6zu bytes  client_decode %7.0f ns  msgpack-c %7.0f ns\n",
	       what, sb.size, best[1] / n * 1e9, best[0] / n * 1e9);
	msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
	run("1 text row", 1, false, 200000);
	run("10 text rows", 10, false, 50000);
	run("10 structured rows", 10, true, 20000);
	run("1000 text rows", 1000, false, 500);
	return 0;
}
