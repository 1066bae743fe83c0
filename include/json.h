/*
 * json.h - the one JSON writer (RFC 8259) of convctl and `convctl db`:
 * strings, scalars and object members written straight to a FILE.
 *
 * Strings.  The output is always valid JSON in UTF-8:
 *   - valid UTF-8 is written as it is, apart from the escapes below;
 *   - '"' and '\' as \" and \\; \b \f \n \r \t as those escapes; the other
 *     control characters U+0000..U+001F and DEL (U+007F) as \u00XX;
 *   - every byte that is not part of a valid UTF-8 sequence (RFC 3629: no
 *     overlong forms, no surrogates, nothing above U+10FFFF; see utf8.h) is
 *     written as \ufffd, the replacement character, one per byte.
 * JSON strings are Unicode text and cannot carry arbitrary bytes: passing
 * the byte through would make the document invalid, and escaping it as
 * \u00XX or a lone surrogate \udcXX would claim a character the data does
 * not hold (strict parsers refuse lone surrogates).  So the byte is
 * replaced, but never silently: the writer counts the bytes it replaced
 * (`replaced`), and json_warn_replaced() tells the user on stderr after the
 * document.  Bytes that are meant to be bytes are written with json_hex().
 *
 * Writing never fails here: a write error shows in ferror(f), which the
 * caller checks once when it flushes (as for any stdio output).
 */
#ifndef CONVD_JSON_H
#define CONVD_JSON_H

#include <stdio.h>

#include "common.h"

struct json {
	FILE *f;
	uint64_t replaced;	/* bytes of invalid UTF-8 written as \ufffd */
};

#define JSON_INIT(file) ((struct json){ .f = (file) })

/* s[0..len) as a JSON string (the rules above). */
void json_str(struct json *j, const char *s, size_t len);
/* A NUL-terminated string, or null for NULL. */
void json_cstr(struct json *j, const char *s);
void json_null(struct json *j);
void json_bool(struct json *j, bool v);
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
/* The shortest of %.15g / %.17g that reads back as v; null if v is not
 * finite (JSON has no NaN or infinity). */
void json_double(struct json *j, double v);
/* Bytes as a string of lowercase hexadecimal digits, two per byte. */
void json_hex(struct json *j, const void *p, size_t n);

/*
 * Members and elements: *first starts true for each object or array; the
 * separator ',' is written before every member but the first.
 */
void json_sep(struct json *j, bool *first);
/* The separator, then "key": */
void json_key(struct json *j, bool *first, const char *key);
void json_kv_str(struct json *j, bool *first, const char *key,
		 const char *val);
void json_kv_bool(struct json *j, bool *first, const char *key, bool val);
void json_kv_int(struct json *j, bool *first, const char *key, int64_t val);

/*
 * When the writer replaced bytes, writes "PROG: warning: N bytes of invalid
 * UTF-8 written as U+FFFD in the JSON output" on stderr (after flushing
 * j->f) and returns true; returns false when it replaced none.
 */
bool json_warn_replaced(const struct json *j, const char *prog);

#endif
