/*
 * convctl_import.h - the parser of `convctl import`'s JSON Lines (the
 * format `convctl export` writes): one line, one message.  Pure
 * (tests/unit/test_convctl_import.c).
 */
#ifndef CONVD_CONVCTL_IMPORT_H
#define CONVD_CONVCTL_IMPORT_H

#include <stddef.h>

#include "common.h"

/* The fields of one line; strings are malloc'd and NUL-terminated
 * (content may hold NULs: content_len is its length).  platform and
 * idempotency_key are NULL when the line has none. */
struct convctl_import_row {
	char *user_id, *platform, *provider, *role, *content, *created_at;
	char *idempotency_key;
	size_t content_len;
};

void convctl_import_row_free(struct convctl_import_row *r);

/*
 * Parses one line s[0..len): a JSON object with the strings user_id,
 * provider, role, content, created_at and optionally platform and
 * idempotency_key; other members (id, and any a later export adds) are
 * skipped (nesting up to 32 levels).  String escapes are decoded (\u
 * surrogate pairs joined); raw bytes are kept as they are (convd checks
 * UTF-8).  False with a message in err[0..errlen) for anything else; row
 * then holds nothing.
 */
CONVD_WUR bool convctl_import_parse(const char *s, size_t len,
				    struct convctl_import_row *row, char *err,
				    size_t errlen);

#endif
