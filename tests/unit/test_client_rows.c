/*
 * test_client_rows.c - libconvclient 1.2's pure parts through its public
 * API: rows decoded from results (convc_result_rows: every field,
 * structured content given back as the bytes that were packed, its text;
 * the 1.1 convc_result_messages reading that text), results of the wrong
 * shape refused, and msgpack values given by the caller checked before
 * anything is sent.
 */
#include <stdlib.h>
#include <string.h>

#include <convd/client.h>

#include "tap.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void str(const char *s)
{
	msgpack_pack_str_with_body(&pk, s, strlen(s));
}

static void reset(void)
{
	msgpack_sbuffer_clear(&sb);
}

/* The packed value `content` of the test, kept to compare. */
static char content_bytes[512];
static size_t content_len;

/* [{type: thinking, signature: bin 0..99}, {type: text, text: "Hello"},
 *  {deep: [{text: "world"}], text: 7}] */
static void pack_content(void)
{
	unsigned char sig[100];
	size_t start = sb.size;

	for (size_t i = 0; i < sizeof(sig); i++)
		sig[i] = (unsigned char)(255 - i);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_map(&pk, 2);
	str("type"); str("thinking");
	str("signature");
	msgpack_pack_bin_with_body(&pk, sig, sizeof(sig));
	msgpack_pack_map(&pk, 2);
	str("type"); str("text");
	str("text"); str("Hello");
	msgpack_pack_map(&pk, 2);
	str("deep");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 1);
	str("text"); str("world");
	str("text");		/* not a string: not text */
	msgpack_pack_int(&pk, 7);
	content_len = sb.size - start;
	memcpy(content_bytes, sb.data + start, content_len);
}

/* A row map: id, role, content, created_at, provider [+ fields]. */
static void pack_row(int64_t id, int structured, int fields)
{
	msgpack_pack_map(&pk, fields ? 11 : 5);
	str("id"); msgpack_pack_int64(&pk, id);
	str("role"); str(structured ? "assistant" : "user");
	str("content");
	if (structured)
		pack_content();
	else
		str("plain text");
	str("created_at");
	/* timestamp 64: 1796296906.123456 s */
	{
		uint64_t sec = 1796296906, nsec = 123456000;
		uint64_t v = (nsec << 34) | sec;
		char b[8];

		for (int i = 0; i < 8; i++)
			b[i] = (char)(v >> (56 - 8 * i));
		msgpack_pack_ext_with_body(&pk, b, 8, -1);
	}
	str("provider"); str("anthropic");
	if (!fields)
		return;
	str("conversation_id"); str("trip");
	str("tool_call_id"); str("toolu_1");
	str("name"); str("weather");
	str("model"); str("claude");
	str("tokens"); msgpack_pack_int(&pk, 40);
	str("metadata");
	msgpack_pack_map(&pk, 1);
	str("k"); msgpack_pack_nil(&pk);
}

static int decode(msgpack_unpacked *u)
{
	size_t off = 0;

	msgpack_unpacked_init(u);
	return msgpack_unpack_next(u, sb.data, sb.size, &off) ==
	       MSGPACK_UNPACK_SUCCESS;
}

static void test_rows(void)
{
	msgpack_unpacked u;
	struct convc_row *rows;
	struct convc_message *msgs;
	struct convc_error e;
	size_t n;

	reset();
	msgpack_pack_array(&pk, 2);
	pack_row(7, 0, 0);
	pack_row(8, 1, 1);
	ok(decode(&u), "rows packed");
	is_int(convc_result_rows(&u.data, &rows, &n, &e), CONVC_OK,
	       "convc_result_rows");
	is_int(n, 2, "two rows");
	is_int(rows[0].id, 7, "id");
	is_str(rows[0].content, "plain text", "text content");
	ok(!rows[0].content_mp && !rows[0].conversation_id &&
	   !rows[0].tool_call_id && !rows[0].name && !rows[0].model &&
	   !rows[0].has_tokens && !rows[0].metadata_mp &&
	   !rows[0].idempotency_key, "a plain row has no optional field");
	is_int(rows[0].created_at_usec, 1796296906123456LL, "created_at");
	is_str(rows[1].content, "Hello\nworld",
	       "structured content's text: the \"text\" strings, in order");
	is_int(rows[1].content_mp_len, content_len, "content_mp's length");
	ok(rows[1].content_mp &&
	   memcmp(rows[1].content_mp, content_bytes, content_len) == 0,
	   "content_mp: the bytes packed, bin kept");
	is_str(rows[1].conversation_id, "trip", "conversation_id");
	is_str(rows[1].tool_call_id, "toolu_1", "tool_call_id");
	is_str(rows[1].name, "weather", "name");
	is_str(rows[1].model, "claude", "model");
	ok(rows[1].has_tokens && rows[1].tokens == 40, "tokens");
	ok(rows[1].metadata_mp_len == 4 &&
	   memcmp(rows[1].metadata_mp, "\x81\xa1k\xc0", 4) == 0,
	   "metadata_mp");
	convc_rows_free(rows, n);
	/* the 1.1 reader: the text */
	is_int(convc_result_messages(&u.data, &msgs, &n, &e), CONVC_OK,
	       "convc_result_messages on structured content");
	is_str(msgs[1].content, "Hello\nworld", "1.1 reads its text");
	is_int(msgs[1].content_len, 11, "content_len");
	is_str(msgs[1].role, "assistant", "role");
	is_str(msgs[1].provider, "anthropic", "provider");
	convc_messages_free(msgs, n);
	msgpack_unpacked_destroy(&u);
}

static void test_no_text(void)
{
	msgpack_unpacked u;
	struct convc_row *rows;
	struct convc_error e;
	size_t n;

	reset();
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 5);
	str("id"); msgpack_pack_int(&pk, 1);
	str("role"); str("assistant");
	str("content");
	msgpack_pack_map(&pk, 1);
	str("tool_calls");
	msgpack_pack_array(&pk, 0);
	str("created_at");
	msgpack_pack_ext_with_body(&pk, "\0\0\0\1", 4, -1);
	str("provider"); str("openai");
	ok(decode(&u), "packed");
	is_int(convc_result_rows(&u.data, &rows, &n, &e), CONVC_OK,
	       "a map without text");
	is_str(rows[0].content, "", "its text is empty");
	is_int(rows[0].content_len, 0, "of length 0");
	convc_rows_free(rows, n);
	msgpack_unpacked_destroy(&u);
}

static void test_bad_shapes(void)
{
	static const char *const what[] = {
		"content a number", "tokens a string", "metadata an array",
		"conversation_id a number", "not an array",
	};
	static struct convc_row dummy;
	struct convc_row *rows;
	struct convc_error e;
	size_t n;

	for (int i = 0; i < 5; i++) {
		msgpack_unpacked u;

		reset();
		if (i < 4)
			msgpack_pack_array(&pk, 1);
		msgpack_pack_map(&pk, 6);
		str("id"); msgpack_pack_int(&pk, 1);
		str("role"); str("user");
		str("content");
		if (i == 0)
			msgpack_pack_int(&pk, 5);
		else
			str("x");
		str("created_at");
		msgpack_pack_ext_with_body(&pk, "\0\0\0\1", 4, -1);
		str("provider"); str("p");
		str(i == 1 ? "tokens" : i == 2 ? "metadata"
						: "conversation_id");
		if (i == 1)
			str("12");
		else if (i == 2)
			msgpack_pack_array(&pk, 0);
		else
			msgpack_pack_int(&pk, 3);
		decode(&u);
		rows = &dummy;
		is_int(convc_result_rows(&u.data, &rows, &n, &e),
		       CONVC_ERR_LOCAL, "refused: %s", what[i]);
		ok(strcmp(e.code, "protocol") == 0 && !rows && n == 0,
		   "\"protocol\", nothing returned: %s", what[i]);
		msgpack_unpacked_destroy(&u);
	}
}

static void test_values_checked(void)
{
	struct convc_message_opts o;
	struct convc_state_opts so;
	struct convc_error e;
	static const struct {
		const char *bytes;
		size_t len;
		const char *what;
	} bad[] = {
		{ "\x2a", 1, "an integer" },
		{ "\xa3" "abc", 4, "a string" },
		{ "\x92\x01", 2, "an array cut short" },
		{ "\x91\x01\x01", 3, "two objects" },
		{ "\xc1", 1, "never msgpack" },
		{ "", 0, "nothing" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&o, 0, sizeof(o));
		o.content_mp = bad[i].bytes;
		o.content_mp_len = bad[i].len;
		memset(&e, 0, sizeof(e));
		is_int(convc_add_message_ex(NULL, "u", "p", "user", NULL, 0, &o,
					    NULL, NULL, NULL, &e),
		       CONVC_ERR_LOCAL, "content_mp %s refused", bad[i].what);
		is_str(e.code, "invalid_argument", "invalid_argument: %s",
		       bad[i].what);
	}
	memset(&o, 0, sizeof(o));
	o.metadata_mp = "\x91\x01";	/* an array */
	o.metadata_mp_len = 2;
	is_int(convc_import_message_ex(NULL, "u", "p", "user", "x", 1, 0, &o,
				       NULL, NULL, &e),
	       CONVC_ERR_LOCAL, "metadata must be a map");
	ok(strstr(e.message, "metadata") != NULL, "the message names it: %s",
	   e.message);
	o.metadata_mp = NULL;
	o.content_mp = "\x90";
	o.content_mp_len = 1;
	is_int(convc_add_message_ex(NULL, "u", "p", "user", "x", 1, &o, NULL,
				    NULL, NULL, &e),
	       CONVC_ERR_LOCAL, "text and content_mp both");
	memset(&so, 0, sizeof(so));
	is_int(convc_set_state(NULL, "u", "p", "\x90", 1, &so, NULL, &e),
	       CONVC_ERR_LOCAL, "a state must be a map");
	is_int(convc_set_state(NULL, "u", "p", NULL, 0, &so, NULL, &e),
	       CONVC_ERR_LOCAL, "a state is required");
}

int main(void)
{
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	test_rows();
	test_no_text();
	test_bad_shapes();
	test_values_checked();
	msgpack_sbuffer_destroy(&sb);
	return tap_done();
}
