"""libconvclient reads every value convd accepts, byte for byte (issue 17).

A raw msgpack client (no msgpack library on the sending side: the bytes
are written by hand) stores structured content, metadata and states the
way a packer that does not pick the shortest encoding would: an int 64
holding 1, a str 8 holding four bytes, an array 16 of two elements, bins,
content nested 64 deep (convd's limit; msgpack-c's unpacker stops at 32).
A program built from the public header alone reads them back through
every call that returns them -- the typed calls, the generic call with
convc_reply_rows / convc_reply_mp, and a callback in the non-blocking mode
-- and each value must be the bytes the database holds, which are the
bytes that were sent.  A fake server answering with 100,000 levels of
nesting, or with lengths no response can have, makes the call fail with
"protocol" (or "closed"), never a crash, in bounded memory.
"""

import os
import shutil
import socket
import tempfile
import threading

import msgpack
import pytest

import convdtest
from convdtest import sql_literal as q, uid
from test_libclient import (PRELUDE, build_program, run_program,
                            sanitized_library)

HIST = "simple_conversation_history"

PROGRAM = PRELUDE + r"""
#include <poll.h>

static void rows(const char *what, const struct convc_row *r, size_t n)
{
	char key[64];

	for (size_t i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%s %s content", what, r[i].content);
		hex(key, r[i].content_mp, r[i].content_mp_len);
		snprintf(key, sizeof(key), "%s %s metadata", what,
			 r[i].content);
		hex(key, r[i].metadata_mp, r[i].metadata_mp_len);
	}
}

static void pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* [{user_id, provider: "p", conversation_id, limit: 1000}] */
static void recent_params(msgpack_sbuffer *sb, const char *user,
			  const char *conv)
{
	msgpack_packer pk;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 4);
	pack_str(&pk, "user_id"); pack_str(&pk, user);
	pack_str(&pk, "provider"); pack_str(&pk, "p");
	pack_str(&pk, "conversation_id"); pack_str(&pk, conv);
	pack_str(&pk, "limit"); msgpack_pack_int(&pk, 1000);
}

/* In a callback: the rows with their exact bytes, and the first row's
 * content through convc_reply_mp. */
static void on_rows(struct convc *c, int status,
		    const struct convc_reply *reply,
		    const struct convc_error *err, void *arg)
{
	struct convc_row *r;
	size_t n, len = 0;
	const msgpack_object *content;

	(void)c;
	*(int *)arg = 1;
	if (status != CONVC_OK) {
		printf("cb_status %d %s %s\n", status, err->code,
		       err->message);
		return;
	}
	if (convc_reply_rows(reply, &reply->result, &r, &n, &e) != CONVC_OK) {
		printf("cb_rows_fail %s\n", e.code);
		return;
	}
	rows("cb", r, n);
	convc_rows_free(r, n);
	content = reply->result.via.array.size
			  ? convc_map_get(&reply->result.via.array.ptr[0],
					  "content")
			  : NULL;
	if (content) {
		const void *p = convc_reply_mp(reply, content, &len);

		hex("cb_mp", p, len);
	}
}

/* Levels of arrays and maps down the first element of each. */
static int depth_of(const msgpack_object *o)
{
	int d = 0;

	for (;;) {
		if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size)
			o = &o->via.array.ptr[0];
		else if (o->type == MSGPACK_OBJECT_MAP && o->via.map.size)
			o = &o->via.map.ptr[0].val;
		else if (o->type == MSGPACK_OBJECT_ARRAY ||
			 o->type == MSGPACK_OBJECT_MAP)
			return d + 1;
		else
			return d;
		d++;
	}
}

static int cb_status;

static void on_any(struct convc *c, int status,
		   const struct convc_reply *reply,
		   const struct convc_error *err, void *arg)
{
	(void)c;
	*(int *)arg = 1;
	cb_status = status;
	if (status == CONVC_OK)
		printf("cb_depth %d\n", depth_of(&reply->result));
	else
		printf("cb_status %d %s %s\n", status, err->code,
		       err->message);
}

/* The non-blocking mode: poll(2) and convc_process until *done. */
static int drive(struct convc *c, const int *done)
{
	while (!*done) {
		struct pollfd p = { convc_fd(c), POLLIN, 0 };
		int rc;

		if (convc_want_write(c))
			p.events |= POLLOUT;
		if (poll(&p, 1, 10000) <= 0) {
			printf("FAIL poll\n");
			return 1;
		}
		rc = convc_process(c, (p.revents & POLLIN ? CONVC_EV_READ : 0) |
				      (p.revents & POLLOUT ? CONVC_EV_WRITE : 0),
				   &e);
		if (rc != CONVC_OK && !*done) {
			printf("process %d %s\n", rc, e.code);
			return 1;
		}
	}
	return 0;
}

/* The peak resident size of this program (VmHWM: getrusage's
 * ru_maxrss would count the process before exec, the test's Python). */
static void maxrss(void)
{
	char line[128];
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			printf("maxrss_kb %ld\n", strtol(line + 6, NULL, 10));
	if (f)
		fclose(f);
}

/* read SOCKET USER CONVERSATION: every way back of the values */
static int read_back(struct convc *c, const char *user, const char *conv)
{
	struct convc_row *r;
	struct convc_context ctx;
	struct convc_context_opts co;
	struct convc_page page;
	struct convc_state st;
	struct convc_conversation_list list;
	struct convc_reply reply;
	msgpack_sbuffer params;
	uint32_t msgid;
	size_t n;
	int done = 0;

	CHECK(convc_get_recent_conversations_ex(c, user, "p", 1000, conv, NULL,
						&r, &n, &e));
	rows("recent", r, n);
	convc_rows_free(r, n);
	CHECK(convc_export_history_ex(c, user, "p", conv, NULL, 0, 1000, &r,
				      &n, &e));
	rows("export", r, n);
	convc_rows_free(r, n);
	memset(&co, 0, sizeof(co));
	co.conversation_id = conv;
	CHECK(convc_get_context(c, user, "p", 10000000, &co, &ctx, &e));
	rows("context", ctx.rows, ctx.n);
	convc_context_free(&ctx);
	CHECK(convc_get_messages(c, user, "p", conv, NULL, 0, 1000, &page,
				 &e));
	rows("messages", page.rows, page.n);
	convc_page_free(&page);
	CHECK(convc_get_state(c, user, "p", conv, NULL, &st, &e));
	hex("state", st.state_mp, st.state_mp_len);
	convc_state_free(&st);
	CHECK(convc_list_conversations(c, user, NULL, NULL, NULL, 0, &list,
				       &e));
	for (size_t i = 0; i < list.n; i++)
		if (list.items[i].conversation_id &&
		    strcmp(list.items[i].conversation_id, conv) == 0)
			hex("conversation_metadata", list.items[i].metadata_mp,
			    list.items[i].metadata_mp_len);
	convc_conversation_list_free(&list);

	/* the generic call: exact with the reply, packed again without */
	recent_params(&params, user, conv);
	CHECK(convc_call(c, "get_recent_conversations", params.data,
			 params.size, &reply, &e));
	CHECK(convc_reply_rows(&reply, &reply.result, &r, &n, &e));
	rows("reply", r, n);
	convc_rows_free(r, n);
	CHECK(convc_result_rows(&reply.result, &r, &n, &e));
	rows("repacked", r, n);
	convc_rows_free(r, n);
	convc_reply_free(&reply);

	/* a callback, its frame decoded where it lies in the input buffer */
	CHECK(convc_send_cb(c, "get_recent_conversations", params.data,
			    params.size, on_rows, &done, &msgid, &e));
	if (drive(c, &done))
		return 1;
	msgpack_sbuffer_destroy(&params);
	printf("usable %d\n", convc_usable(c));
	return 0;
}

/* call SOCKET: one generic call, blocking; call_cb: through a callback */
static int call(struct convc *c, bool cb)
{
	struct convc_reply reply;
	uint32_t msgid;
	int rc, done = 0;

	if (!cb) {
		rc = convc_call(c, "ping", NULL, 0, &reply, &e);
		printf("call %d %s|%s\n", rc, rc ? e.code : "-",
		       rc ? e.message : "-");
		if (rc == CONVC_OK) {
			printf("depth %d\n", depth_of(&reply.result));
			convc_reply_free(&reply);
		}
	} else {
		CHECK(convc_send_cb(c, "ping", NULL, 0, on_any, &done, &msgid,
				    &e));
		if (drive(c, &done))
			return 1;
		rc = cb_status;
	}
	if (rc == CONVC_OK)	/* the fake server answers once */
		return 0;
	rc = convc_ping(c, &e);
	printf("after %d %s usable %d\n", rc, rc ? e.code : "-",
	       convc_usable(c));
	return 0;
}

int main(int argc, char **argv)
{
	struct convc *c;
	int rc;

	if (argc < 3 || (strcmp(argv[1], "read") == 0 && argc != 5))
		return 2;
	c = convc_connect(argv[2], 20000, &e);
	if (!c) {
		printf("FAIL connect %s %s\n", e.code, e.message);
		return 2;
	}
	if (strcmp(argv[1], "read") == 0)
		rc = read_back(c, argv[3], argv[4]);
	else
		rc = call(c, strcmp(argv[1], "call_cb") == 0);
	convc_close(c);
	maxrss();
	return rc;
}
"""


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    return build_program(tmp_path_factory.mktemp("libclient-exact"),
                         "exact", PROGRAM, std="gnu11")


def run(program, *args):
    # 256 MiB of address space (not under the sanitizers, which reserve
    # terabytes): a client that believed a declared length could not
    # stay under it
    argv = [program, *args]
    if not sanitized_library():
        argv = ["sh", "-c", 'ulimit -v 262144 && exec "$0" "$@"', *argv]
    return run_program(argv, timeout=convdtest.scaled(120))


# --- msgpack by hand -------------------------------------------------------

def s8(text):
    """A str 8 even where a fixstr would do."""
    b = text.encode()
    return b"\xd9" + bytes([len(b)]) + b


def i64(n):
    """An int 64 whatever the value."""
    return b"\xd3" + n.to_bytes(8, "big", signed=True)


def bin8(data):
    return b"\xc4" + bytes([len(data)]) + data


def bin32(data):
    """A bin 32 even where a bin 8 would do."""
    return b"\xc6" + len(data).to_bytes(4, "big") + data


def map16(pairs):
    """A map 16 of (packed key, packed value) pairs."""
    return b"\xde" + len(pairs).to_bytes(2, "big") + \
        b"".join(k + v for k, v in pairs)


def array16(items):
    return b"\xdc" + len(items).to_bytes(2, "big") + b"".join(items)


def p(obj):
    return msgpack.packb(obj, use_bin_type=True)


def request(msgid, method, fields):
    """[0, msgid, method, [{name: packed value, ...}]]."""
    return b"\x94\x00" + p(msgid) + p(method) + b"\x91" + \
        map16([(p(k), v) for k, v in fields])


def call_raw(raw, msgid, method, fields):
    raw.send(request(msgid, method, fields))
    resp = raw.recv()
    assert resp is not None, f"{method}: convd closed the connection"
    assert resp[1] == msgid and resp[2] is None, resp
    return resp[3]


def add(raw, msgid, user, conv, content, metadata=None):
    fields = [("user_id", p(user)), ("provider", p("p")),
              ("role", p("assistant")), ("content", content),
              ("conversation_id", p(conv))]
    if metadata is not None:
        fields.append(("metadata", metadata))
    return call_raw(raw, msgid, "add_message", fields)


def text_part(text):
    """{"type": "text", "text": TEXT}, the type as a str 8."""
    return map16([(p("type"), s8("text")), (p("text"), s8(text))])


def stored(pg, user, conv):
    return pg.psql(f"SELECT content, encode(content_mp, 'hex'), "
                   f"coalesce(encode(metadata, 'hex'), '-') FROM {HIST} "
                   f"WHERE user_id = {q(user)} AND conversation_id = "
                   f"{q(conv)} ORDER BY id").splitlines()


# What the values are: every one a longer encoding than needed somewhere.
SIG = bytes((i * 11 + 5) % 256 for i in range(300))
NONMIN = map16([
    (p("type"), s8("text")), (p("text"), s8("nonmin")),
    (p("one"), i64(1)), (p("minus"), b"\xd1\xff\xff"),
    (p("u16"), b"\xcd\x00\x05"), (p("f32"), b"\xca\x3f\xc0\x00\x00"),
    (p("list"), array16([b"\xcc\x01", bin8(b"\x00\xff")])),
    (p("empty"), b"\xdf\x00\x00\x00\x00"),
])
BINS = array16([
    map16([(p("type"), s8("thinking")), (p("thinking"), s8("hmm")),
           (p("signature"), bin32(SIG))]),
    map16([(p("type"), p("image")), (p("data"), bin32(bytes(70000)))]),
    text_part("bins"),
])
# 64 levels (convd's limit): 63 arrays around a map, a part at the bottom
DEEP = b"\x91" * 63 + text_part("deep")
META = map16([(p("stop"), s8("end_turn")), (p("ms"), i64(812))])
STATE = map16([(p("previous_response_id"), s8("resp_1")),
               (p("turn"), i64(1))])


def test_exact_bytes_through_every_call(program, convd, pg):
    user, conv = uid("exact"), "c1"
    with convdtest.Raw(convd.socket, raw=True) as raw:
        add(raw, 1, user, conv, NONMIN, META)
        add(raw, 2, user, conv, BINS)
        add(raw, 3, user, conv, DEEP)
        call_raw(raw, 4, "set_state", [
            ("user_id", p(user)), ("provider", p("p")), ("state", STATE),
            ("conversation_id", p(conv)), ("metadata", META)])
    # convd stored the bytes as they were sent
    assert stored(pg, user, conv) == [
        f"nonmin|{NONMIN.hex()}|{META.hex()}", f"bins|{BINS.hex()}|-",
        f"deep|{DEEP.hex()}|-"]
    lines, one, every = run(program, "read", convd.socket, user, conv)
    # typed calls, the generic call with its reply, a callback
    for how in ("recent", "export", "context", "messages", "reply", "cb"):
        for text, value in (("nonmin", NONMIN), ("bins", BINS),
                            ("deep", DEEP)):
            assert every(f"{how} {text} content") == [value.hex()], \
                (how, text, lines)
        assert every(f"{how} nonmin metadata") == [META.hex()], how
        assert every(f"{how} bins metadata") == ["-"], how
    assert one("cb_mp") == NONMIN.hex()
    assert one("state") == STATE.hex()
    assert one("conversation_metadata") == META.hex()
    assert one("usable") == "1"
    # without the reply, convc_result_rows packs the objects again: equal
    # values, the shortest encoding (what 1.2 gave everywhere)
    repacked = bytes.fromhex(one("repacked nonmin content"))
    assert repacked != NONMIN and \
        msgpack.unpackb(repacked) == msgpack.unpackb(NONMIN)
    assert bytes.fromhex(one("repacked deep content")) == \
        b"\x91" * 63 + p({"type": "text", "text": "deep"})


def test_many_values_read_back(program, convd, pg):
    """As many values as convd takes in one request today (its
    PROTO_MAX_NODES is 512 a request, envelope included)."""
    user, conv = uid("many"), "c1"
    items = [i64(i) if i % 2 else s8(f"v{i}") for i in range(470)]
    content = array16([text_part("many"), *items])
    with convdtest.Raw(convd.socket, raw=True) as raw:
        add(raw, 1, user, conv, content)
    assert stored(pg, user, conv) == [f"many|{content.hex()}|-"]
    lines, one, every = run(program, "read", convd.socket, user, conv)
    for how in ("recent", "export", "context", "messages", "reply", "cb"):
        assert every(f"{how} many content") == [content.hex()], how


def test_100000_values_read_back(program, convd, pg):
    """Content of 100,000 values, and metadata and a state of 10,000 pairs:
    convd bounds them by their bytes only (max_content_bytes, 64 KiB for
    metadata and states), and libconvclient reads them whole."""
    user, conv = uid("huge"), "c1"
    items = [i64(i) if i % 3 == 0 else b"\xcc" + bytes([i % 256])
             if i % 3 == 1 else s8(f"v{i % 1000}") for i in range(99999)]
    content = b"\xdd" + (len(items) + 1).to_bytes(4, "big") + \
        text_part("huge") + b"".join(items)
    pairs = b"".join(p(f"k{i}") + b"\xcc" + bytes([i % 256])
                     for i in range(6000))
    meta = b"\xdf" + (6000).to_bytes(4, "big") + pairs
    assert len(content) < 1 << 20 and len(meta) < 64 << 10
    with convdtest.Raw(convd.socket, raw=True) as raw:
        add(raw, 1, user, conv, content, meta)
        call_raw(raw, 2, "set_state", [
            ("user_id", p(user)), ("provider", p("p")), ("state", meta),
            ("conversation_id", p(conv)), ("metadata", meta)])
    assert stored(pg, user, conv) == [f"huge|{content.hex()}|{meta.hex()}"]
    lines, one, every = run(program, "read", convd.socket, user, conv)
    for how in ("recent", "export", "context", "messages", "reply", "cb"):
        assert every(f"{how} huge content") == [content.hex()], how
        assert every(f"{how} huge metadata") == [meta.hex()], how
    assert one("state") == meta.hex()
    assert one("conversation_metadata") == meta.hex()


# --- a fake server ---------------------------------------------------------

class FakeServer:
    """A Unix socket that answers the first request with `answer(msgid)`
    (bytes), then `after`: "close", or keep reading until the client
    goes."""

    def __init__(self, answer, after="wait"):
        # a short path: a Unix socket's is at most 107 bytes
        self.dir = tempfile.mkdtemp(prefix="convc-fake-")
        self.path = os.path.join(self.dir, "s")
        self.answer = answer
        self.after = after
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(convdtest.scaled(30))
        self.error = None
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
            conn.settimeout(convdtest.scaled(30))
            up = msgpack.Unpacker()
            req = None
            while req is None:
                data = conn.recv(65536)
                if not data:
                    return
                up.feed(data)
                for req in up:
                    break
            try:
                conn.sendall(self.answer(req[1]))
            except (BrokenPipeError, ConnectionResetError):
                pass
            if self.after == "close":
                conn.close()
                return
            while conn.recv(65536):
                pass
            conn.close()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def close(self):
        self.thread.join(convdtest.scaled(30))
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        assert self.error is None, self.error


def head(msgid):
    return b"\x94\x01" + p(msgid) + b"\xc0"


HOSTILE = {
    # name: (answer's result after [1, msgid, nil, ...], after, code, words)
    "deep_100000": (b"\x91" * 100000 + b"\xc0", "wait", "protocol",
                    "nested deeper than 512 levels"),
    # 512 arrays in the result, 513 levels with the response's own
    "deep_513": (b"\x91" * 512 + b"\xc0", "wait", "protocol",
                 "nested deeper than 512 levels"),
    "str32_4g": (b"\xdb\xff\xff\xff\xf0" + b"x" * 1000, "wait", "protocol",
                 "response larger than"),
    "array32_4g": (b"\xdd\xff\xff\xff\xff" + b"\xc0" * 1000, "wait",
                   "protocol", "response larger than"),
    "map32_4g": (b"\xdf\xff\xff\xff\xff" + b"\xc0" * 1000, "wait",
                 "protocol", "response larger than"),
    # 200 MB announced (within the 256 MiB bound), 1 kB sent, then EOF
    "bin32_200m": (b"\xc6" + (200 << 20).to_bytes(4, "big") +
                   b"\x00" * 1024, "close", "closed",
                   "convd closed the connection"),
    "not_msgpack": (b"\x92\xc1\xc0", "wait", "protocol",
                    "not msgpack"),
}


@pytest.mark.parametrize("mode", ["call", "call_cb"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_response_fails_cleanly(program, name, mode):
    result, after, code, words = HOSTILE[name]
    srv = FakeServer(lambda msgid: head(msgid) + result, after)
    try:
        lines, one, every = run(program, mode, srv.path)
    finally:
        srv.close()
    got = one("call") if mode == "call" else \
        (every("cb_status") or every("process"))[0]
    assert got.startswith("-3 " + code), lines
    assert words in got, lines
    # the connection is done for: the next call fails with the same
    assert one("after").startswith("-3 ") and \
        one("after").endswith("usable 0"), lines
    # bounded: the decoder's stack is O(depth) up to its limit, buffers
    # hold what arrived (the 256 MiB address-space limit would have
    # stopped anything else)
    if not sanitized_library():
        assert int(one("maxrss_kb")) < 16 * 1024, lines


@pytest.mark.parametrize("mode", ["call", "call_cb"])
@pytest.mark.parametrize("depth", [33, 100, 511])
def test_deep_response_read(program, depth, mode):
    """Results deeper than msgpack-c's 32 levels, up to the library's 512
    for the whole response (511 in the result)."""
    srv = FakeServer(lambda msgid: head(msgid) + b"\x91" * (depth - 2) +
                     b"\x81\xa1k\x90")
    try:
        lines, one, every = run(program, mode, srv.path)
    finally:
        srv.close()
    if mode == "call":
        assert one("call") == "0 -|-", lines
        assert one("depth") == str(depth), lines
    else:
        assert one("cb_depth") == str(depth), lines
