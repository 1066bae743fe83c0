/*
 * validate.h - a request's params checked against its method's spec
 * (method.h).
 *
 * Pure code (no I/O), shared by convd, the unit tests and the fuzz target.
 * A request's params are either [ {name: value, ...} ] (named) or the
 * values positionally in the order of the spec; a bare map is also
 * accepted as named params.
 */
#ifndef CONVD_VALIDATE_H
#define CONVD_VALIDATE_H

#include "common.h"
#include "method.h"
#include "proto.h"

struct validate_limits {
	size_t max_content;	/* bytes; default 1 MiB */
};

/*
 * One argument after validation (defaults filled in).  An optional
 * parameter without a default that was absent or nil has present false.
 */
struct validate_arg {
	bool present;		/* given by the client, or defaulted */
	struct strview s;	/* string kinds (points into the request);
				 * raw: the value's msgpack bytes */
	bool raw;		/* METHOD_PK_CONTENT given as an array or map,
				 * METHOD_PK_MAP */
	int64_t i;		/* METHOD_PK_INT; METHOD_PK_BOOL: 1 or 0 */
};

struct validate_args {
	struct validate_arg v[METHOD_MAX_PARAMS];	/* in spec order */
};

/*
 * Checks the params node (an array, or a map) of a doc that proto_decode
 * made against spec.  Returns 0 and fills args, or -1 with a message for
 * the client in err ("user_id: must be a string of 1 to 255 bytes",
 * "role: must be one of user, assistant, system", "unknown parameter
 * 'foo'", "content: not valid UTF-8", "content: nested more than 64
 * deep", ...).  A nil value counts as absent.  Messages start with the
 * parameter's name when one parameter is at fault; names the client sent
 * are quoted with anything but printable ASCII escaped as \xNN.
 *
 * Structured content (METHOD_PK_CONTENT given as an array or map) and
 * METHOD_PK_MAP values are checked by their encoded size and depth (the
 * node's, proto.h) and given as the exact bytes the client sent (s, with
 * raw set), pointing into the decoded input.  Nothing is allocated.  lim
 * may be NULL (1 MiB).
 */
CONVD_WUR int validate_params(const struct method_spec *spec,
			      const struct proto_doc *doc, uint32_t params,
			      const struct validate_limits *lim,
			      struct validate_args *args, char *err,
			      size_t errlen);

#endif
