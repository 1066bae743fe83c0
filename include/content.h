/*
 * content.h - structured message content and msgpack maps as bytes
 * (issue 17; pure code).
 *
 * A message's `content` is a string, or any msgpack array or map (content
 * parts: text, images, tool calls and results, provider-signed blocks).
 * Structured content, and the `metadata` and `state` maps, are kept as the
 * exact bytes the client sent (content_mp, metadata, state: bytea) and
 * spliced back into responses as they are, so that they come back
 * byte-exact: a bin stays a bin, a signature keeps every byte, an integer
 * keeps its encoding.
 *
 * For search and for readers of the `content` column (the seed's code,
 * SQL), structured content also has a text (convd-protocol(7) "Structured
 * content"): every str value under a map key "text", at any depth, in the
 * order they come, joined with "\n"; '' when there is none.  A "text" str
 * that is not valid UTF-8 or holds a NUL byte is left out of the text
 * (PostgreSQL's text cannot hold it); it stays in the bytes.
 */
#ifndef CONVD_CONTENT_H
#define CONVD_CONTENT_H

#include <sys/types.h>

#include "common.h"
#include "proto.h"

/* Deepest nesting of arrays and maps in structured content, metadata and
 * state (the value itself counts: [] is 1, [{}] is 2).  A request whose
 * value nests deeper is answered invalid_params (validate.h); the
 * connection is closed only beyond PROTO_MAX_DEPTH (proto.h). */
#define CONTENT_MAX_DEPTH 64

/*
 * The nesting depth of the one msgpack value that fills v exactly (a
 * scalar is 0), or -1 when v is not one well-formed value (or is nested
 * deeper than max_depth: then -2).
 */
int content_depth(struct strview v, uint32_t max_depth);

/*
 * The text of structured content v (above) into out[0..outlen), which
 * needs v.len bytes at most (the text is never longer than the value).
 * Returns the text's length, or -1 when v is not well-formed or out is
 * too small.  Not NUL-terminated.
 */
CONVD_WUR ssize_t content_text(struct strview v, char *out, size_t outlen);

/*
 * Packs v, msgpack bytes kept by convd (content_mp, metadata, state), into
 * the answer as they are, after checking that they are one well-formed
 * value nested CONTENT_MAX_DEPTH deep at most (bytes altered in the
 * database must not break the client's stream).  0, or -1: malformed or
 * the packer failed.
 */
CONVD_WUR int content_pack(msgpack_packer *pk, struct strview v);

#endif
