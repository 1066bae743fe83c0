/*
 * convctl_import.h - the parser of `convctl import`'s JSON Lines (the
 * format `convctl export` writes, convctl(1) EXPORT FORMAT): one line,
 * one message, every member of it.  Pure (tests/unit/test_convctl_import.c).
 */
#ifndef CONVD_CONVCTL_IMPORT_H
#define CONVD_CONVCTL_IMPORT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/*
 * The fields of one line; strings are malloc'd and NUL-terminated
 * (content may hold NULs: content_len is its length), NULL when the line
 * has none (or null).  Structured content is in content_mp (the exact
 * msgpack bytes), and content is then NULL; metadata is in metadata_mp.
 */
struct convctl_import_row {
	char *user_id, *platform, *provider, *role, *content, *created_at;
	char *idempotency_key;
	size_t content_len;
	/* issue 17 */
	char *conversation_id, *tool_call_id, *name, *model;
	bool has_tokens;
	int64_t tokens;
	uint8_t *content_mp, *metadata_mp;
	size_t content_mp_len, metadata_mp_len;
};

void convctl_import_row_free(struct convctl_import_row *r);

/*
 * Parses one line s[0..len): a JSON object with the members of
 * convctl(1) EXPORT FORMAT.  Required: the strings user_id, provider,
 * role, created_at, and content (a string) or content_mp.  Optional (a
 * null member is as if absent): the strings platform, idempotency_key,
 * conversation_id, tool_call_id, name, model; tokens (an integer, 0 to
 * 2147483647); metadata (a JSON object, packed as msgpack) or
 * metadata_mp (base64 of a msgpack map); content_mp (base64 of a msgpack
 * array or map: the structured content, byte for byte; a string content
 * beside it must be its text, as convd derives it); content may also be
 * a JSON array or object (structured content packed from JSON); id (any
 * value) is ignored.  Any other member is refused, and so is a member
 * given twice.  String escapes are decoded (\u surrogate pairs joined);
 * raw bytes are kept as they are (convd checks UTF-8).  False with a
 * message in err[0..errlen) for anything else; row then holds nothing.
 */
CONVD_WUR bool convctl_import_parse(const char *s, size_t len,
				    struct convctl_import_row *row, char *err,
				    size_t errlen);

#endif
