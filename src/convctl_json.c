/*
 * convctl_json.c - convctl's JSON output: times and msgpack values.
 */
#include <inttypes.h>
#include <stdio.h>

#include "convctl_json.h"
#include "convctl_time.h"
#include "convd/client.h"

void convctl_json_time(struct json *j, int64_t usec)
{
	char buf[64];

	convctl_time_format(buf, sizeof(buf), usec, 6);
	json_cstr(j, buf);
}

/* A map key as a JSON member name. */
static void member_name(struct json *j, const msgpack_object *k)
{
	char buf[64];

	switch (k->type) {
	case MSGPACK_OBJECT_STR:
		json_str(j, k->via.str.ptr, k->via.str.size);
		return;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(buf, sizeof(buf), "%" PRIu64, k->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(buf, sizeof(buf), "%" PRId64, k->via.i64);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		snprintf(buf, sizeof(buf), "%s",
			 k->via.boolean ? "true" : "false");
		break;
	case MSGPACK_OBJECT_NIL:
		snprintf(buf, sizeof(buf), "null");
		break;
	default:
		snprintf(buf, sizeof(buf), "?");
		break;
	}
	json_cstr(j, buf);
}

void convctl_json_value(struct json *j, const msgpack_object *o)
{
	bool first = true;
	int64_t t;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		json_null(j);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		json_bool(j, o->via.boolean);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		json_uint(j, o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		json_int(j, o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		json_double(j, o->via.f64);
		break;
	case MSGPACK_OBJECT_STR:
		json_str(j, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		json_hex(j, o->via.bin.ptr, o->via.bin.size);
		break;
	case MSGPACK_OBJECT_EXT:
		if (convc_object_timestamp(o, &t))
			convctl_json_time(j, t);
		else
			json_hex(j, o->via.ext.ptr, o->via.ext.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', j->f);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			json_sep(j, &first);
			convctl_json_value(j, &o->via.array.ptr[i]);
		}
		fputc(']', j->f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', j->f);
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			json_sep(j, &first);
			member_name(j, &o->via.map.ptr[i].key);
			fputc(':', j->f);
			convctl_json_value(j, &o->via.map.ptr[i].val);
		}
		fputc('}', j->f);
		break;
	default:
		json_null(j);
		break;
	}
}
