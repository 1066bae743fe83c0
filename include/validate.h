/*
 * validate.h - the methods' parameter specifications and their checking.
 *
 * Pure code (no I/O), shared by convd, the unit tests and the fuzz target.
 * A request's params are either [ {name: value, ...} ] (named) or the
 * values positionally in the order of the spec below; a bare map is also
 * accepted as named params.
 */
#ifndef CONVD_VALIDATE_H
#define CONVD_VALIDATE_H

#include "common.h"
#include "proto.h"

enum method_id {
	M_PING,
	M_ADD_MESSAGE,
	M_GET_RECENT,
	M_CLEAR_HISTORY,
	M_GET_COUNT,
	M_GET_USER_STATS,
	M_GET_THREAD,
	M_SAVE_THREAD,
	M_DELETE_THREAD,
	M_CLEANUP,
	M_STATS,
	M_HEALTH,
	M_EXPORT_HISTORY,
	M_IMPORT_MESSAGES,
	/* issue 17: conversations and provider state */
	M_LIST_CONVERSATIONS,
	M_DELETE_CONVERSATION,
	M_GET_STATE,
	M_SET_STATE,
	/* issue 18: retrieval */
	M_GET_CONTEXT,
	M_GET_MESSAGES,
	M_DELETE_MESSAGE,
	M_SEARCH_MESSAGES,
	M_FORGET_USER,
	M_COUNT_
};

enum param_kind {
	PK_ID,		/* str, 1..255 bytes: user_id, thread_id */
	PK_NAME,	/* str, 1..50 bytes: provider, platform */
	PK_ROLE,	/* str: user, assistant, system, developer, tool */
	PK_CONTENT,	/* str, 1..limits.max_content bytes; or an array or
			 * map of at most limits.max_content bytes encoded,
			 * nested CONTENT_MAX_DEPTH deep at most (raw) */
	PK_INT,		/* integer in [min, max] */
	PK_BOOL,	/* true or false (absent: false) */
	PK_MAP,		/* a map of at most max bytes encoded, nested
			 * CONTENT_MAX_DEPTH deep at most (raw) */
	PK_STR,		/* str, 1..max bytes */
};

struct param_spec {
	const char *name;
	enum param_kind kind;
	bool required;
	int64_t min, max;	/* PK_INT; max: PK_MAP, PK_STR bytes */
	int64_t def_int;	/* PK_INT default when absent ... */
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
	struct param_spec params[METHOD_MAX_PARAMS];
};

/* Indexed by enum method_id. */
extern const struct method_spec validate_methods[M_COUNT_];

/* Finds a method by name; NULL if there is none. */
const struct method_spec *validate_find_method(const char *name, size_t len);

struct validate_limits {
	size_t max_content;	/* bytes; default 1 MiB */
};

/*
 * One argument after validation (defaults filled in).  An optional
 * parameter without a default that was absent or nil has present false.
 */
struct arg_value {
	bool present;		/* given by the client, or defaulted */
	struct strview s;	/* string kinds (points into the request);
				 * raw: the value's msgpack bytes */
	bool raw;		/* PK_CONTENT given as an array or map, PK_MAP */
	int64_t i;		/* PK_INT; PK_BOOL: 1 or 0 */
};

struct method_args {
	struct arg_value v[METHOD_MAX_PARAMS];	/* in spec order */
};

/*
 * Checks the params node (an array, or a map) against spec.  Returns 0 and
 * fills args, or -1 with a message for the client in err ("user_id: must be
 * a string of 1 to 255 bytes", "role: must be one of user, assistant,
 * system", "unknown parameter 'foo'", "content: not valid UTF-8", ...).
 * A nil value counts as absent.  Messages start with the parameter's name
 * when one parameter is at fault; names the client sent are quoted with
 * anything but printable ASCII escaped as \xNN.  lim may be NULL (1 MiB).
 */
CONVD_WUR int validate_params(const struct method_spec *spec,
			      const struct mp_doc *doc, uint32_t params,
			      const struct validate_limits *lim,
			      struct method_args *args, char *err,
			      size_t errlen);

/*
 * validate_params for a doc that proto_decode made from frame[0..len):
 * structured content (PK_CONTENT given as an array or map) and PK_MAP
 * values are checked (encoded size, depth) and given as the exact bytes
 * the client sent (s, with raw set), pointing into frame.  Without a
 * frame (validate_params), they are refused.
 */
CONVD_WUR int validate_params_frame(const struct method_spec *spec,
				    const struct mp_doc *doc, uint32_t params,
				    const uint8_t *frame, size_t len,
				    const struct validate_limits *lim,
				    struct method_args *args, char *err,
				    size_t errlen);

#endif
