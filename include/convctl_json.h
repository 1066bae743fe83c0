/*
 * convctl_json.h - convctl's JSON output (--json, export): strings, times
 * and whole msgpack values (stats, health) as one line of stable JSON.
 */
#ifndef CONVD_CONVCTL_JSON_H
#define CONVD_CONVCTL_JSON_H

#include <msgpack.h>
#include <stdio.h>

#include "common.h"

/* A JSON string: RFC 8259 escapes; invalid UTF-8 becomes U+FFFD. */
void convctl_json_str(FILE *f, const char *s, size_t len);

/* A C string as a JSON string; NULL as null. */
void convctl_json_cstr(FILE *f, const char *s);

/* A time as an ISO 8601 UTC string with microseconds. */
void convctl_json_time(FILE *f, int64_t usec);

/*
 * msgpack -> JSON: timestamps as ISO 8601 strings (microseconds), binary
 * and other extension values as hexadecimal strings, non-finite floats as
 * null, map keys that are not strings as their text.
 */
void convctl_json_value(FILE *f, const msgpack_object *o);

#endif
