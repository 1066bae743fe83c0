/*
 * method.c - the protocol's methods and their parameters (see method.h).
 *
 * Pure data: one row per method (HACKING.md's method table,
 * convd-protocol(7)), and the lookup by name.
 */
#include <string.h>

#include "method.h"

#define P_USER_ID \
	{ .name = "user_id", .kind = METHOD_PK_ID, .required = true }
#define P_THREAD_ID \
	{ .name = "thread_id", .kind = METHOD_PK_ID, .required = true }
#define P_PROVIDER \
	{ .name = "provider", .kind = METHOD_PK_NAME, .required = true }
#define P_PROVIDER_OPT { .name = "provider", .kind = METHOD_PK_NAME }
#define P_PLATFORM \
	{ .name = "platform", .kind = METHOD_PK_NAME, .def_str = "line" }
/* optional, 1..255 bytes: one message per (user_id, platform, key) */
#define P_IDEMPOTENCY_KEY { .name = "idempotency_key", .kind = METHOD_PK_ID }
/* issue 17: absent = the default conversation ('') */
#define P_CONVERSATION_ID { .name = "conversation_id", .kind = METHOD_PK_ID }
/* metadata and state: maps of at most this many bytes encoded */
#define MAP_MAX_BYTES 65536
#define P_METADATA \
	{ .name = "metadata", .kind = METHOD_PK_MAP, .max = MAP_MAX_BYTES }
/* a message's optional fields, after conversation_id */
#define P_MESSAGE_FIELDS                                                 \
	{ .name = "tool_call_id", .kind = METHOD_PK_ID },                 \
	{ .name = "name", .kind = METHOD_PK_ID },                         \
	{ .name = "model", .kind = METHOD_PK_ID },                        \
	{ .name = "tokens", .kind = METHOD_PK_INT, .min = 0,              \
	  .max = 2147483647 },                                            \
	P_METADATA

const struct method_spec method_table[METHOD_COUNT_] = {
	[METHOD_PING] = {
		.id = METHOD_PING, .name = "ping",
		.needs_db = false, .nparams = 0,
	},
	[METHOD_ADD_MESSAGE] = {
		.id = METHOD_ADD_MESSAGE, .name = "add_message",
		.needs_db = true, .nparams = 12,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "role", .kind = METHOD_PK_ROLE,
			  .required = true },
			{ .name = "content", .kind = METHOD_PK_CONTENT,
			  .required = true },
			P_PLATFORM,
			P_IDEMPOTENCY_KEY,
			P_CONVERSATION_ID,
			P_MESSAGE_FIELDS,
		},
	},
	[METHOD_GET_RECENT] = {
		.id = METHOD_GET_RECENT, .name = "get_recent_conversations",
		.needs_db = true, .nparams = 5,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "limit", .kind = METHOD_PK_INT, .min = 1,
			  .max = 1000, .def_int = 10, .has_def_int = true },
			P_PLATFORM,
			P_CONVERSATION_ID,
		},
	},
	[METHOD_CLEAR_HISTORY] = {
		.id = METHOD_CLEAR_HISTORY, .name = "clear_user_history",
		.needs_db = true, .nparams = 4,
		.params = { P_USER_ID, P_PROVIDER, P_PLATFORM,
			    P_CONVERSATION_ID },
	},
	[METHOD_GET_COUNT] = {
		.id = METHOD_GET_COUNT, .name = "get_conversation_count",
		.needs_db = true, .nparams = 4,
		.params = { P_USER_ID, P_PROVIDER_OPT, P_PLATFORM,
			    P_CONVERSATION_ID },
	},
	[METHOD_GET_USER_STATS] = {
		.id = METHOD_GET_USER_STATS, .name = "get_user_statistics",
		.needs_db = true, .nparams = 2,
		.params = { P_USER_ID, P_PLATFORM },
	},
	[METHOD_GET_THREAD] = {
		.id = METHOD_GET_THREAD, .name = "get_thread",
		.needs_db = true, .nparams = 2,
		.params = { P_USER_ID, P_PLATFORM },
	},
	[METHOD_SAVE_THREAD] = {
		.id = METHOD_SAVE_THREAD, .name = "save_thread",
		.needs_db = true, .nparams = 3,
		.params = { P_USER_ID, P_THREAD_ID, P_PLATFORM },
	},
	[METHOD_DELETE_THREAD] = {
		.id = METHOD_DELETE_THREAD, .name = "delete_thread",
		.needs_db = true, .nparams = 2,
		.params = { P_USER_ID, P_PLATFORM },
	},
	[METHOD_CLEANUP] = {
		.id = METHOD_CLEANUP, .name = "cleanup_old_conversations",
		.admin = true, .needs_db = true, .nparams = 2,
		.params = {
			{ .name = "days_to_keep", .kind = METHOD_PK_INT,
			  .min = 0,
			  .max = 36500 },
			{ .name = "dry_run", .kind = METHOD_PK_BOOL },
		},
	},
	[METHOD_STATS] = {
		.id = METHOD_STATS, .name = "stats",
		.needs_db = false, .nparams = 0,
	},
	[METHOD_HEALTH] = {
		.id = METHOD_HEALTH, .name = "health",
		.needs_db = false, .nparams = 0,
	},
	/* One page of a user's history in id order: rows with id > after_id.
	 * The largest id is INT64_MAX, and nothing comes after it. */
	[METHOD_EXPORT_HISTORY] = {
		.id = METHOD_EXPORT_HISTORY, .name = "export_history",
		.needs_db = true, .nparams = 6,
		.params = {
			P_USER_ID,
			P_PROVIDER_OPT,
			{ .name = "after_id", .kind = METHOD_PK_INT, .min = 0,
			  .max = INT64_MAX - 1, .def_int = 0,
			  .has_def_int = true },
			{ .name = "limit", .kind = METHOD_PK_INT, .min = 1,
			  .max = 1000, .def_int = 1000, .has_def_int = true },
			P_PLATFORM,
			/* absent: every conversation */
			P_CONVERSATION_ID,
		},
	},
	/* One message with its original time: microseconds since the Unix
	 * epoch, UTC, from 1970-01-01 to 9999-12-31T23:59:59.999999Z.
	 * Admin: it writes arbitrary timestamps. */
	[METHOD_IMPORT_MESSAGES] = {
		.id = METHOD_IMPORT_MESSAGES, .name = "import_message",
		.admin = true, .needs_db = true, .nparams = 13,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "role", .kind = METHOD_PK_ROLE,
			  .required = true },
			{ .name = "content", .kind = METHOD_PK_CONTENT,
			  .required = true },
			{ .name = "created_at", .kind = METHOD_PK_INT,
			  .required = true,
			  .min = 0, .max = 253402300799999999LL },
			P_PLATFORM,
			P_IDEMPOTENCY_KEY,
			P_CONVERSATION_ID,
			P_MESSAGE_FIELDS,
		},
	},
	/* issue 17: a user's conversations, newest activity first, a page
	 * at a time (`after`: the cursor the previous page gave as next) */
	[METHOD_LIST_CONVERSATIONS] = {
		.id = METHOD_LIST_CONVERSATIONS, .name = "list_conversations",
		.needs_db = true, .nparams = 5,
		.params = {
			P_USER_ID,
			P_PLATFORM,
			P_PROVIDER_OPT,
			{ .name = "after", .kind = METHOD_PK_STR, .max = 1024 },
			{ .name = "limit", .kind = METHOD_PK_INT, .min = 1,
			  .max = 1000, .def_int = 100, .has_def_int = true },
		},
	},
	/* A named conversation's messages and state (the default one is
	 * cleared with clear_user_history). */
	[METHOD_DELETE_CONVERSATION] = {
		.id = METHOD_DELETE_CONVERSATION, .name = "delete_conversation",
		.needs_db = true, .nparams = 4,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "conversation_id", .kind = METHOD_PK_ID,
			  .required = true },
			P_PLATFORM,
		},
	},
	[METHOD_GET_STATE] = {
		.id = METHOD_GET_STATE, .name = "get_state",
		.needs_db = true, .nparams = 4,
		.params = { P_USER_ID, P_PROVIDER, P_CONVERSATION_ID,
			    P_PLATFORM },
	},
	/* expected_version: 0 = only if there is none, N = only if the
	 * current version is N (else the error `conflict`) */
	[METHOD_SET_STATE] = {
		.id = METHOD_SET_STATE, .name = "set_state",
		.needs_db = true, .nparams = 7,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "state", .kind = METHOD_PK_MAP,
			  .required = true,
			  .max = MAP_MAX_BYTES },
			P_CONVERSATION_ID,
			{ .name = "expected_version", .kind = METHOD_PK_INT,
			  .min = 0, .max = INT64_MAX - 1 },
			P_METADATA,
			P_PLATFORM,
		},
	},
	/* issue 18: the newest messages that fit max_tokens, tool
	 * exchanges whole (window.h) */
	[METHOD_GET_CONTEXT] = {
		.id = METHOD_GET_CONTEXT, .name = "get_context",
		.needs_db = true, .nparams = 7,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			{ .name = "max_tokens", .kind = METHOD_PK_INT,
			  .required = true,
			  .min = 1, .max = 10000000 },
			P_CONVERSATION_ID,
			{ .name = "max_messages", .kind = METHOD_PK_INT,
			  .min = 1,
			  .max = 10000, .def_int = 1000, .has_def_int = true },
			{ .name = "include_system", .kind = METHOD_PK_BOOL },
			P_PLATFORM,
		},
	},
	/* One page back from before_id (absent: the newest page). */
	[METHOD_GET_MESSAGES] = {
		.id = METHOD_GET_MESSAGES, .name = "get_messages",
		.needs_db = true, .nparams = 6,
		.params = {
			P_USER_ID,
			P_PROVIDER,
			P_CONVERSATION_ID,
			{ .name = "before_id", .kind = METHOD_PK_INT, .min = 1,
			  .max = INT64_MAX - 1 },
			{ .name = "limit", .kind = METHOD_PK_INT, .min = 1,
			  .max = 1000, .def_int = 100, .has_def_int = true },
			P_PLATFORM,
		},
	},
	[METHOD_DELETE_MESSAGE] = {
		.id = METHOD_DELETE_MESSAGE, .name = "delete_message",
		.needs_db = true, .nparams = 3,
		.params = {
			P_USER_ID,
			{ .name = "id", .kind = METHOD_PK_INT, .required = true,
			  .min = 1, .max = INT64_MAX - 1 },
			P_PLATFORM,
		},
	},
	/* provider, conversation_id absent: every provider, every
	 * conversation */
	[METHOD_SEARCH_MESSAGES] = {
		.id = METHOD_SEARCH_MESSAGES, .name = "search_messages",
		.needs_db = true, .nparams = 6,
		.params = {
			P_USER_ID,
			{ .name = "query", .kind = METHOD_PK_STR,
			  .required = true,
			  .max = 256 },
			P_PROVIDER_OPT,
			P_CONVERSATION_ID,
			P_PLATFORM,
			{ .name = "limit", .kind = METHOD_PK_INT, .min = 1,
			  .max = 100, .def_int = 20, .has_def_int = true },
		},
	},
	/* Admin: a data subject's erasure; platform absent = every one. */
	[METHOD_FORGET_USER] = {
		.id = METHOD_FORGET_USER, .name = "forget_user",
		.admin = true, .needs_db = true, .nparams = 2,
		.params = {
			P_USER_ID,
			{ .name = "platform", .kind = METHOD_PK_NAME },
		},
	},
};

const struct method_spec *method_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ARRAY_LEN(method_table); i++) {
		const char *m = method_table[i].name;

		if (strlen(m) == len && memcmp(m, name, len) == 0)
			return &method_table[i];
	}
	return NULL;
}
