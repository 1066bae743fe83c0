/*
 * proto.h - the MessagePack-RPC codec.
 *
 * Decoding is our own bounded, zero-copy parser: it reads one complete
 * msgpack object from a byte range into a small array of nodes whose
 * strings point into the input.  Only the top levels become nodes (for a
 * request: the envelope and the params); an array or map below them is
 * checked in the same pass (msgpack, size, depth) and kept as one node
 * holding its bytes, so a parameter may hold any number of values.  Every
 * declared length is checked against the limits before anything is
 * buffered or allocated, so a frame that announces 4 GiB is refused after
 * its 5-byte header.
 *
 * Encoding uses msgpack-c's msgpack_packer; the helpers here write the
 * response envelope.
 *
 * Wire format (msgpack-rpc):
 *   request       [0, msgid:uint32, method:str, params:array]
 *   response      [1, msgid:uint32, error:nil|map, result:any]
 *   notification  [2, method:str, params:array]
 * error is {"code": str, "message": str}.  Times travel as the msgpack
 * timestamp extension (type -1).
 */
#ifndef CONVD_PROTO_H
#define CONVD_PROTO_H

#include <msgpack.h>

#include "common.h"

enum proto_type {
	PROTO_NIL,
	PROTO_BOOL,
	PROTO_INT,		/* negative or positive, fits int64 */
	PROTO_UINT,	/* positive beyond INT64_MAX */
	PROTO_FLOAT,
	PROTO_STR,
	PROTO_BIN,
	PROTO_ARRAY,
	PROTO_MAP,
	PROTO_EXT,
};

/*
 * One decoded value.  Containers are laid out in pre-order: an array's
 * elements follow it; a map's entries follow it as key, value, key, value.
 * `next` is the index of the node just after this value and all its
 * children, so siblings are walked with i = doc->nodes[i].next.
 *
 * A container whose elements were not decoded into nodes (raw: below
 * proto_limits.node_depth, or too many for the node array) is one node:
 * its elements were checked (msgpack, frame size, depth) but are read, if
 * at all, from its bytes (v.s, e.g. with mpread.h); its next is its own
 * index + 1.
 */
struct proto_node {
	enum proto_type type;
	uint32_t count;		/* PROTO_ARRAY: elements, PROTO_MAP: pairs */
	uint32_t next;		/* index of the next sibling */
	uint16_t depth;		/* PROTO_ARRAY, PROTO_MAP: nesting of the value,
				 * itself counting 1 ([] 1, [[1]] 2) */
	bool raw;		/* PROTO_ARRAY, PROTO_MAP: elements not in nodes */
	int8_t ext_type;	/* PROTO_EXT */
	union {
		bool b;
		int64_t i;
		uint64_t u;
		double f;
		struct strview s; /* PROTO_STR, PROTO_BIN, PROTO_EXT payload;
				   * PROTO_ARRAY, PROTO_MAP: the value's bytes,
				   * header and elements */
	} v;
};

/*
 * Limits are taken literally (a zero max_frame refuses every object);
 * max_depth above PROTO_MAX_DEPTH is treated as PROTO_MAX_DEPTH, max_nodes
 * is taken within 1..PROTO_MAX_NODES.  Depth counts arrays and maps only,
 * empty ones included: a scalar at the top level needs no depth, [[]]
 * needs 2.
 *
 * Only max_frame and max_depth refuse an object.  The others say how much
 * of it becomes nodes: a container's elements are nodes when
 *   - it is nested node_depth deep at most (node_depth 0: any depth), or
 *     it is a map that is the only element of an array nested node_depth
 *     deep whose elements are nodes (MessagePack-RPC's named params,
 *     [0, msgid, method, [{...}]]);
 *   - it has max_container elements (pairs) at most;
 *   - they fit in the nodes left: max_nodes in all.
 * Otherwise it is one raw node (struct proto_node).  So memory is bounded by
 * the node array and a stack of max_depth entries, whatever the number
 * of values.
 */
struct proto_limits {
	size_t max_frame;	/* bytes in one top-level object */
	uint32_t max_depth;	/* nesting of arrays/maps, top level = 1 */
	uint32_t node_depth;	/* containers decoded into nodes (0: all) */
	uint32_t max_nodes;	/* nodes in one doc */
	uint32_t max_container;	/* elements of one array / pairs of one map
				 * decoded into nodes */
};

#define PROTO_MAX_NODES 512
/* The frame-level bound of nesting: far above any parameter's (content,
 * metadata and state nest CONTENT_MAX_DEPTH deep at most); a frame
 * nested deeper closes the connection. */
#define PROTO_MAX_DEPTH 1024

/* Small limits for tests of the decoder itself. */
#define PROTO_DEFAULT_DEPTH 8
#define PROTO_DEFAULT_CONTAINER 64

/*
 * The limits convd reads requests with (server.c, the tests, the fuzz
 * target): max_frame bytes (max_request_bytes), PROTO_MAX_DEPTH levels,
 * nodes for the envelope and the params (the named params' map too), a
 * parameter's value that is an array or a map as one raw node.
 */
void proto_request_limits(struct proto_limits *lim, size_t max_frame);

struct proto_doc {
	uint32_t n;
	struct proto_node nodes[PROTO_MAX_NODES];
};

enum proto_status {
	PROTO_OK = 0,		/* one object decoded; *consumed set */
	PROTO_INCOMPLETE,	/* valid so far, need more bytes */
	PROTO_ERR_SYNTAX,	/* a byte that is not msgpack (0xc1) */
	PROTO_ERR_TOO_LARGE,	/* frame would exceed max_frame */
	PROTO_ERR_TOO_DEEP,	/* nesting beyond max_depth */
};

/*
 * Decodes one object from buf[0..len).  On PROTO_OK, *consumed is the size
 * of the object and doc holds it (node 0 is the root).  Strings and raw
 * containers in doc point into buf.  On PROTO_INCOMPLETE, *consumed is a
 * size the object cannot be smaller than (> len, <= max_frame: one byte
 * for every value still owed, the whole of a str/bin/ext begun): a caller
 * that decodes again as bytes arrive may wait for that many, so that a
 * frame of many values sent a byte at a time is not scanned again for
 * every byte.  A PROTO_ERR_* means the stream cannot be resynchronised.
 *
 * Limits are enforced as soon as a header is read: a header whose declared
 * length or element count could not fit in max_frame bytes (counting one
 * byte at least for every value still owed) gives PROTO_ERR_TOO_LARGE,
 * and a container opened beyond max_depth PROTO_ERR_TOO_DEEP, without
 * waiting for the body.  Errors are reported in byte order, so a stream
 * fed in pieces gives PROTO_INCOMPLETE until the first offending byte is
 * there, then the same status as a one-shot decode.  Nothing is allocated
 * (the stack of open containers is bounded by PROTO_MAX_DEPTH); the caller
 * may simply retry with more bytes.
 */
CONVD_WUR enum proto_status proto_decode(const uint8_t *buf, size_t len,
					 const struct proto_limits *lim,
					 struct proto_doc *doc, size_t *consumed);

const char *proto_status_str(enum proto_status st);

enum proto_kind {
	PROTO_REQUEST = 0,
	PROTO_RESPONSE = 1,
	PROTO_NOTIFY = 2,
};

/*
 * A decoded envelope: indexes into the doc it came from.
 *
 * has_msgid is set when the message is an array whose type (first element)
 * is 0 or 1 and whose second element is an integer 0..UINT32_MAX, even if
 * the rest of the envelope is invalid, so the error reply can carry it.
 */
struct proto_msg {
	enum proto_kind kind;
	bool has_msgid;		/* msgid could be read (for error replies) */
	uint32_t msgid;
	struct strview method;	/* request / notification */
	uint32_t params;	/* node index of params (request/notify) */
	uint32_t error;		/* node index (response) */
	uint32_t result;	/* node index (response) */
};

/*
 * Checks the envelope of doc.  Returns 0 if it is a well-formed request,
 * response or notification.  Otherwise -1 with a human-readable reason in
 * err (msg->has_msgid says whether msg->msgid can be used to answer).
 * Requests and notifications need a non-empty method name that is valid
 * UTF-8 without NUL bytes (so it can be quoted back safely) and params that
 * are an array or a map; a response's error must be nil or a map.
 */
CONVD_WUR int proto_parse_envelope(const struct proto_doc *doc,
				   struct proto_msg *msg, char *err,
				   size_t errlen);

/* Helpers to read nodes. */
bool proto_str_eq(const struct proto_node *n, const char *s);
/* Index of the value for key `key` in the map at node index `map`, or 0
 * (also for a raw map). */
uint32_t proto_map_get(const struct proto_doc *doc, uint32_t map,
		       const char *key);
/* Timestamp ext (-1) payload -> usec; -1 if the node is not one. */
CONVD_WUR int proto_node_timestamp(const struct proto_node *n, usec_t *out);

/* Encoding (msgpack-c packer).  All return msgpack's 0 / -1. */
CONVD_WUR int proto_pack_str(msgpack_packer *pk, const char *s, size_t len);
CONVD_WUR int proto_pack_cstr(msgpack_packer *pk, const char *s);
CONVD_WUR int proto_pack_timestamp(msgpack_packer *pk, usec_t t);
/* [1, msgid, nil, ...] : the caller packs the result next. */
CONVD_WUR int proto_pack_result_head(msgpack_packer *pk, uint32_t msgid);
/* [1, msgid|nil, {code, message}, nil] */
CONVD_WUR int proto_pack_error(msgpack_packer *pk, bool has_msgid,
			       uint32_t msgid, const char *code,
			       const char *message);
/* [0, msgid, method, ...] : the caller packs the params array next. */
CONVD_WUR int proto_pack_request_head(msgpack_packer *pk, uint32_t msgid,
				      const char *method);

#endif
