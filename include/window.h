/*
 * window.h - get_context's window: the newest messages of a conversation
 * that fit a token budget, with tool exchanges kept whole (pure code).
 *
 * The caller reads the conversation newest first, page by page, and feeds
 * each row to window_feed until it answers WINDOW_DONE, or calls
 * window_end when there is no older row.  The window is then the first
 * `take` rows fed (newest first; the caller answers them oldest first),
 * after the `system` newest system rows given to window_add_system first
 * (include_system).  The rows' bytes must stay valid until the window is
 * done with (the ids it keeps point into them).
 *
 * Tool exchanges (convd-protocol(7) "Tool exchanges"): a message ANSWERS
 * call X when its tool_call_id is X, or its structured content holds, at
 * any depth, a map {type: "tool_result", tool_use_id: X} (Anthropic; also
 * any type ending in "_tool_result", such as "web_search_tool_result" and
 * "mcp_tool_result") or {type: "function_call_output", call_id: X} (OpenAI
 * Responses).  A message MAKES call X when its content holds a map {type:
 * "tool_use", id: X} (also "server_tool_use" and any type ending in
 * "_tool_use"), {type: "function_call", call_id: X} (OpenAI Responses), or
 * a key "tool_calls" whose value is an array of maps {id: X, ...} (OpenAI
 * Chat).
 *
 * The window is a run of the newest messages; it may begin at a message
 * only where
 *   - every message of the window that answers a call has that call in
 *     the window (results are newer than their call, so this also keeps
 *     every call of the window whole with the results stored after it);
 *   - the message is not a tool result (role "tool", or answering a call
 *     made by an older message);
 *   - the message makes no call without a result in the window.
 * Walking back from the newest message, each row's tokens (the stored
 * `tokens`, or tokens.h's estimate) are added until the next would pass
 * max_tokens or max_messages; the window is the longest run so far that
 * may begin where it begins.  A result whose call is not stored (deleted)
 * therefore ends the window: only messages newer than it are returned.
 */
#ifndef CONVD_WINDOW_H
#define CONVD_WINDOW_H

#include "common.h"

struct window_row {
	struct strview role;
	int64_t tokens;			/* stored tokens, or -1: estimate */
	struct strview tool_call_id;	/* .p NULL: none */
	struct strview content;		/* the text (the `content` column) */
	struct strview content_mp;	/* .p NULL: string content */
	size_t bytes;			/* its size in the answer (max_bytes) */
};

/* Call ids: a set of byte strings (pointing into the rows). */
struct window_idset {
	struct strview *slots;
	uint32_t cap;			/* a power of two, or 0 */
	uint32_t live;
	uint32_t used;			/* live + deleted */
};

struct window {
	int64_t max_tokens;
	uint32_t max_messages;
	size_t max_bytes;		/* the rows' bytes at most; 0: no bound */
	size_t bytes;			/* bytes of the rows taken or walked */
	int64_t used;			/* tokens of the rows taken or walked */
	uint32_t count;			/* rows taken or walked */
	uint32_t system;		/* system rows in the window */
	bool system_closed;		/* one did not fit: no more */
	uint32_t fed;			/* rows walked (window_feed) */
	uint32_t take;			/* rows of the window (the first fed) */
	int64_t total;			/* tokens of the window, system included */
	bool done;
	bool truncated;			/* older messages were left out */
	struct window_idset open;	/* answered calls not yet met */
};

enum window_next {
	WINDOW_MORE,	/* feed the next older row, or call window_end */
	WINDOW_DONE,	/* the window is decided */
	WINDOW_ERROR,	/* out of memory */
};

/* max_bytes bounds the rows' `bytes` as max_tokens bounds their tokens
 * (the answer's size: a window ends where it would not fit); 0: none. */
void window_init(struct window *w, int64_t max_tokens, uint32_t max_messages,
		 size_t max_bytes);
void window_cleanup(struct window *w);

/* The tokens a row counts for: its stored tokens, or the estimate. */
int64_t window_row_tokens(const struct window_row *row);

/*
 * include_system: the conversation's system and developer messages, newest
 * first, before any window_feed.  They are taken while they fit (a run of
 * the newest); the walk then gets what is left of the budget, and must
 * not be fed system or developer rows.
 */
void window_add_system(struct window *w, const struct window_row *row);

/* The next older row of the conversation. */
CONVD_WUR enum window_next window_feed(struct window *w,
				       const struct window_row *row);

/* There is no older row. */
void window_end(struct window *w);

/*
 * The calls a row makes and answers: fn(arg, true, X) for each call X it
 * makes, fn(arg, false, X) for each call X it answers (tool_call_id
 * first, then its content in order).  Structured content that is not
 * valid msgpack is read up to the first bad byte.
 */
void window_scan_ids(const struct window_row *row,
		     void (*fn)(void *arg, bool call, struct strview id),
		     void *arg);

#endif
