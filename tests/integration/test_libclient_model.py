"""libconvclient 1.2 (issues 17 and 18) against the real convd: a program
built from the public header calls every new function, and what it says
is checked here against the database and against what the Python client
reads: structured content and metadata sent as msgpack bytes come back
byte for byte (a binary signature included), the 1.1 calls read
structured content as its text, conversations are listed and deleted,
set_state with an expected version conflicts, get_context keeps a tool
call with its result, get_messages pages back, search finds, another
user's message cannot be deleted, export -> import keeps every field,
forget_user leaves nothing; malformed msgpack is refused before it is
sent."""

import sys

import msgpack
import pytest

import convdtest
from convdtest import sql_literal as q, uid
from test_libclient import PRELUDE, build_program, run_program

sys.path.insert(0, convdtest.PYCLIENT)

from convd_client import ConversationManager  # noqa: E402

HIST = "simple_conversation_history"

PROGRAM = PRELUDE + r"""
static struct convc *c;

static void row(const char *what, const struct convc_row *r)
{
	printf("%s %s|%s|%s|%s|%s|%s|%lld|%s\n", what, r->role,
	       r->conversation_id ? r->conversation_id : "-",
	       r->tool_call_id ? r->tool_call_id : "-",
	       r->name ? r->name : "-", r->model ? r->model : "-",
	       r->has_tokens ? "tokens" : "-", (long long)r->tokens,
	       r->content);
	if (r->content_mp)
		hex("  content_mp", r->content_mp, r->content_mp_len);
	if (r->metadata_mp)
		hex("  metadata_mp", r->metadata_mp, r->metadata_mp_len);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

int main(int argc, char **argv)
{
	const char *user = argv[2], *other = argv[3], *copy = argv[4];
	msgpack_sbuffer content, meta, state;
	msgpack_packer pk;
	unsigned char sig[259];
	struct convc_message_opts o;
	struct convc_state_opts so;
	struct convc_context_opts co;
	struct convc_row *rows;
	struct convc_message *msgs;
	struct convc_conversation_list list;
	struct convc_state st;
	struct convc_context ctx;
	struct convc_page page;
	struct convc_forgotten f;
	size_t n;
	int64_t id, call_id, other_id, v, count, deleted;
	bool dup, imported;
	int rc;

	c = convc_connect(argv[1], 10000, &e);
	if (!c)
		return 2;
	if (argc > 5 && strcmp(argv[5], "forget") == 0) {
		CHECK(convc_clear_user_history_ex(c, copy, "anthropic", "trip",
						  NULL, &deleted, &e));
		printf("cleared %lld\n", (long long)deleted);
		CHECK(convc_delete_conversation(c, user, "openai", "trip",
						NULL, &deleted, &e));
		CHECK(convc_get_state(c, user, "openai", "trip", NULL, &st,
				      &e));
		printf("state_after_delete %d\n", st.found);
		CHECK(convc_forget_user(c, user, NULL, &f, &e));
		printf("forgot %lld %lld %lld %lld\n", (long long)f.messages,
		       (long long)f.threads, (long long)f.states,
		       (long long)f.idempotency_keys);
		CHECK(convc_forget_user(c, user, NULL, &f, &e));
		printf("forgot_again %lld %lld %lld %lld\n",
		       (long long)f.messages, (long long)f.threads,
		       (long long)f.states, (long long)f.idempotency_keys);
		convc_close(c);
		return 0;
	}
	printf("version %s\n", convc_version());

	/* [{type: thinking, thinking: ..., signature: bin},
	 *  {type: text, text: "Let me check."},
	 *  {type: tool_use, id: toolu_1, name: weather, input: {city: Taipei}}] */
	for (size_t i = 0; i < sizeof(sig); i++)
		sig[i] = (unsigned char)(i * 7 + 3);
	msgpack_sbuffer_init(&content);
	msgpack_packer_init(&pk, &content, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_map(&pk, 3);
	pack_str(&pk, "type"); pack_str(&pk, "thinking");
	pack_str(&pk, "thinking"); pack_str(&pk, "The user asks.");
	pack_str(&pk, "signature");
	msgpack_pack_bin_with_body(&pk, sig, sizeof(sig));
	msgpack_pack_map(&pk, 2);
	pack_str(&pk, "type"); pack_str(&pk, "text");
	pack_str(&pk, "text"); pack_str(&pk, "Let me check.");
	msgpack_pack_map(&pk, 4);
	pack_str(&pk, "type"); pack_str(&pk, "tool_use");
	pack_str(&pk, "id"); pack_str(&pk, "toolu_1");
	pack_str(&pk, "name"); pack_str(&pk, "weather");
	pack_str(&pk, "input");
	msgpack_pack_map(&pk, 1);
	pack_str(&pk, "city"); pack_str(&pk, "Taipei");
	hex("sent_content", content.data, content.size);
	msgpack_sbuffer_init(&meta);
	msgpack_packer_init(&pk, &meta, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	pack_str(&pk, "stop_reason"); pack_str(&pk, "tool_use");
	pack_str(&pk, "ms"); msgpack_pack_int(&pk, 812);
	hex("sent_metadata", meta.data, meta.size);

	/* issue 17: the fields */
	memset(&o, 0, sizeof(o));
	CHECK(convc_add_message_ex(c, user, "anthropic", "user",
				   "Weather in Taipei?", 18, &o, NULL, NULL,
				   NULL, &e));
	o.conversation_id = "trip";
	o.content_mp = content.data;
	o.content_mp_len = content.size;
	o.model = "claude-opus-4";
	o.has_tokens = true;
	o.tokens = 40;
	o.metadata_mp = meta.data;
	o.metadata_mp_len = meta.size;
	o.idempotency_key = "evt-c-1";
	CHECK(convc_add_message_ex(c, user, "anthropic", "assistant", NULL, 0,
				   &o, &call_id, NULL, &dup, &e));
	printf("dup %d\n", dup);
	CHECK(convc_add_message_ex(c, user, "anthropic", "assistant", NULL, 0,
				   &o, &id, NULL, &dup, &e));
	printf("dup_again %d %d\n", dup, id == call_id);
	memset(&o, 0, sizeof(o));
	o.conversation_id = "trip";
	o.tool_call_id = "toolu_1";
	o.name = "weather";
	o.has_tokens = true;
	o.tokens = 10;
	CHECK(convc_add_message_ex(c, user, "anthropic", "tool", "21 C", 4,
				   &o, NULL, NULL, NULL, &e));
	o.tool_call_id = NULL;
	o.name = NULL;
	CHECK(convc_add_message_ex(c, user, "anthropic", "assistant",
				   "It is 21 C.", 11, &o, NULL, NULL, NULL,
				   &e));
	/* structured content in the default conversation, read by 1.1 */
	memset(&o, 0, sizeof(o));
	o.content_mp = content.data;
	o.content_mp_len = content.size;
	CHECK(convc_add_message_ex(c, user, "anthropic", "assistant", NULL, 0,
				   &o, NULL, NULL, NULL, &e));
	CHECK(convc_get_recent_conversations(c, user, "anthropic", 10, NULL,
					     &msgs, &n, &e));
	for (size_t i = 0; i < n; i++)
		printf("old %s %s\n", msgs[i].role, msgs[i].content);
	convc_messages_free(msgs, n);

	CHECK(convc_get_recent_conversations_ex(c, user, "anthropic", 10,
						"trip", NULL, &rows, &n, &e));
	for (size_t i = 0; i < n; i++)
		row("recent", &rows[i]);
	convc_rows_free(rows, n);
	CHECK(convc_get_conversation_count_ex(c, user, NULL, "trip", NULL,
					      &count, &e));
	printf("count_trip %lld\n", (long long)count);

	/* conversations */
	CHECK(convc_list_conversations(c, user, NULL, NULL, NULL, 0, &list,
				       &e));
	for (size_t i = 0; i < list.n; i++)
		printf("conversation %s %s %lld %d\n", list.items[i].provider,
		       list.items[i].conversation_id
			       ? list.items[i].conversation_id : "-",
		       (long long)list.items[i].message_count,
		       list.items[i].first_message_at_usec <=
			       list.items[i].last_message_at_usec);
	printf("next %s\n", list.next ? list.next : "-");
	convc_conversation_list_free(&list);
	CHECK(convc_list_conversations(c, user, NULL, NULL, NULL, 1, &list,
				       &e));
	printf("page1 %zu %d\n", list.n, list.next != NULL);
	convc_conversation_list_free(&list);

	/* state */
	msgpack_sbuffer_init(&state);
	msgpack_packer_init(&pk, &state, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	pack_str(&pk, "previous_response_id"); pack_str(&pk, "resp_1");
	hex("sent_state", state.data, state.size);
	CHECK(convc_get_state(c, user, "openai", "trip", NULL, &st, &e));
	printf("state_before %d\n", st.found);
	memset(&so, 0, sizeof(so));
	so.conversation_id = "trip";
	so.has_expected_version = true;
	so.expected_version = 0;
	so.metadata_mp = meta.data;
	so.metadata_mp_len = meta.size;
	CHECK(convc_set_state(c, user, "openai", state.data, state.size, &so,
			      &v, &e));
	printf("set_version %lld\n", (long long)v);
	rc = convc_set_state(c, user, "openai", state.data, state.size, &so,
			     &v, &e);
	printf("set_again %d %s\n", rc, e.code);
	CHECK(convc_get_state(c, user, "openai", "trip", NULL, &st, &e));
	printf("state %d %lld %d\n", st.found, (long long)st.version,
	       st.updated_at_usec > 0);
	hex("  state_mp", st.state_mp, st.state_mp_len);
	convc_state_free(&st);
	so.has_expected_version = false;
	so.metadata_mp = NULL;
	CHECK(convc_set_state(c, user, "openai", state.data, state.size, &so,
			      &v, &e));
	printf("set_unconditional %lld\n", (long long)v);

	/* issue 18 */
	memset(&co, 0, sizeof(co));
	co.conversation_id = "trip";
	CHECK(convc_get_context(c, user, "anthropic", 50, &co, &ctx, &e));
	printf("context %zu %lld %d\n", ctx.n, (long long)ctx.total_tokens,
	       ctx.truncated);
	for (size_t i = 0; i < ctx.n; i++)
		row("ctx", &ctx.rows[i]);
	convc_context_free(&ctx);
	CHECK(convc_get_context(c, user, "anthropic", 1000, &co, &ctx, &e));
	printf("context_all %zu %lld %d\n", ctx.n,
	       (long long)ctx.total_tokens, ctx.truncated);
	convc_context_free(&ctx);
	{
		int64_t before = 0;

		do {
			CHECK(convc_get_messages(c, user, "anthropic", "trip",
						 NULL, before, 2, &page, &e));
			printf("page");
			for (size_t i = 0; i < page.n; i++)
				printf(" %lld", (long long)page.rows[i].id);
			printf("\n");
			before = page.has_next ? page.next_before_id : 0;
			convc_page_free(&page);
		} while (before > 0);
	}
	CHECK(convc_search_messages(c, user, "Taipei", NULL, NULL, NULL, 0,
				    &rows, &n, &e));
	for (size_t i = 0; i < n; i++)
		row("found", &rows[i]);
	convc_rows_free(rows, n);
	CHECK(convc_add_message_ex(c, other, "anthropic", "user", "mine", 4,
				   NULL, &other_id, NULL, NULL, &e));
	rc = convc_delete_message(c, user, other_id, NULL, &e);
	printf("delete_other %d %s\n", rc, e.code);
	CHECK(convc_delete_message(c, other, other_id, NULL, &e));
	printf("delete_own ok\n");

	/* export -> import, every field */
	CHECK(convc_export_history_ex(c, user, NULL, NULL, NULL, 0, 1000,
				      &rows, &n, &e));
	for (size_t i = 0; i < n; i++) {
		struct convc_message_opts io;

		memset(&io, 0, sizeof(io));
		io.conversation_id = rows[i].conversation_id;
		io.idempotency_key = rows[i].idempotency_key;
		io.tool_call_id = rows[i].tool_call_id;
		io.name = rows[i].name;
		io.model = rows[i].model;
		io.has_tokens = rows[i].has_tokens;
		io.tokens = rows[i].tokens;
		io.metadata_mp = rows[i].metadata_mp;
		io.metadata_mp_len = rows[i].metadata_mp_len;
		io.content_mp = rows[i].content_mp;
		io.content_mp_len = rows[i].content_mp_len;
		CHECK(convc_import_message_ex(
			c, copy, rows[i].provider, rows[i].role,
			rows[i].content_mp ? NULL : rows[i].content,
			rows[i].content_len, rows[i].created_at_usec, &io,
			NULL, &imported, &e));
		printf("imported %d\n", imported);
	}
	convc_rows_free(rows, n);

	/* refused before anything is sent */
	memset(&o, 0, sizeof(o));
	o.content_mp = "\x2a";		/* an integer */
	o.content_mp_len = 1;
	rc = convc_add_message_ex(c, user, "p", "user", NULL, 0, &o, NULL,
				  NULL, NULL, &e);
	printf("bad_int %d %s\n", rc, e.code);
	o.content_mp = content.data;
	o.content_mp_len = content.size - 1;
	rc = convc_add_message_ex(c, user, "p", "user", NULL, 0, &o, NULL,
				  NULL, NULL, &e);
	printf("bad_short %d %s\n", rc, e.code);
	rc = convc_add_message_ex(c, user, "p", "user", "x", 1, &o, NULL,
				  NULL, NULL, &e);
	printf("bad_both %d %s\n", rc, e.code);
	rc = convc_set_state(c, user, "p", content.data, content.size, NULL,
			     NULL, &e);
	printf("bad_state %d %s\n", rc, e.code);
	rc = convc_add_message_ex(c, user, "p", "user", NULL, 0, NULL, NULL,
				  NULL, NULL, &e);
	printf("no_content %d %s\n", rc, e.code);
	printf("usable %d\n", convc_usable(c));
	msgpack_sbuffer_destroy(&content);
	msgpack_sbuffer_destroy(&meta);
	msgpack_sbuffer_destroy(&state);
	convc_close(c);
	return 0;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    return build_program(tmp_path_factory.mktemp("libclient-model"),
                         "model", PROGRAM)


def run(program, *args):
    return run_program([program, *args])


def test_every_new_call(program, convd, pg):
    user, other, copy = (uid(f"lm-{t}") for t in ("u", "o", "c"))
    with ConversationManager(convd.socket) as m:
        m.save_thread_id(user, "thread_c")
    lines, one, every = run(program, convd.socket, user, other, copy)
    assert one("version").startswith("1.3.")
    sent = bytes.fromhex(one("sent_content"))
    meta = bytes.fromhex(one("sent_metadata"))
    value = msgpack.unpackb(sent, raw=False)
    assert value[0]["signature"] == bytes((i * 7 + 3) % 256
                                          for i in range(259))
    # the keyed add: once, the second a duplicate with the same id
    assert one("dup") == "0" and one("dup_again") == "1 1"
    # stored: the exact bytes, the text of the text parts
    assert pg.psql(f"SELECT encode(content_mp, 'hex'), content, "
                   f"encode(metadata, 'hex'), model, tokens FROM {HIST} "
                   f"WHERE user_id = {q(user)} AND conversation_id = 'trip' "
                   f"AND role = 'assistant' AND content_mp IS NOT NULL") == \
        f"{sent.hex()}|Let me check.|{meta.hex()}|claude-opus-4|40"
    # the Python client reads the same value, the signature as bytes
    with ConversationManager(convd.socket) as m:
        assert m.get_recent_conversations(
            user, "anthropic", conversation_id="trip")[0]["content"] == value
    # 1.1 reads structured content as its text
    assert every("old") == ["user Weather in Taipei?",
                            "assistant Let me check."]
    recent = [ln for ln in lines if ln.startswith(("recent ", "  "))]
    assert recent[:3] == [
        "recent assistant|trip|-|-|claude-opus-4|tokens|40|Let me check.",
        f"  content_mp {sent.hex()}", f"  metadata_mp {meta.hex()}"]
    assert every("recent")[1:] == ["tool|trip|toolu_1|weather|-|tokens|10|"
                                   "21 C",
                                   "assistant|trip|-|-|-|tokens|10|"
                                   "It is 21 C."]
    assert one("count_trip") == "3"
    assert every("conversation") == ["anthropic - 2 1",
                                     "anthropic trip 3 1"]
    assert one("next") == "-" and one("page1") == "1 1"
    # state
    assert one("state_before") == "0" and one("set_version") == "1"
    assert one("set_again") == "-1 conflict"
    assert one("state") == "1 1 1"
    assert one("  state_mp") == one("sent_state")
    assert one("set_unconditional") == "2"
    # the window: 50 tokens hold the answer, but not the tool result
    # with its call (10 + 40), so only the answer
    assert one("context") == "1 10 1"
    assert every("ctx") == ["assistant|trip|-|-|-|tokens|10|It is 21 C."]
    assert one("context_all") == "3 60 0"
    trip_ids = [int(x) for x in pg.psql(
        f"SELECT id FROM {HIST} WHERE user_id = {q(user)} AND "
        f"conversation_id = 'trip' ORDER BY id").split()]
    assert [ln.split()[1:] for ln in lines if ln.startswith("page ")] == \
        [[str(i) for i in trip_ids[1:]], [str(trip_ids[0])]]
    assert every("found") == ["user|-|-|-|-|-|0|Weather in Taipei?"]
    assert one("delete_other") == "-1 not_found"
    assert one("delete_own") == "ok"
    # refused locally, the connection still good
    for k in ("bad_int", "bad_short", "bad_both", "bad_state",
              "no_content"):
        assert one(k) == "-2 invalid_argument", k
    assert one("usable") == "1"
    # export -> import with every field: the same rows
    assert every("imported") == ["1"] * 5
    cols = ("model_provider, role, content, encode(content_mp, 'hex'), "
            "conversation_id, tool_call_id, name, model, tokens, "
            "encode(metadata, 'hex'), idempotency_key, created_at")

    def table(u):
        return pg.psql(f"SELECT {cols} FROM {HIST} WHERE user_id = {q(u)} "
                       f"ORDER BY id")
    assert table(copy) == table(user) and len(table(user).splitlines()) == 5

    lines, one, every = run(program, convd.socket, user, other, copy,
                            "forget")
    assert one("cleared") == "3"
    assert one("state_after_delete") == "0"
    # 5 messages (2 in the default conversation, 3 in "trip"), the thread,
    # no state (deleted with its conversation), 1 key (evt-c-1)
    assert one("forgot") == "5 1 0 1"
    assert one("forgot_again") == "0 0 0 0"
    assert table(user) == ""
    assert len(table(copy).splitlines()) == 2
