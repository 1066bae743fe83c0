/*
 * convctl_json.h - convctl's JSON output (--json, export) on the one JSON
 * writer (json.h): times, and whole msgpack values (stats, health) as
 * stable JSON.
 */
#ifndef CONVD_CONVCTL_JSON_H
#define CONVD_CONVCTL_JSON_H

#include <msgpack.h>

#include "convd/client.h"
#include "json.h"

/* A time as an ISO 8601 UTC string with microseconds. */
void convctl_json_time(struct json *j, int64_t usec);

/*
 * msgpack -> JSON: timestamps as ISO 8601 strings (microseconds), binary
 * and other extension values as hexadecimal strings, non-finite floats as
 * null, map keys that are not strings as their text.  Depth is bounded by
 * msgpack-c's decoder.
 */
void convctl_json_value(struct json *j, const msgpack_object *o);

#endif
