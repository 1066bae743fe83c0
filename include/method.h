/*
 * method.h - the protocol's methods: the table of their names, flags and
 * parameter specifications (pure data and a lookup; HACKING.md's method
 * table, convd-protocol(7)).
 *
 * validate.h checks a request's params against a method's spec; the
 * request layer, the handlers and stats index by enum method_id.
 */
#ifndef CONVD_METHOD_H
#define CONVD_METHOD_H

#include "common.h"

enum method_id {
	METHOD_PING,
	METHOD_ADD_MESSAGE,
	METHOD_GET_RECENT,
	METHOD_CLEAR_HISTORY,
	METHOD_GET_COUNT,
	METHOD_GET_USER_STATS,
	METHOD_GET_THREAD,
	METHOD_SAVE_THREAD,
	METHOD_DELETE_THREAD,
	METHOD_CLEANUP,
	METHOD_STATS,
	METHOD_HEALTH,
	METHOD_EXPORT_HISTORY,
	METHOD_IMPORT_MESSAGES,
	/* issue 17: conversations and provider state */
	METHOD_LIST_CONVERSATIONS,
	METHOD_DELETE_CONVERSATION,
	METHOD_GET_STATE,
	METHOD_SET_STATE,
	/* issue 18: retrieval */
	METHOD_GET_CONTEXT,
	METHOD_GET_MESSAGES,
	METHOD_DELETE_MESSAGE,
	METHOD_SEARCH_MESSAGES,
	METHOD_FORGET_USER,
	METHOD_COUNT_
};

enum method_param_kind {
	METHOD_PK_ID,		/* str, 1..255 bytes: user_id, thread_id */
	METHOD_PK_NAME,		/* str, 1..50 bytes: provider, platform */
	METHOD_PK_ROLE,		/* str: user, assistant, system, developer,
				 * tool */
	METHOD_PK_CONTENT,	/* str, 1..limits.max_content bytes; or an
				 * array or map of at most limits.max_content
				 * bytes encoded, nested CONTENT_MAX_DEPTH
				 * deep at most (raw) */
	METHOD_PK_INT,		/* integer in [min, max] */
	METHOD_PK_BOOL,		/* true or false (absent: false) */
	METHOD_PK_MAP,		/* a map of at most max bytes encoded, nested
				 * CONTENT_MAX_DEPTH deep at most (raw) */
	METHOD_PK_STR,		/* str, 1..max bytes */
};

struct method_param {
	const char *name;
	enum method_param_kind kind;
	bool required;
	int64_t min, max;	/* METHOD_PK_INT; max: PK_MAP, PK_STR bytes */
	int64_t def_int;	/* METHOD_PK_INT default when absent ... */
	bool has_def_int;	/* ... if this is set */
	const char *def_str;	/* string default when absent, or NULL */
};

#define METHOD_MAX_PARAMS 16

struct method_spec {
	enum method_id id;
	const char *name;
	bool admin;		/* needs admin credentials */
	bool needs_db;
	uint8_t nparams;
	struct method_param params[METHOD_MAX_PARAMS];
};

/* Indexed by enum method_id. */
extern const struct method_spec method_table[METHOD_COUNT_];

/* Finds a method by name; NULL if there is none. */
const struct method_spec *method_find(const char *name, size_t len);

#endif
