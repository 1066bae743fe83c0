/*
 * convctl_json.c - convctl's JSON output.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "buf.h"
#include "convctl_json.h"
#include "convctl_text.h"
#include "convctl_time.h"
#include "convd/client.h"

/* A JSON string: RFC 8259 escapes; invalid UTF-8 becomes U+FFFD. */
void convctl_json_str(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < len) {
		uint32_t cp;
		size_t n = convctl_text_utf8_next(p + i, len - i, &cp);

		switch (cp) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		case UINT32_MAX: fputs("\\ufffd", f); break;
		default:
			if (cp < 0x20)
				fprintf(f, "\\u%04x", (unsigned)cp);
			else
				fwrite(p + i, 1, n, f);
		}
		i += n;
	}
	fputc('"', f);
}

void convctl_json_cstr(FILE *f, const char *s)
{
	if (s)
		convctl_json_str(f, s, strlen(s));
	else
		fputs("null", f);
}

void convctl_json_time(FILE *f, int64_t usec)
{
	char buf[64];

	convctl_time_format(buf, sizeof(buf), usec, 6);
	convctl_json_cstr(f, buf);
}

/* ------------------------------------------------------------------ */
/* Generic msgpack values (stats, health) */

static void json_hex(FILE *f, const char *p, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", (unsigned char)p[i]);
	fputc('"', f);
}

/* A map key as a JSON member name. */
static void json_key(FILE *f, const msgpack_object *k)
{
	char buf[64];

	switch (k->type) {
	case MSGPACK_OBJECT_STR:
		convctl_json_str(f, k->via.str.ptr, k->via.str.size);
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
	convctl_json_cstr(f, buf);
}

/*
 * msgpack -> JSON: timestamps as ISO 8601 strings (microseconds), binary
 * and other extension values as hexadecimal strings, non-finite floats as
 * null, map keys that are not strings as their text.
 */
void convctl_json_value(FILE *f, const msgpack_object *o)
{
	char buf[64];
	int64_t t;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("null", f);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		fputs(o->via.boolean ? "true" : "false", f);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		fprintf(f, "%" PRIu64, o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		fprintf(f, "%" PRId64, o->via.i64);
		break;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64)) {
			fputs("null", f);
			break;
		}
		buf_fmt_double(buf, sizeof(buf), o->via.f64);
		fputs(buf, f);
		break;
	case MSGPACK_OBJECT_STR:
		convctl_json_str(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		json_hex(f, o->via.bin.ptr, o->via.bin.size);
		break;
	case MSGPACK_OBJECT_EXT:
		if (convc_object_timestamp(o, &t))
			convctl_json_time(f, t);
		else
			json_hex(f, o->via.ext.ptr, o->via.ext.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', f);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (i)
				fputc(',', f);
			convctl_json_value(f, &o->via.array.ptr[i]);
		}
		fputc(']', f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputc('{', f);
		for (uint32_t i = 0; i < o->via.map.size; i++) {
			if (i)
				fputc(',', f);
			json_key(f, &o->via.map.ptr[i].key);
			fputc(':', f);
			convctl_json_value(f, &o->via.map.ptr[i].val);
		}
		fputc('}', f);
		break;
	default:
		fputs("null", f);
		break;
	}
}

