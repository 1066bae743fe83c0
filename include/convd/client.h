/*
 * convd/client.h - the C client library for convd (libconvclient).
 *
 * One implementation of the client side of convd's MessagePack-RPC
 * protocol (convd-protocol(7)), used by convctl and convd-bench, installed
 * as libconvclient (shared, soname libconvclient.so.MAJOR, and static)
 * with a pkg-config file, convclient.pc:
 *
 *     cc app.c $(pkg-config --cflags --libs convclient)
 *
 * It depends on libc and msgpack-c only: nothing here uses convd's
 * internal headers, and the library exports the convc_* names of this
 * header and nothing else.  The full manual is libconvclient(3).
 *
 * Model
 *   A `struct convc` is one connection to convd's Unix socket.  It is not
 *   thread-safe: use one connection per thread (or lock around it).
 *   Calls block, each bounded by the connection's timeout (poll(2) on the
 *   socket; the deadline covers sending the request and receiving its
 *   response) -- or, in the non-blocking mode below, an event loop drives
 *   the connection and completion callbacks deliver the responses.
 *
 * Status
 *   Every call that can fail returns an `int` status:
 *     CONVC_OK          success;
 *     CONVC_ERR_DAEMON  convd answered with an error: err->code is the
 *                       daemon's code ("invalid_params", "unavailable",
 *                       "timeout", "overloaded", "permission_denied", ...);
 *                       the connection is still usable;
 *     CONVC_ERR_LOCAL   the arguments were refused before anything was
 *                       sent ("invalid_argument") or memory ran out
 *                       ("no_memory"); the connection is still usable;
 *     CONVC_ERR_CONN    the connection failed: "connect_failed", "timeout"
 *                       (no complete answer in time), "protocol" (convd sent
 *                       something that is not a valid response), "closed"
 *                       (end of file, or the connection had already
 *                       failed).  An error response that carries no msgid
 *                       (convd could not read the request's envelope, or
 *                       refused the connection, e.g. "overloaded") is also
 *                       CONVC_ERR_CONN, with convd's code and message.
 *                       The connection is unusable from then on (a later
 *                       call fails with "closed"): close it and connect
 *                       again.  A "timeout" leaves the connection unusable
 *                       too, since the answer may still arrive.
 *   err may be NULL where the caller does not want the details.
 *
 * Responses
 *   Responses are decoded into msgpack-c objects (msgpack_object, in a
 *   msgpack_zone) by the library's own decoder, after its framing scan has
 *   found one complete object (a callback's reply is decoded where it lies
 *   in the input buffer, into a zone the connection reuses).  The scan
 *   walks the bytes with two counters (no recursion, no allocation) and
 *   refuses a container that announces more elements than the response
 *   could hold; the decoder is one loop whose memory, besides the objects,
 *   grows with the depth only, so decoding never allocates more than
 *   about 40 bytes per byte received.  One response may be at most the
 *   connection's maximum response size (CONVC_DEFAULT_MAX_RESPONSE,
 *   256 MiB, changeable with convc_set_max_response); a larger one is a
 *   "protocol" error.  So is a response nested deeper than 512 levels
 *   (convd's structured values are nested 64 deep at most); msgpack-c's
 *   own limit of 32 levels does not apply (since 1.3).  Every array and
 *   map of a reply keeps the exact bytes convd sent: convc_reply_mp.
 *
 * Pipelining
 *   convc_request_begin/_end (or convc_send) queue requests; convc_flush
 *   writes them; convc_wait(msgid) returns the response for one msgid in
 *   whatever order responses arrive: responses for other outstanding
 *   msgids are kept in a queue for later convc_wait / convc_wait_any
 *   calls, never dropped.  While writing, responses that arrive are read
 *   too, so a long pipeline cannot deadlock against the daemon's
 *   backpressure.  The typed calls (convc_ping, convc_add_message, ...)
 *   are send + wait on one msgid and may be mixed with pipelined requests.
 *
 * Non-blocking mode
 *   convc_send_cb / convc_request_end_cb queue a request with a completion
 *   callback.  The application watches convc_fd() in its own event loop
 *   (poll, epoll, libevent, libuv, ...): for reading always, for writing
 *   while convc_want_write() is true; and calls convc_process() with the
 *   events that occurred.  convc_process reads what the socket has, runs
 *   the callback of every complete response, and writes what is queued
 *   (including requests the callbacks queued); it never blocks.  With a
 *   timeout set, convc_next_timeout() says when to call convc_process
 *   again even without an event: a request that gets no answer within
 *   the timeout fails the connection with "timeout".
 *
 *   A callback gets the status (CONVC_OK, CONVC_ERR_DAEMON with err set,
 *   or CONVC_ERR_CONN when the connection failed or was closed before the
 *   answer came: every outstanding callback is called exactly once).  The
 *   reply and its result are valid only while the callback runs: copy what
 *   must outlive it.  A callback may queue requests on any connection and
 *   do blocking calls on other connections; on its own connection it must
 *   not call convc_process, convc_flush, convc_wait, convc_wait_any,
 *   convc_call or the typed calls (they fail with "invalid_argument").  It
 *   may call convc_close: the connection is then freed when the library
 *   call that ran the callback returns, and that call fails with
 *   CONVC_ERR_CONN "closed" (do not use the connection after that).
 *   Callbacks run from convc_process, convc_close, and from a blocking
 *   call on the same connection that happens to read their response.
 *
 * Times are microseconds since the Unix epoch, UTC (int64_t).
 */
#ifndef CONVD_CLIENT_H
#define CONVD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CONVC_WUR __attribute__((warn_unused_result))
#else
#define CONVC_WUR
#endif

/*
 * The library's semantic version: MAJOR changes break the API or ABI (and
 * the soname, libconvclient.so.MAJOR), MINOR adds to them, PATCH fixes.
 */
#define CONVC_VERSION_MAJOR 1
#define CONVC_VERSION_MINOR 3
#define CONVC_VERSION_PATCH 0

/* Only the declarations below are exported from the shared library. */
#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility push(default)
#endif

/* Largest response accepted by default (bytes of one msgpack object). */
#define CONVC_DEFAULT_MAX_RESPONSE ((size_t)256 << 20)
/* Largest request that may be queued (bytes of one msgpack object). */
#define CONVC_MAX_REQUEST ((size_t)256 << 20)

enum convc_status {
	CONVC_OK = 0,
	CONVC_ERR_DAEMON = -1,
	CONVC_ERR_LOCAL = -2,
	CONVC_ERR_CONN = -3,
};

struct convc_error {
	char code[32];		/* NUL-terminated; truncated if longer */
	char message[256];	/* NUL-terminated; truncated if longer */
};

struct convc;

/* The library's version, "MAJOR.MINOR.PATCH" (of the library actually
 * loaded, which may be newer than the header the program was built with). */
const char *convc_version(void);

/* ------------------------------------------------------------------ */
/* Connections */

/*
 * Connects to convd's Unix socket at path.  timeout_ms bounds the connect
 * and then every call on the connection (<= 0: no limit).  Returns NULL
 * with err->code "connect_failed", "timeout" or "no_memory" on failure.
 */
CONVC_WUR struct convc *convc_connect(const char *path, int timeout_ms,
				      struct convc_error *err);

/* Closes the socket and frees everything, queued responses included. */
void convc_close(struct convc *c);

/* Changes the per-call timeout (<= 0: no limit). */
void convc_set_timeout(struct convc *c, int timeout_ms);

/* Changes the maximum response size (bytes, at least 64). */
CONVC_WUR int convc_set_max_response(struct convc *c, size_t bytes,
				     struct convc_error *err);

/* false once the connection has failed (any CONVC_ERR_CONN). */
bool convc_usable(const struct convc *c);

/* Number of requests sent or queued whose response was not yet taken
 * (callback requests included). */
size_t convc_outstanding(const struct convc *c);

/* ------------------------------------------------------------------ */
/* Generic calls */

/*
 * A response.  `result` (and everything it points to) stays valid until
 * convc_reply_free; after a non-CONVC_OK status the reply holds nothing
 * (result is nil) but convc_reply_free may still be called.  The members
 * after `result` are private.
 */
struct convc_reply {
	uint32_t msgid;
	msgpack_object result;
	void *priv_frame;	/* the response bytes (result points into them) */
	msgpack_zone *priv_zone;
};

void convc_reply_free(struct convc_reply *r);

/*
 * Starts a request: packs [0, msgid, method, and returns a packer on which
 * the caller packs exactly one value, the params (an array of positional
 * arguments, an array holding one map of named arguments, or a map).
 * Then convc_request_end queues the request (or convc_request_abort drops
 * it).  *msgid receives the request's msgid.  Only one request can be
 * under construction at a time.  Returns NULL with err set on failure.
 */
CONVC_WUR msgpack_packer *convc_request_begin(struct convc *c,
					      const char *method,
					      uint32_t *msgid,
					      struct convc_error *err);

/*
 * Checks that exactly one array or map was packed (else "invalid_argument",
 * and the request is dropped) and queues the request for sending.
 */
CONVC_WUR int convc_request_end(struct convc *c, struct convc_error *err);

void convc_request_abort(struct convc *c);

/*
 * Queues a request whose params are already packed (params, params_len:
 * exactly one msgpack array or map; NULL means an empty array).
 */
CONVC_WUR int convc_send(struct convc *c, const char *method,
			 const void *params, size_t params_len,
			 uint32_t *msgid, struct convc_error *err);

/* Writes every queued request (reading responses meanwhile). */
CONVC_WUR int convc_flush(struct convc *c, struct convc_error *err);

/*
 * Flushes, then waits for the response to msgid (which must be
 * outstanding and have no callback, else "invalid_argument").  On CONVC_OK the caller owns
 * *reply.  On CONVC_ERR_DAEMON err holds the daemon's error and reply->msgid
 * the msgid.
 */
CONVC_WUR int convc_wait(struct convc *c, uint32_t msgid,
			 struct convc_reply *reply, struct convc_error *err);

/*
 * Flushes, then returns the next response of any outstanding request
 * without a callback (queued ones first, in arrival order).
 * reply->msgid says which one, also when the status is CONVC_ERR_DAEMON.
 * With no such request outstanding: "invalid_argument".
 */
CONVC_WUR int convc_wait_any(struct convc *c, struct convc_reply *reply,
			     struct convc_error *err);

/* convc_send + convc_wait. */
CONVC_WUR int convc_call(struct convc *c, const char *method,
			 const void *params, size_t params_len,
			 struct convc_reply *reply, struct convc_error *err);

/*
 * Decodes a msgpack timestamp (extension type -1, any of its three sizes)
 * into microseconds (nanoseconds are truncated towards minus infinity).
 * Returns false if o is not a timestamp or is out of range.
 */
bool convc_object_timestamp(const msgpack_object *o, int64_t *usec);

/* Value for a string key in a map object, or NULL. */
const msgpack_object *convc_map_get(const msgpack_object *map,
				    const char *key);

/* ------------------------------------------------------------------ */
/* Non-blocking mode (see the top of this file) */

/* convc_process events, and what convc_events() asks to watch. */
#define CONVC_EV_READ 0x1
#define CONVC_EV_WRITE 0x2

/*
 * A completion callback.  status: CONVC_OK (reply->result is the result),
 * CONVC_ERR_DAEMON (err is convd's error) or CONVC_ERR_CONN (err says why
 * the connection failed); reply->msgid is the request's in every case.
 * reply and err are valid only during the call.
 */
typedef void (*convc_callback)(struct convc *c, int status,
			       const struct convc_reply *reply,
			       const struct convc_error *err, void *arg);

/* The socket to watch (never changes while the connection is open). */
int convc_fd(const struct convc *c);

/* As convc_request_end, but the response goes to cb (not NULL). */
CONVC_WUR int convc_request_end_cb(struct convc *c, convc_callback cb,
				   void *arg, struct convc_error *err);

/* As convc_send, but the response goes to cb (not NULL). */
CONVC_WUR int convc_send_cb(struct convc *c, const char *method,
			    const void *params, size_t params_len,
			    convc_callback cb, void *arg, uint32_t *msgid,
			    struct convc_error *err);

/*
 * Does the I/O that events (CONVC_EV_READ, CONVC_EV_WRITE, or 0 for a
 * timer) allow without blocking: reads until the socket is drained and
 * runs the callbacks of the complete responses, writes what is queued,
 * and checks the callback requests' deadlines.  Returns CONVC_OK, or
 * CONVC_ERR_CONN once the connection has failed (the outstanding
 * callbacks have then been called with CONVC_ERR_CONN), or
 * CONVC_ERR_LOCAL when called from a callback of this connection.
 */
CONVC_WUR int convc_process(struct convc *c, int events,
			    struct convc_error *err);

/* CONVC_EV_READ, plus CONVC_EV_WRITE while convc_want_write(). */
int convc_events(const struct convc *c);

/* Whether queued output waits for the socket to become writable. */
bool convc_want_write(const struct convc *c);

/*
 * Milliseconds until the earliest callback request runs out of time
 * (0: call convc_process now), or -1 if none has a deadline.
 */
int convc_next_timeout(const struct convc *c);

/* ------------------------------------------------------------------ */
/* Typed calls, one per method.  `platform` NULL means the daemon's default
 * ("line").  Out-pointers marked "may be NULL" are optional. */

/*
 * A message of get_recent_conversations / export_history.  Structured
 * content (a msgpack array or map, issue 17) is given here as its text:
 * every string under a "text" key, joined with "\n" ("" when none), as
 * the database's `content` column holds it; struct convc_row has the
 * value itself.
 */
struct convc_message {
	int64_t id;
	char *role;
	char *content;		/* NUL-terminated; content_len bytes */
	size_t content_len;
	char *provider;
	int64_t created_at_usec;
};

struct convc_provider_stats {
	char *provider;
	int64_t message_count;
	bool has_last_message;	/* false if convd sent nil */
	int64_t last_message_at_usec;
};

struct convc_user_stats {
	int64_t total_messages;
	size_t nproviders;
	struct convc_provider_stats *providers;	/* sorted by name */
};

/* "ping" -> "pong". */
CONVC_WUR int convc_ping(struct convc *c, struct convc_error *err);

/*
 * id, created_at_usec: may be NULL.  content: content_len bytes.
 * With convc_set_retries, a fresh idempotency key goes with the message
 * and the call is retried after a broken connection.
 */
CONVC_WUR int convc_add_message(struct convc *c, const char *user_id,
				const char *provider, const char *role,
				const char *content, size_t content_len,
				const char *platform, int64_t *id,
				int64_t *created_at_usec,
				struct convc_error *err);

/*
 * add_message with an idempotency key (NULL: none, or a fresh one with
 * convc_set_retries): a second message with the same key for the user
 * and platform is not stored; *duplicate (may be NULL) is then true and
 * *id, *created_at_usec those of the stored one.  Since 1.1.
 */
CONVC_WUR int convc_add_message_key(struct convc *c, const char *user_id,
				    const char *provider, const char *role,
				    const char *content, size_t content_len,
				    const char *platform,
				    const char *idempotency_key, int64_t *id,
				    int64_t *created_at_usec, bool *duplicate,
				    struct convc_error *err);

/*
 * retries > 0: add_message puts a fresh idempotency key on every message
 * that has none, and when the connection breaks during the call (convd
 * restarted, for one), connects again to the same socket and sends the
 * message again with the same key, up to `retries` times, pausing 50 ms,
 * 100 ms, ... 1.6 s between attempts.  Blocking calls only, with nothing
 * else outstanding.  0 (the default): neither.  Since 1.1.
 */
CONVC_WUR int convc_set_retries(struct convc *c, int retries,
				struct convc_error *err);

/*
 * Decodes a result that is an array of messages (get_recent_conversations,
 * export_history, or a callback's reply->result) into *msgs (NULL when *n
 * is 0), freed with convc_messages_free.  Fails with CONVC_ERR_LOCAL:
 * "protocol" if the result does not have that shape, "no_memory".
 */
CONVC_WUR int convc_result_messages(const msgpack_object *result,
				    struct convc_message **msgs, size_t *n,
				    struct convc_error *err);

/*
 * limit <= 0: the daemon's default (10 turns, i.e. up to 20 messages).
 * On CONVC_OK *msgs (oldest first; NULL when *n is 0) is freed with
 * convc_messages_free.
 */
CONVC_WUR int convc_get_recent_conversations(struct convc *c,
					     const char *user_id,
					     const char *provider, int limit,
					     const char *platform,
					     struct convc_message **msgs,
					     size_t *n,
					     struct convc_error *err);
void convc_messages_free(struct convc_message *msgs, size_t n);

/* deleted: may be NULL. */
CONVC_WUR int convc_clear_user_history(struct convc *c, const char *user_id,
				       const char *provider,
				       const char *platform, int64_t *deleted,
				       struct convc_error *err);

/* provider NULL: all providers. */
CONVC_WUR int convc_get_conversation_count(struct convc *c,
					   const char *user_id,
					   const char *provider,
					   const char *platform,
					   int64_t *count,
					   struct convc_error *err);

/* On CONVC_OK *st is freed with convc_user_stats_free. */
CONVC_WUR int convc_get_user_statistics(struct convc *c, const char *user_id,
					const char *platform,
					struct convc_user_stats *st,
					struct convc_error *err);
void convc_user_stats_free(struct convc_user_stats *st);

/* *thread_id: malloc'd (free()), or NULL when the user has no thread. */
CONVC_WUR int convc_get_thread(struct convc *c, const char *user_id,
			       const char *platform, char **thread_id,
			       struct convc_error *err);

CONVC_WUR int convc_save_thread(struct convc *c, const char *user_id,
				const char *thread_id, const char *platform,
				struct convc_error *err);

/* deleted: may be NULL. */
CONVC_WUR int convc_delete_thread(struct convc *c, const char *user_id,
				  const char *platform, int64_t *deleted,
				  struct convc_error *err);

/*
 * One page of a user's history, in id order: up to limit messages (<= 0:
 * 1000) whose id is greater than after_id (0: from the start), with one
 * provider or all (provider NULL).  The next page starts after the last
 * id.  convd also keeps a page within its max_output_bytes, so a page may
 * hold fewer messages than the limit: the export is complete when a page
 * is empty.  Freed with convc_messages_free.
 */
CONVC_WUR int convc_export_history(struct convc *c, const char *user_id,
				   const char *provider, const char *platform,
				   int64_t after_id, int limit,
				   struct convc_message **msgs, size_t *n,
				   struct convc_error *err);

/*
 * Stores a message with its original time (admin).  A message equal to a
 * stored one in user, platform, provider, role, content and created_at is
 * not stored again: *imported is then false and *id the stored one's.
 * id, imported: may be NULL.
 */
CONVC_WUR int convc_import_message(struct convc *c, const char *user_id,
				   const char *provider, const char *role,
				   const char *content, size_t content_len,
				   const char *platform,
				   int64_t created_at_usec, int64_t *id,
				   bool *imported, struct convc_error *err);

/*
 * import_message with an idempotency key (NULL: none): with a key, the
 * message is not stored if one with the same key, user and platform is
 * (*imported false, *id the stored one's), whatever its content.  Since
 * 1.1.
 */
CONVC_WUR int convc_import_message_key(struct convc *c, const char *user_id,
				       const char *provider, const char *role,
				       const char *content, size_t content_len,
				       const char *platform,
				       int64_t created_at_usec,
				       const char *idempotency_key, int64_t *id,
				       bool *imported, struct convc_error *err);

/* days_to_keep < 0: the daemon's configured value.  deleted: may be NULL. */
CONVC_WUR int convc_cleanup_old_conversations(struct convc *c,
					      int days_to_keep,
					      int64_t *deleted,
					      struct convc_error *err);

/*
 * "stats": the map as convd sends it (its content is described in
 * convd-protocol(7)); the caller frees *reply.  Fails with "protocol" if
 * the result is not a map.
 */
CONVC_WUR int convc_stats(struct convc *c, struct convc_reply *reply,
			  struct convc_error *err);

/*
 * "health": *ok is the map's `ok`; reply (may be NULL) receives the whole
 * map, freed by the caller.
 */
CONVC_WUR int convc_health(struct convc *c, bool *ok,
			   struct convc_reply *reply,
			   struct convc_error *err);

/* ------------------------------------------------------------------ */
/* Conversations, structured content, state, retrieval (since 1.2)
 *
 * Structured values -- content parts, metadata, states -- are passed and
 * returned as msgpack bytes (`*_mp`, `*_mp_len`): the caller packs them
 * with msgpack-c or any other packer, and unpacks what comes back.  A
 * value passed must be exactly one msgpack object, of the type named
 * (else "invalid_argument", nothing sent).  A value returned by a typed
 * call, convc_reply_rows or convc_reply_mp holds the exact bytes convd
 * sent, which are the bytes it stored: a non-shortest encoding (an int 64
 * holding 1, a str 8 holding "a") stays as it was sent, bin stays bin,
 * at any depth convd accepts (64) (since 1.3; 1.2 packed them again).
 *
 * conversation_id NULL means the default conversation (the seed's
 * history); named ones are 1..255 bytes.  Every string returned is
 * malloc'd, freed by the matching *_free function. */

/* Optional fields of a message for add_message / import_message.
 * Zero-initialize it and set what the message has. */
struct convc_message_opts {
	const char *platform;		/* NULL: convd's default, "line" */
	const char *conversation_id;	/* NULL: the default conversation */
	const char *idempotency_key;	/* NULL: none (see convc_set_retries) */
	/* Structured content: a msgpack array or map, in place of the
	 * text content (which must then be NULL). */
	const void *content_mp;
	size_t content_mp_len;
	const char *tool_call_id;	/* the call a tool result answers */
	const char *name;
	const char *model;		/* the model that wrote it */
	bool has_tokens;
	int64_t tokens;			/* 0..2147483647 */
	const void *metadata_mp;	/* a msgpack map, <= 64 KiB */
	size_t metadata_mp_len;
};

/* A message with every field (get_context, get_messages,
 * search_messages, and the *_ex reads).  NULL / false: not set. */
struct convc_row {
	int64_t id;
	char *role;
	/* The text: the content itself, or for structured content the text
	 * of its "text" parts (as struct convc_message has it). */
	char *content;
	size_t content_len;
	void *content_mp;		/* structured content, else NULL */
	size_t content_mp_len;
	char *provider;
	int64_t created_at_usec;
	char *conversation_id;		/* NULL: the default conversation */
	char *tool_call_id;
	char *name;
	char *model;
	bool has_tokens;
	int64_t tokens;
	void *metadata_mp;
	size_t metadata_mp_len;
	char *idempotency_key;
};

/*
 * add_message with the optional fields (opts may be NULL): content is
 * text (content_len bytes), or NULL with opts->content_mp.  Retried with
 * its key as convc_add_message_key is (convc_set_retries).  id,
 * created_at_usec, duplicate: may be NULL.
 */
CONVC_WUR int convc_add_message_ex(struct convc *c, const char *user_id,
				   const char *provider, const char *role,
				   const char *content, size_t content_len,
				   const struct convc_message_opts *opts,
				   int64_t *id, int64_t *created_at_usec,
				   bool *duplicate, struct convc_error *err);

/* import_message (admin) with the optional fields, as
 * convc_add_message_ex takes them.  id, imported: may be NULL. */
CONVC_WUR int convc_import_message_ex(struct convc *c, const char *user_id,
				      const char *provider, const char *role,
				      const char *content, size_t content_len,
				      int64_t created_at_usec,
				      const struct convc_message_opts *opts,
				      int64_t *id, bool *imported,
				      struct convc_error *err);

/* Decodes a result that is an array of messages into rows (NULL when *n
 * is 0), freed with convc_rows_free; as convc_result_messages.  result
 * may come from anywhere, so structured values are packed again by
 * msgpack-c (msgpack-equal; convc_reply_rows keeps their bytes). */
CONVC_WUR int convc_result_rows(const msgpack_object *result,
				struct convc_row **rows, size_t *n,
				struct convc_error *err);
void convc_rows_free(struct convc_row *rows, size_t n);

/*
 * As convc_result_rows for a result that is in reply (reply->result, or
 * an array inside it, e.g. get_context's "messages"), of a reply this
 * library decoded (convc_wait, convc_wait_any, convc_call, a callback's):
 * content_mp and metadata_mp are the exact bytes convd sent.  Since 1.3.
 */
CONVC_WUR int convc_reply_rows(const struct convc_reply *reply,
			       const msgpack_object *result,
			       struct convc_row **rows, size_t *n,
			       struct convc_error *err);

/*
 * The exact bytes convd sent for o, an array or a map inside reply's
 * result (a reply this library decoded), and their size in *len: valid
 * as long as the reply (until convc_reply_free; in a callback, until it
 * returns).  NULL when o is not an array or map.  Since 1.3.
 */
const void *convc_reply_mp(const struct convc_reply *reply,
			   const msgpack_object *o, size_t *len);

/* get_recent_conversations of one conversation, rows with every field. */
CONVC_WUR int convc_get_recent_conversations_ex(struct convc *c,
						const char *user_id,
						const char *provider,
						int limit,
						const char *conversation_id,
						const char *platform,
						struct convc_row **rows,
						size_t *n,
						struct convc_error *err);

/* export_history, rows with every field: conversation_id NULL exports
 * every conversation (rows say which), else that one. */
CONVC_WUR int convc_export_history_ex(struct convc *c, const char *user_id,
				      const char *provider,
				      const char *conversation_id,
				      const char *platform, int64_t after_id,
				      int limit, struct convc_row **rows,
				      size_t *n, struct convc_error *err);

/* clear_user_history of one conversation.  deleted: may be NULL. */
CONVC_WUR int convc_clear_user_history_ex(struct convc *c,
					  const char *user_id,
					  const char *provider,
					  const char *conversation_id,
					  const char *platform,
					  int64_t *deleted,
					  struct convc_error *err);

/* get_conversation_count of one conversation (provider NULL: all). */
CONVC_WUR int convc_get_conversation_count_ex(struct convc *c,
					      const char *user_id,
					      const char *provider,
					      const char *conversation_id,
					      const char *platform,
					      int64_t *count,
					      struct convc_error *err);

struct convc_conversation {
	char *provider;
	char *conversation_id;		/* NULL: the default conversation */
	int64_t message_count;
	int64_t first_message_at_usec;
	int64_t last_message_at_usec;
	void *metadata_mp;		/* NULL: none */
	size_t metadata_mp_len;
};

struct convc_conversation_list {
	struct convc_conversation *items;	/* newest activity first */
	size_t n;
	char *next;		/* the `after` of the next page; NULL: last */
};

/*
 * One page of the user's conversations (provider NULL: all; after: NULL
 * or the previous page's next; limit <= 0: convd's default, 100).  On
 * CONVC_OK *out is freed with convc_conversation_list_free.
 */
CONVC_WUR int convc_list_conversations(struct convc *c, const char *user_id,
				       const char *provider,
				       const char *platform, const char *after,
				       int limit,
				       struct convc_conversation_list *out,
				       struct convc_error *err);
void convc_conversation_list_free(struct convc_conversation_list *l);

/* Deletes a named conversation (conversation_id required) and its state;
 * deleted (messages): may be NULL. */
CONVC_WUR int convc_delete_conversation(struct convc *c, const char *user_id,
					const char *provider,
					const char *conversation_id,
					const char *platform,
					int64_t *deleted,
					struct convc_error *err);

struct convc_state {
	bool found;			/* false: no state (the rest is empty) */
	void *state_mp;			/* the state, a msgpack map */
	size_t state_mp_len;
	int64_t version;
	int64_t updated_at_usec;
};

/* The conversation's provider state; freed with convc_state_free. */
CONVC_WUR int convc_get_state(struct convc *c, const char *user_id,
			      const char *provider,
			      const char *conversation_id,
			      const char *platform, struct convc_state *out,
			      struct convc_error *err);
/*
 * The same, with the metadata set_state set with the state (since 1.3):
 * *metadata_mp receives it, a msgpack map malloc'd (free() it), or NULL
 * when the state has none or there is no state; *metadata_mp_len its
 * length (metadata_mp_len may be NULL).  metadata_mp NULL: as
 * convc_get_state.  On an error both are NULL / 0.
 */
CONVC_WUR int convc_get_state_ex(struct convc *c, const char *user_id,
				 const char *provider,
				 const char *conversation_id,
				 const char *platform,
				 struct convc_state *out, void **metadata_mp,
				 size_t *metadata_mp_len,
				 struct convc_error *err);
void convc_state_free(struct convc_state *s);

/* Optional arguments of set_state.  Zero-initialize it. */
struct convc_state_opts {
	const char *platform;
	const char *conversation_id;
	/* Set only if the current version is expected_version (0: only if
	 * there is no state); else CONVC_ERR_DAEMON "conflict". */
	bool has_expected_version;
	int64_t expected_version;
	const void *metadata_mp;	/* a msgpack map, <= 64 KiB */
	size_t metadata_mp_len;
};

/*
 * Replaces the state (a msgpack map, <= 64 KiB); *version (may be NULL)
 * receives the new version.  Never sent again by the library: after a
 * CONVC_ERR_CONN the call may have run, and convc_get_state tells (with
 * an expected version, a second attempt would fail with "conflict").
 */
CONVC_WUR int convc_set_state(struct convc *c, const char *user_id,
			      const char *provider, const void *state_mp,
			      size_t state_mp_len,
			      const struct convc_state_opts *opts,
			      int64_t *version, struct convc_error *err);

/* Optional arguments of get_context.  Zero-initialize it. */
struct convc_context_opts {
	const char *platform;
	const char *conversation_id;
	int max_messages;		/* <= 0: convd's default, 1000 */
	bool include_system;
};

struct convc_context {
	struct convc_row *rows;		/* oldest first */
	size_t n;
	int64_t total_tokens;
	bool truncated;			/* older messages were left out */
};

/*
 * The newest messages whose tokens fit max_tokens, tool calls kept whole
 * with their results (convd-protocol(7)); freed with convc_context_free.
 */
CONVC_WUR int convc_get_context(struct convc *c, const char *user_id,
				const char *provider, int64_t max_tokens,
				const struct convc_context_opts *opts,
				struct convc_context *out,
				struct convc_error *err);
void convc_context_free(struct convc_context *ctx);

struct convc_page {
	struct convc_row *rows;		/* oldest first */
	size_t n;
	bool has_next;			/* false: this is the oldest page */
	int64_t next_before_id;		/* the before_id of the next page */
};

/*
 * One page going back through a conversation: the newest `limit` (<= 0:
 * convd's default, 100) messages whose id is below before_id (<= 0: the
 * newest).  Freed with convc_page_free.
 */
CONVC_WUR int convc_get_messages(struct convc *c, const char *user_id,
				 const char *provider,
				 const char *conversation_id,
				 const char *platform, int64_t before_id,
				 int limit, struct convc_page *out,
				 struct convc_error *err);
void convc_page_free(struct convc_page *p);

/* Deletes one message of the user: CONVC_ERR_DAEMON "not_found" when the
 * user has no message with that id. */
CONVC_WUR int convc_delete_message(struct convc *c, const char *user_id,
				   int64_t id, const char *platform,
				   struct convc_error *err);

/*
 * The user's messages containing query (1..256 bytes), newest first;
 * provider and conversation_id NULL: all; limit <= 0: convd's default,
 * 20.  Freed with convc_rows_free.
 */
CONVC_WUR int convc_search_messages(struct convc *c, const char *user_id,
				    const char *query, const char *provider,
				    const char *conversation_id,
				    const char *platform, int limit,
				    struct convc_row **rows, size_t *n,
				    struct convc_error *err);

struct convc_forgotten {
	int64_t messages;
	int64_t threads;
	int64_t states;
	int64_t idempotency_keys;
};

/* Deletes everything convd holds about the user (admin), on platform or,
 * when NULL, on every platform; out (may be NULL) gets the counts. */
CONVC_WUR int convc_forget_user(struct convc *c, const char *user_id,
				const char *platform,
				struct convc_forgotten *out,
				struct convc_error *err);

#if defined(__GNUC__) && __GNUC__ >= 4
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
