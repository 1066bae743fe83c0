/*
 * convctl.c - the command-line client of convd.
 *
 *   convctl [-s SOCKET] [-c FILE] [--json] [--platform P] [-t SECONDS]
 *           COMMAND [ARGS]
 *
 * Every command but `db` talks to convd through the client library
 * (include/convd/client.h); `db ...` is handed to dbcmd_main.  Output is
 * a readable table or listing for people, or with --json one line of
 * stable JSON (shapes documented in convctl(1)).
 *
 * Exit status: 0 ok, 1 error from the daemon (or a local failure such as
 * running out of memory), 2 usage error, 3 cannot reach the daemon
 * (connect failure, timeout, connection closed, protocol error).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "autoconfig.h"
#include "common.h"
#include "config.h"
#include "convd/client.h"
#include "dbcmd.h"

#define EXIT_DAEMON 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

#define MAX_STDIN_TEXT ((size_t)64 << 20)	/* add ... -, one import line */
#define EXPORT_PAGE 1000			/* export: messages per request */
#define DEFAULT_TIMEOUT_S 60
#define MAX_TIMEOUT_S 86400

static const char *progname = "convctl";

struct options {
	const char *socket;
	const char *config;
	const char *platform;
	bool json;
	bool timeout_set;
	int64_t timeout_s;
	/* command options */
	bool limit_set;
	int64_t limit;
	bool days_set;
	int64_t days;
	bool prometheus;
	const char *provider;			/* export --provider */
	bool dry_run;				/* cleanup --dry-run */
};

/* ------------------------------------------------------------------ */
/* Usage */

static const char usage_synopsis[] =
	"usage: convctl [-s SOCKET] [-c FILE] [--json] [--platform P] "
	"[-t SECONDS] COMMAND [ARGS]\n";

static const char usage_commands[] =
	"\n"
	"Commands:\n"
	"  ping                              check that convd answers\n"
	"  add USER PROVIDER ROLE TEXT|-     store a message (- reads TEXT "
	"from stdin)\n"
	"  history USER PROVIDER [-n LIMIT]  recent messages, oldest first "
	"(LIMIT turns)\n"
	"  clear USER PROVIDER               delete a user's history for a "
	"provider\n"
	"  count USER [PROVIDER]             number of stored messages\n"
	"  stats-user USER                   messages per provider\n"
	"  thread get USER                   the user's thread id\n"
	"  thread set USER THREAD            save the user's thread id\n"
	"  thread delete USER                forget the user's thread id\n"
	"  cleanup [--days N] [--dry-run]    delete messages older than N days "
	"(admin)\n"
	"  export USER [--provider P]        the user's whole history as JSON "
	"Lines\n"
	"  import                            store JSON Lines from stdin, "
	"times kept (admin)\n"
	"  stats [--prometheus]              daemon statistics\n"
	"  health                            database and schema state (exit 1 "
	"if not ok)\n"
	"  db SUBCOMMAND ...                 schema migrations (see "
	"convctl(1))\n"
	"  help                              this text\n"
	"\n"
	"Options:\n"
	"  -s, --socket PATH     convd's socket (default: $CONVD_SOCKET, else "
	"the\n"
	"                        [server] socket of -c FILE, else "
	CONVD_DEFAULT_SOCKET ")\n"
	"  -c, --config FILE     convd's configuration file\n"
	"      --json            print JSON instead of text\n"
	"      --platform NAME   platform of the user (default: line)\n"
	"  -t, --timeout SECS    give up after SECS seconds (0: never; default "
	"60,\n"
	"                        none for cleanup)\n"
	"  -n, --limit LIMIT     history: number of turns, 1 to 1000 (default "
	"10)\n"
	"      --days N          cleanup: keep N days, 0 to 36500 (default: "
	"convd's)\n"
	"      --dry-run         cleanup: count what would be deleted, delete "
	"nothing\n"
	"      --prometheus      stats: Prometheus text format\n"
	"      --provider NAME   export: only the messages with this provider\n"
	"  -h, --help            this text\n"
	"  -V, --version         print the version\n"
	"\n"
	"Exit status: 0 ok, 1 error from convd, 2 usage error, 3 cannot reach "
	"convd.\n";

static void print_help(FILE *f)
{
	fputs(usage_synopsis, f);
	fputs(usage_commands, f);
}

static int usage_error(const char *fmt, ...) CONVD_PRINTF(1, 2);

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage_synopsis, stderr);
	fprintf(stderr, "Try '%s help' for more information.\n", progname);
	return EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Strict numbers */

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !((*s >= '0' && *s <= '9') ||
		    (*s == '-' && s[1] >= '0' && s[1] <= '9')))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* ------------------------------------------------------------------ */
/* UTF-8 and text output */

/*
 * Decodes one UTF-8 sequence at s[0..len).  Returns its length and the
 * code point in *cp, or 1 with *cp = UINT32_MAX for a byte that does not
 * start a valid sequence (overlong forms, surrogates and values above
 * U+10FFFF are invalid).
 */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
	uint32_t c = s[0], min;
	size_t n;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		c &= 0x1F;
		min = 0x80;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		c &= 0x0F;
		min = 0x800;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		c &= 0x07;
		min = 0x10000;
	} else {
		*cp = UINT32_MAX;
		return 1;
	}
	if (len < n) {
		*cp = UINT32_MAX;
		return 1;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			*cp = UINT32_MAX;
			return 1;
		}
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
		*cp = UINT32_MAX;
		return 1;
	}
	*cp = c;
	return n;
}

/*
 * Writes text for people: valid UTF-8 passes through; control characters
 * (C0 except tab and newline, DEL, C1) and invalid bytes are shown as
 * \xNN or \u00NN so that stored data cannot drive the terminal.  A newline
 * starts a new line indented by `indent` spaces, or is shown as \n when
 * indent is SIZE_MAX.
 */
static void put_text(FILE *f, const char *s, size_t len, size_t indent)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_next(p + i, len - i, &cp);

		if (cp == '\n') {
			if (indent == SIZE_MAX)
				fputs("\\n", f);
			else
				fprintf(f, "\n%*s", (int)indent, "");
		} else if (cp == UINT32_MAX) {
			fprintf(f, "\\x%02X", p[i]);
		} else if ((cp < 0x20 && cp != '\t') || cp == 0x7F ||
			   (cp >= 0x80 && cp <= 0x9F)) {
			if (cp < 0x80)
				fprintf(f, "\\x%02X", (unsigned)cp);
			else
				fprintf(f, "\\u%04X", (unsigned)cp);
		} else {
			fwrite(p + i, 1, n, f);
		}
		i += n;
	}
}

static void put_cstr(FILE *f, const char *s)
{
	put_text(f, s, strlen(s), SIZE_MAX);
}

/* A JSON string: RFC 8259 escapes; invalid UTF-8 becomes U+FFFD. */
static void json_str(FILE *f, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	fputc('"', f);
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_next(p + i, len - i, &cp);

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

static void json_cstr(FILE *f, const char *s)
{
	if (s)
		json_str(f, s, strlen(s));
	else
		fputs("null", f);
}

/* ------------------------------------------------------------------ */
/* Times */

/* ISO 8601 UTC with 3 or 6 decimals: 2026-11-24T06:52:58.123Z. */
static void fmt_time(char *buf, size_t len, int64_t usec, int digits)
{
	int64_t sec = usec / 1000000, frac = usec % 1000000;
	time_t t;
	struct tm tm;

	if (frac < 0) {
		frac += 1000000;
		sec--;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 8099) {
		snprintf(buf, len, "@%" PRId64, usec);
		return;
	}
	if (digits == 3)
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(frac / 1000));
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

static void json_time(FILE *f, int64_t usec)
{
	char buf[64];

	fmt_time(buf, sizeof(buf), usec, 6);
	json_cstr(f, buf);
}

/* ------------------------------------------------------------------ */
/* Generic msgpack values (stats, health) */

static void fmt_double(char *buf, size_t len, double d)
{
	snprintf(buf, len, "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, len, "%.17g", d);
}

static void json_hex(FILE *f, const char *p, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", (unsigned char)p[i]);
	fputc('"', f);
}

static void json_value(FILE *f, const msgpack_object *o);

/* A map key as a JSON member name. */
static void json_key(FILE *f, const msgpack_object *k)
{
	char buf[64];

	switch (k->type) {
	case MSGPACK_OBJECT_STR:
		json_str(f, k->via.str.ptr, k->via.str.size);
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
	json_cstr(f, buf);
}

/*
 * msgpack -> JSON: timestamps as ISO 8601 strings (microseconds), binary
 * and other extension values as hexadecimal strings, non-finite floats as
 * null, map keys that are not strings as their text.
 */
static void json_value(FILE *f, const msgpack_object *o)
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
		fmt_double(buf, sizeof(buf), o->via.f64);
		fputs(buf, f);
		break;
	case MSGPACK_OBJECT_STR:
		json_str(f, o->via.str.ptr, o->via.str.size);
		break;
	case MSGPACK_OBJECT_BIN:
		json_hex(f, o->via.bin.ptr, o->via.bin.size);
		break;
	case MSGPACK_OBJECT_EXT:
		if (convc_object_timestamp(o, &t))
			json_time(f, t);
		else
			json_hex(f, o->via.ext.ptr, o->via.ext.size);
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputc('[', f);
		for (uint32_t i = 0; i < o->via.array.size; i++) {
			if (i)
				fputc(',', f);
			json_value(f, &o->via.array.ptr[i]);
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
			json_value(f, &o->via.map.ptr[i].val);
		}
		fputc('}', f);
		break;
	default:
		fputs("null", f);
		break;
	}
}

/* A growable string for flattened paths and collected lines. */
struct buf {
	char *p;
	size_t len, cap;
	bool nomem;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->nomem)
		return;
	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 64;
		char *p;

		while (cap - b->len < n + 1) {
			if (cap > SIZE_MAX / 2) {
				b->nomem = true;
				return;
			}
			cap *= 2;
		}
		p = realloc(b->p, cap);
		if (!p) {
			b->nomem = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* A map key or array index as a path component, raw. */
static void key_text(struct buf *b, const msgpack_object *k)
{
	char tmp[32];

	switch (k->type) {
	case MSGPACK_OBJECT_STR:
		buf_add(b, k->via.str.ptr, k->via.str.size);
		break;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(tmp, sizeof(tmp), "%" PRIu64, k->via.u64);
		buf_adds(b, tmp);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(tmp, sizeof(tmp), "%" PRId64, k->via.i64);
		buf_adds(b, tmp);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		buf_adds(b, k->via.boolean ? "true" : "false");
		break;
	default:
		buf_adds(b, "?");
		break;
	}
}

/* One leaf of a flattened map: its path and its value object. */
struct leaf {
	char *path;
	const msgpack_object *val;
};

struct leaves {
	struct leaf *v;
	size_t n, cap;
	bool nomem;
};

static void leaves_add(struct leaves *l, const char *path,
		       const msgpack_object *val)
{
	if (l->nomem)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct leaf *p = NULL;

		if (cap <= SIZE_MAX / sizeof(*p))
			p = realloc(l->v, cap * sizeof(*p));
		if (!p) {
			l->nomem = true;
			return;
		}
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n].path = strdup(path);
	if (!l->v[l->n].path) {
		l->nomem = true;
		return;
	}
	l->v[l->n].val = val;
	l->n++;
}

static void leaves_free(struct leaves *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].path);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/*
 * Flattens maps and arrays into leaves whose paths are the keys (array
 * indexes) joined by sep.  An empty map or array is a leaf itself.
 * Depth is bounded by msgpack-c's decoder (32).
 */
static void flatten(struct leaves *l, struct buf *path,
		    const msgpack_object *o, char sep)
{
	size_t mark = path->len;
	uint32_t n;

	if (o->type == MSGPACK_OBJECT_MAP || o->type == MSGPACK_OBJECT_ARRAY) {
		n = o->type == MSGPACK_OBJECT_MAP ? o->via.map.size
						  : o->via.array.size;
		if (n == 0) {
			leaves_add(l, path->p ? path->p : "", o);
			return;
		}
		for (uint32_t i = 0; i < n; i++) {
			if (mark > 0)
				buf_add(path, &sep, 1);
			if (o->type == MSGPACK_OBJECT_MAP) {
				key_text(path, &o->via.map.ptr[i].key);
				flatten(l, path, &o->via.map.ptr[i].val, sep);
			} else {
				char tmp[16];

				snprintf(tmp, sizeof(tmp), "%" PRIu32, i);
				buf_adds(path, tmp);
				flatten(l, path, &o->via.array.ptr[i], sep);
			}
			if (path->nomem) {
				l->nomem = true;
				return;
			}
			path->len = mark;
			if (path->p)
				path->p[mark] = '\0';
		}
		return;
	}
	leaves_add(l, path->p ? path->p : "", o);
}

/* A leaf's value for people. */
static void put_value(FILE *f, const msgpack_object *o)
{
	char buf[64];
	int64_t t;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		fputs("-", f);
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
		fmt_double(buf, sizeof(buf), o->via.f64);
		fputs(buf, f);
		break;
	case MSGPACK_OBJECT_STR:
		put_text(f, o->via.str.ptr, o->via.str.size, SIZE_MAX);
		break;
	case MSGPACK_OBJECT_BIN:
		fprintf(f, "<%" PRIu32 " bytes>", o->via.bin.size);
		break;
	case MSGPACK_OBJECT_EXT:
		if (convc_object_timestamp(o, &t)) {
			fmt_time(buf, sizeof(buf), t, 3);
			fputs(buf, f);
		} else {
			fprintf(f, "<extension %d, %" PRIu32 " bytes>",
				o->via.ext.type, o->via.ext.size);
		}
		break;
	case MSGPACK_OBJECT_ARRAY:
		fputs("[]", f);
		break;
	case MSGPACK_OBJECT_MAP:
		fputs("{}", f);
		break;
	default:
		fputs("?", f);
		break;
	}
}

/* Display width of a path (code points; good enough for key names). */
static size_t text_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			w++;
	return w;
}

/* "path  value" lines, aligned, for people. */
static int print_flat(FILE *f, const msgpack_object *map)
{
	struct leaves l = { 0 };
	struct buf path = { 0 };
	size_t width = 0;

	flatten(&l, &path, map, '.');
	free(path.p);
	if (l.nomem) {
		leaves_free(&l);
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < l.n; i++) {
		size_t w = text_width(l.v[i].path);

		if (w > width)
			width = w;
	}
	for (size_t i = 0; i < l.n; i++) {
		put_cstr(f, l.v[i].path);
		fprintf(f, "%*s  ", (int)(width - text_width(l.v[i].path)), "");
		put_value(f, l.v[i].val);
		fputc('\n', f);
	}
	leaves_free(&l);
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Prometheus text format */

/*
 * stats --prometheus: the stats map in the Prometheus text exposition
 * format (0.0.4), for the node exporter's textfile collector.
 *
 * The leaves convctl knows become the metrics of prom_table (by path) and
 * prom_families (methods.METHOD.* and protocol_errors.CODE, one family
 * each with method / code / quantile labels): counters end in _total,
 * microseconds become seconds, timestamps Unix seconds, booleans 1 or 0,
 * strings info metrics (NAME{value="..."} 1).  Any other leaf (a field
 * added by a newer convd, or a known one of an unexpected type) is kept
 * as a gauge named convd_ + its path with every character outside
 * [A-Za-z0-9_] replaced by '_' (+ _info for a string); nil, binary values,
 * other extensions and empty maps and arrays are left out.
 *
 * Samples are collected first, then printed grouped by family under one
 * HELP and one TYPE line, the families in the order of their first sample
 * in the map.  A family name is never used twice: a leaf whose name is
 * taken by another kind of metric, or a second sample with the same name
 * and labels, is dropped (the known metrics are placed first, so an
 * unknown leaf cannot take a known name).
 */

/* How a leaf's value becomes a sample value. */
enum prom_conv {
	PROM_NUMBER,	/* integer or float as it is, boolean as 1 or 0 */
	PROM_USEC,	/* microseconds -> seconds */
	PROM_TIME,	/* timestamp (extension -1) -> Unix seconds */
	PROM_INFO,	/* string -> label value="...", sample value 1 */
};

struct prom_metric {
	const char *path;	/* stats keys joined by '.'; NULL: a family */
	const char *name;
	bool counter;
	enum prom_conv conv;
	const char *help;
};

/* The stats leaves known by their path.  Names are unique. */
static const struct prom_metric prom_table[] = {
	{ "version", "convd_version_info", false, PROM_INFO,
	  "The version of convd, in the label value." },
	{ "uptime_s", "convd_uptime_seconds", false, PROM_NUMBER,
	  "Seconds since convd started." },
	{ "started_at", "convd_start_time_seconds", false, PROM_TIME,
	  "When convd started, in seconds since the Unix epoch." },
	{ "clients.connected", "convd_clients_connected", false, PROM_NUMBER,
	  "Client connections open now." },
	{ "clients.accepted", "convd_clients_accepted_total", true, PROM_NUMBER,
	  "Client connections accepted on the socket, including those then "
	  "refused." },
	{ "clients.rejected", "convd_clients_rejected_total", true, PROM_NUMBER,
	  "Client connections refused: max_clients reached or the peer not "
	  "allowed." },
	{ "clients.closed_on_error", "convd_clients_closed_on_error_total",
	  true, PROM_NUMBER,
	  "Client connections closed by convd because of an error." },
	{ "clients.requests_in_flight", "convd_requests_in_flight", false,
	  PROM_NUMBER, "Requests received and not yet answered." },
	{ "pool.database_up", "convd_pool_database_up", false, PROM_NUMBER,
	  "Whether the database is reachable (1) or not (0)." },
	{ "pool.open", "convd_pool_connections_open", false, PROM_NUMBER,
	  "Database connections open now." },
	{ "pool.busy", "convd_pool_connections_busy", false, PROM_NUMBER,
	  "Database connections in use by a request now." },
	{ "pool.idle", "convd_pool_connections_idle", false, PROM_NUMBER,
	  "Open database connections not in use now." },
	{ "pool.connecting", "convd_pool_connections_connecting", false,
	  PROM_NUMBER, "Database connections being established now." },
	{ "pool.waiting", "convd_pool_waiting_requests", false, PROM_NUMBER,
	  "Requests waiting for a free database connection now." },
	{ "pool.connects", "convd_pool_connects_total", true, PROM_NUMBER,
	  "Database connections established." },
	{ "pool.connect_failures", "convd_pool_connect_failures_total", true,
	  PROM_NUMBER, "Attempts to connect to the database that failed." },
	{ "pool.lost", "convd_pool_connections_lost_total", true, PROM_NUMBER,
	  "Database connections found broken." },
	{ "pool.recycled", "convd_pool_connections_recycled_total", true,
	  PROM_NUMBER, "Database connections closed for being older than the "
	  "recycle age." },
	{ "pool.timeouts", "convd_pool_timeouts_total", true, PROM_NUMBER,
	  "Requests that got no database connection within the pool "
	  "timeout." },
	{ "pool.unavailable", "convd_pool_unavailable_total", true, PROM_NUMBER,
	  "Requests refused because the database was unavailable." },
	{ "pool.pings", "convd_pool_pings_total", true, PROM_NUMBER,
	  "Checks of a database connection sent before handing it out." },
	{ "pool.last_error", "convd_pool_last_error_info", false, PROM_INFO,
	  "The last database connection error, in the label value." },
	{ "retention.days_to_keep", "convd_retention_days_to_keep", false,
	  PROM_NUMBER, "Days of conversations that retention keeps; 0 when "
	  "retention is off." },
	{ "retention.running", "convd_retention_running", false, PROM_NUMBER,
	  "Whether a retention run is in progress (1) or not (0)." },
	{ "retention.runs", "convd_retention_runs_total", true, PROM_NUMBER,
	  "Retention runs completed, scheduled or requested." },
	{ "retention.skipped", "convd_retention_skipped_total", true,
	  PROM_NUMBER, "Retention runs skipped because another convd held the "
	  "cleanup lock." },
	{ "retention.failures", "convd_retention_failures_total", true,
	  PROM_NUMBER, "Retention runs that failed." },
	{ "retention.total_deleted", "convd_retention_deleted_total", true,
	  PROM_NUMBER, "Messages deleted by retention runs." },
	{ "retention.last_deleted", "convd_retention_last_run_deleted", false,
	  PROM_NUMBER,
	  "Messages deleted by the last completed retention run." },
	{ "retention.last_duration_us",
	  "convd_retention_last_run_duration_seconds", false, PROM_USEC,
	  "How long the last completed retention run took." },
	{ "retention.last_run", "convd_retention_last_run_timestamp_seconds",
	  false, PROM_TIME, "When the last retention run completed, in seconds "
	  "since the Unix epoch." },
	{ "retention.next_run", "convd_retention_next_run_timestamp_seconds",
	  false, PROM_TIME, "When the next retention run is due, in seconds "
	  "since the Unix epoch." },
	{ "memory.trims", "convd_memory_trims_total", true, PROM_NUMBER,
	  "Times convd gave its free heap back to the kernel after a quiet "
	  "spell." },
	{ "memory.heap_bytes", "convd_memory_heap_bytes", false, PROM_NUMBER,
	  "Bytes of heap convd holds, free or in use." },
	{ "memory.heap_free_bytes", "convd_memory_heap_free_bytes", false,
	  PROM_NUMBER, "Bytes of convd's heap free for reuse." },
};

/* The families with labels. */
enum {
	PF_REQUESTS,		/* methods.METHOD.requests */
	PF_ERRORS,		/* methods.METHOD.errors.CODE */
	PF_DURATION,		/* methods.METHOD.latency_us.p50|p95|p99 */
	PF_DURATION_MAX,	/* methods.METHOD.latency_us.max */
	PF_PROTOCOL_ERRORS,	/* protocol_errors.CODE */
};

static const struct prom_metric prom_families[] = {
	[PF_REQUESTS] = { NULL, "convd_requests_total", true, PROM_NUMBER,
	  "Requests handled since start-up by method, those answered with an "
	  "error included." },
	[PF_ERRORS] = { NULL, "convd_request_errors_total", true, PROM_NUMBER,
	  "Requests answered with an error, by method and error code." },
	[PF_DURATION] = { NULL, "convd_request_duration_seconds", false,
	  PROM_USEC, "Request latency percentiles since start-up by method, "
	  "accurate to about 20%." },
	[PF_DURATION_MAX] = { NULL, "convd_request_duration_max_seconds", false,
	  PROM_USEC, "The longest request latency since start-up by method." },
	[PF_PROTOCOL_ERRORS] = { NULL, "convd_protocol_errors_total", true,
	  PROM_NUMBER, "Errors for messages that never reached a method, by "
	  "error code." },
};

/* The deepest known leaf, methods.METHOD.errors.CODE. */
#define PROM_KNOWN_DEPTH 4

struct prom_sample {
	const struct prom_metric *m;	/* NULL: not known, see name */
	char *name;			/* unknown leaf: convd_PATH[_info] */
	char *path;			/* unknown leaf: for its HELP */
	char *labels;			/* name="value",... or NULL */
	char value[48];
	size_t family;			/* in families; SIZE_MAX: dropped */
};

struct prom_ctx {
	struct buf path;		/* the keys so far, joined by '.' */
	int depth;			/* how many keys */
	size_t key_off[PROM_KNOWN_DEPTH], key_len[PROM_KNOWN_DEPTH];
	struct prom_sample *s;
	size_t n, cap;
	bool nomem;
};

/* Metric name: convd_ + path with every character outside [A-Za-z0-9_]
 * replaced by '_'. */
static void prom_name(struct buf *b, const char *path)
{
	buf_adds(b, "convd_");
	for (const char *p = path; *p; p++) {
		char ch = *p;

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_'))
			ch = '_';
		buf_add(b, &ch, 1);
	}
}

/* HELP text: \\ and \n escaped. */
static void prom_help(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

/* Appends name="value" (\\, \" and \n escaped) to a label list.  The
 * format is UTF-8: an invalid byte (a server's message in another
 * encoding, say) becomes U+FFFD, or the scraper would refuse the file. */
static void prom_label(struct buf *b, const char *name, const char *v,
		       size_t len)
{
	const unsigned char *u = (const unsigned char *)v;

	if (b->len > 0)
		buf_add(b, ",", 1);
	buf_adds(b, name);
	buf_add(b, "=\"", 2);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_next(u + i, len - i, &cp);

		if (cp == UINT32_MAX)
			buf_adds(b, "\xEF\xBF\xBD");
		else if (cp == '\\')
			buf_adds(b, "\\\\");
		else if (cp == '"')
			buf_adds(b, "\\\"");
		else if (cp == '\n')
			buf_adds(b, "\\n");
		else
			buf_add(b, v + i, n);
		i += n;
	}
	buf_add(b, "\"", 1);
}

/* Key number i of the current path as a label value. */
static void prom_key_label(struct buf *b, const struct prom_ctx *x,
			   const char *name, int i)
{
	prom_label(b, name, x->path.p + x->key_off[i], x->key_len[i]);
}

static bool prom_key_is(const struct prom_ctx *x, int i, const char *s)
{
	return i < x->depth && i < PROM_KNOWN_DEPTH &&
	       x->key_len[i] == strlen(s) &&
	       memcmp(x->path.p + x->key_off[i], s, x->key_len[i]) == 0;
}

/* Whether the current path's keys are those of dotted ("pool.open"). */
static bool prom_path_is(const struct prom_ctx *x, const char *dotted)
{
	const char *p = dotted;

	if (x->depth > PROM_KNOWN_DEPTH)
		return false;
	for (int i = 0; i < x->depth; i++) {
		size_t len = strcspn(p, ".");

		if (len != x->key_len[i] ||
		    memcmp(x->path.p + x->key_off[i], p, len) != 0)
			return false;
		p += len;
		if (i + 1 < x->depth) {
			if (*p != '.')
				return false;
			p++;
		}
	}
	return *p == '\0';
}

/* Sign and magnitude in microseconds as decimal seconds, no trailing
 * zeros: 1500000 -> 1.5, 12 -> 0.000012. */
static void prom_usec(char *buf, size_t len, bool neg, uint64_t mag)
{
	unsigned frac = (unsigned)(mag % 1000000);
	int n;

	n = snprintf(buf, len, "%s%" PRIu64, neg && mag ? "-" : "",
		     mag / 1000000);
	if (frac == 0 || n < 0 || (size_t)n >= len)
		return;
	snprintf(buf + n, len - (size_t)n, ".%06u", frac);
	for (size_t e = strlen(buf); buf[e - 1] == '0'; e--)
		buf[e - 1] = '\0';
}

static void prom_double(char *buf, size_t len, double d)
{
	if (isnan(d))
		snprintf(buf, len, "NaN");
	else if (isinf(d))
		snprintf(buf, len, "%cInf", d > 0 ? '+' : '-');
	else
		fmt_double(buf, len, d);
}

/* A leaf's sample value; false if its type does not fit conv. */
static bool prom_value(char *buf, size_t len, const msgpack_object *o,
		       enum prom_conv conv)
{
	int64_t t;

	switch (conv) {
	case PROM_NUMBER:
		if (o->type == MSGPACK_OBJECT_BOOLEAN)
			snprintf(buf, len, "%d", o->via.boolean ? 1 : 0);
		else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			snprintf(buf, len, "%" PRIu64, o->via.u64);
		else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			snprintf(buf, len, "%" PRId64, o->via.i64);
		else if (o->type == MSGPACK_OBJECT_FLOAT32 ||
			 o->type == MSGPACK_OBJECT_FLOAT64)
			prom_double(buf, len, o->via.f64);
		else
			return false;
		return true;
	case PROM_USEC:
		if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			prom_usec(buf, len, false, o->via.u64);
		else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			prom_usec(buf, len, true, 0 - (uint64_t)o->via.i64);
		else if (o->type == MSGPACK_OBJECT_FLOAT32 ||
			 o->type == MSGPACK_OBJECT_FLOAT64)
			prom_double(buf, len, o->via.f64 / 1e6);
		else
			return false;
		return true;
	case PROM_TIME:
		if (!convc_object_timestamp(o, &t))
			return false;
		prom_usec(buf, len, t < 0,
			  t < 0 ? 0 - (uint64_t)t : (uint64_t)t);
		return true;
	case PROM_INFO:
		if (o->type != MSGPACK_OBJECT_STR)
			return false;
		snprintf(buf, len, "1");
		return true;
	}
	return false;
}

/* The known metric of the current path (and its labels), or NULL. */
static const struct prom_metric *prom_known(const struct prom_ctx *x,
					    struct buf *labels)
{
	static const struct {
		const char *key, *quantile;
	} pct[] = { { "p50", "0.5" }, { "p95", "0.95" }, { "p99", "0.99" } };

	if (x->depth > PROM_KNOWN_DEPTH)
		return NULL;
	if (prom_key_is(x, 0, "methods") && x->depth == 3 &&
	    prom_key_is(x, 2, "requests")) {
		prom_key_label(labels, x, "method", 1);
		return &prom_families[PF_REQUESTS];
	}
	if (prom_key_is(x, 0, "methods") && x->depth == 4 &&
	    prom_key_is(x, 2, "errors")) {
		prom_key_label(labels, x, "method", 1);
		prom_key_label(labels, x, "code", 3);
		return &prom_families[PF_ERRORS];
	}
	if (prom_key_is(x, 0, "methods") && x->depth == 4 &&
	    prom_key_is(x, 2, "latency_us")) {
		prom_key_label(labels, x, "method", 1);
		if (prom_key_is(x, 3, "max"))
			return &prom_families[PF_DURATION_MAX];
		for (size_t i = 0; i < sizeof(pct) / sizeof(pct[0]); i++) {
			if (prom_key_is(x, 3, pct[i].key)) {
				prom_label(labels, "quantile", pct[i].quantile,
					   strlen(pct[i].quantile));
				return &prom_families[PF_DURATION];
			}
		}
		return NULL;
	}
	if (prom_key_is(x, 0, "protocol_errors") && x->depth == 2) {
		prom_key_label(labels, x, "code", 1);
		return &prom_families[PF_PROTOCOL_ERRORS];
	}
	for (size_t i = 0; i < sizeof(prom_table) / sizeof(prom_table[0]); i++)
		if (prom_path_is(x, prom_table[i].path))
			return &prom_table[i];
	return NULL;
}

/* Collects the sample of one leaf, if it has one. */
static void prom_leaf(struct prom_ctx *x, const msgpack_object *o)
{
	struct prom_sample s = { .family = SIZE_MAX };
	struct buf labels = { 0 }, name = { 0 };
	enum prom_conv conv = PROM_NUMBER;
	int64_t t;

	s.m = prom_known(x, &labels);
	if (!s.m || !prom_value(s.value, sizeof(s.value), o, s.m->conv)) {
		s.m = NULL;
		free(labels.p);
		labels = (struct buf){ 0 };
	}
	if (!s.m) {
		conv = o->type == MSGPACK_OBJECT_STR ? PROM_INFO
		     : convc_object_timestamp(o, &t) ? PROM_TIME : PROM_NUMBER;
		if (!prom_value(s.value, sizeof(s.value), o, conv))
			return;
		prom_name(&name, x->path.p ? x->path.p : "");
		if (conv == PROM_INFO)
			buf_adds(&name, "_info");
		s.name = name.p;
		s.path = strdup(x->path.p ? x->path.p : "");
	}
	if ((s.m ? s.m->conv : conv) == PROM_INFO)
		prom_label(&labels, "value", o->via.str.ptr, o->via.str.size);
	s.labels = labels.p;
	if (x->n == x->cap && !labels.nomem && !name.nomem) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		struct prom_sample *p = NULL;

		if (cap <= SIZE_MAX / sizeof(*p))
			p = realloc(x->s, cap * sizeof(*p));
		if (p) {
			x->s = p;
			x->cap = cap;
		}
	}
	if (labels.nomem || name.nomem || (!s.m && !s.path) || x->n == x->cap) {
		free(s.name);
		free(s.path);
		free(s.labels);
		x->nomem = true;
		return;
	}
	x->s[x->n++] = s;
}

/* Walks maps and arrays (array elements keyed by their index). */
static void prom_walk(struct prom_ctx *x, const msgpack_object *o)
{
	size_t mark = x->path.len;
	bool map = o->type == MSGPACK_OBJECT_MAP;
	uint32_t n;

	if (!map && o->type != MSGPACK_OBJECT_ARRAY) {
		prom_leaf(x, o);
		return;
	}
	n = map ? o->via.map.size : o->via.array.size;
	for (uint32_t i = 0; i < n; i++) {
		int d = x->depth;

		if (d > 0)
			buf_add(&x->path, ".", 1);
		if (d < PROM_KNOWN_DEPTH)
			x->key_off[d] = x->path.len;
		if (map) {
			key_text(&x->path, &o->via.map.ptr[i].key);
		} else {
			char tmp[16];

			snprintf(tmp, sizeof(tmp), "%" PRIu32, i);
			buf_adds(&x->path, tmp);
		}
		if (x->path.nomem) {
			x->nomem = true;
			return;
		}
		if (d < PROM_KNOWN_DEPTH)
			x->key_len[d] = x->path.len - x->key_off[d];
		x->depth++;
		prom_walk(x, map ? &o->via.map.ptr[i].val
				 : &o->via.array.ptr[i]);
		x->depth--;
		if (x->nomem)
			return;
		x->path.len = mark;
		x->path.p[mark] = '\0';
	}
}

static const char *prom_sample_name(const struct prom_sample *s)
{
	return s->m ? s->m->name : s->name;
}

/*
 * Puts sample i into its family, a new one (fam[nfam] = i) if its name is
 * new.  Dropped: an unknown leaf whose name is taken, a known one whose
 * name belongs to another metric, a repeated label set.
 */
static void prom_assign(struct prom_sample *s, size_t i, size_t *fam,
			size_t *nfam)
{
	const char *name = prom_sample_name(&s[i]);
	size_t f;

	for (f = 0; f < *nfam; f++)
		if (strcmp(prom_sample_name(&s[fam[f]]), name) == 0)
			break;
	if (f == *nfam) {
		fam[(*nfam)++] = i;
		s[i].family = f;
		return;
	}
	if (!s[i].m || s[fam[f]].m != s[i].m)
		return;
	for (size_t j = fam[f]; j < i; j++)
		if (s[j].family == f &&
		    strcmp(s[j].labels ? s[j].labels : "",
			   s[i].labels ? s[i].labels : "") == 0)
			return;
	s[i].family = f;
}

static void prom_print_family(FILE *f, const struct prom_sample *s, size_t n,
			      size_t first)
{
	const struct prom_sample *h = &s[first];
	const char *name = prom_sample_name(h);

	fprintf(f, "# HELP %s ", name);
	if (h->m) {
		prom_help(f, h->m->help);
	} else {
		fputs("The stats field ", f);
		prom_help(f, h->path);
		fputs(", not known to this version of convctl.", f);
	}
	fprintf(f, "\n# TYPE %s %s\n", name,
		h->m && h->m->counter ? "counter" : "gauge");
	for (size_t j = first; j < n; j++) {
		if (s[j].family != h->family)
			continue;
		fputs(name, f);
		if (s[j].labels)
			fprintf(f, "{%s}", s[j].labels);
		fprintf(f, " %s\n", s[j].value);
	}
}

static int print_prometheus(FILE *f, const msgpack_object *map)
{
	struct prom_ctx x = { 0 };
	size_t *fam = NULL, nfam = 0;

	prom_walk(&x, map);
	free(x.path.p);
	if (!x.nomem && x.n && !(fam = calloc(x.n, sizeof(*fam))))
		x.nomem = true;
	if (!x.nomem) {
		/* the known metrics first: their names are reserved */
		for (size_t i = 0; i < x.n; i++)
			if (x.s[i].m)
				prom_assign(x.s, i, fam, &nfam);
		for (size_t i = 0; i < x.n; i++)
			if (!x.s[i].m)
				prom_assign(x.s, i, fam, &nfam);
		/* a family's first sample is its earliest: the families come
		 * out in the order of the map */
		for (size_t i = 0; i < x.n; i++)
			if (x.s[i].family != SIZE_MAX &&
			    fam[x.s[i].family] == i)
				prom_print_family(f, x.s, x.n, i);
	}
	for (size_t i = 0; i < x.n; i++) {
		free(x.s[i].name);
		free(x.s[i].path);
		free(x.s[i].labels);
	}
	free(x.s);
	free(fam);
	if (x.nomem) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Talking to convd */

static int report(int st, const struct convc_error *e)
{
	fprintf(stderr, "%s: ", progname);
	put_cstr(stderr, e->code);
	fputs(": ", stderr);
	put_cstr(stderr, e->message);
	fputc('\n', stderr);
	switch (st) {
	case CONVC_ERR_DAEMON:
		/* convd refused the whole connection (max_clients): it
		 * answers the first request with `overloaded` */
		if (strcmp(e->code, "overloaded") == 0)
			return EXIT_UNREACHABLE;
		return EXIT_DAEMON;
	case CONVC_ERR_CONN:
		return EXIT_UNREACHABLE;
	default:
		return EXIT_FAILURE;
	}
}

/* The socket: -s, else $CONVD_SOCKET, else -c FILE's, else the default.
 * *owned is set when the path was allocated. */
static int socket_path(const struct options *o, const char **path,
		       char **owned)
{
	const char *env = getenv("CONVD_SOCKET");
	struct convd_config cfg;
	char err[512];

	*owned = NULL;
	if (o->socket) {
		*path = o->socket;
		return EXIT_SUCCESS;
	}
	if (env && *env) {
		*path = env;
		return EXIT_SUCCESS;
	}
	*path = CONVD_DEFAULT_SOCKET;
	if (!o->config)
		return EXIT_SUCCESS;
	if (config_init(&cfg) < 0) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_FAILURE;
	}
	if (config_load_file(&cfg, o->config, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", progname, err);
		config_free(&cfg);
		return EXIT_USAGE;
	}
	if (cfg.server.socket && *cfg.server.socket) {
		*owned = strdup(cfg.server.socket);
		if (!*owned) {
			config_free(&cfg);
			fprintf(stderr, "%s: out of memory\n", progname);
			return EXIT_FAILURE;
		}
		*path = *owned;
	}
	config_free(&cfg);
	return EXIT_SUCCESS;
}

static int open_conn(const struct options *o, int default_timeout_s,
		     struct convc **out)
{
	struct convc_error e;
	const char *path;
	char *owned;
	int64_t t = o->timeout_set ? o->timeout_s : default_timeout_s;
	int rc = socket_path(o, &path, &owned);

	if (rc != EXIT_SUCCESS)
		return rc;
	*out = convc_connect(path, (int)(t * 1000), &e);
	free(owned);
	if (!*out)
		return report(strcmp(e.code, "no_memory") == 0 ? CONVC_ERR_LOCAL
							       : CONVC_ERR_CONN,
			      &e);
	return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* Commands.  argv[0] is the command; argc counts the operands too. */

struct cmd_ctx {
	const struct options *o;
	struct convc *c;
	FILE *out;
};

static int cmd_ping(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	struct timespec a, b;
	int64_t rtt;
	int st;

	clock_gettime(CLOCK_MONOTONIC, &a);
	st = convc_ping(x->c, &e);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (st != CONVC_OK)
		return report(st, &e);
	rtt = (int64_t)(b.tv_sec - a.tv_sec) * 1000000 +
	      (b.tv_nsec - a.tv_nsec) / 1000;
	if (x->o->json)
		fprintf(x->out, "{\"result\":\"pong\",\"rtt_usec\":%" PRId64 "}\n",
			rtt);
	else
		fprintf(x->out, "pong (%" PRId64 ".%03" PRId64 " ms)\n",
			rtt / 1000, rtt % 1000);
	return EXIT_SUCCESS;
}

/* Reads all of stdin (at most MAX_STDIN_TEXT bytes) and removes one
 * trailing newline. */
static int read_stdin(char **text, size_t *len)
{
	/* Up to two bytes more: a newline to strip, then "too large". */
	const size_t limit = MAX_STDIN_TEXT + 2;
	size_t cap = 65536, n = 0;
	char *p = malloc(cap);

	if (!p) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return EXIT_FAILURE;
	}
	for (;;) {
		size_t got;

		if (n == cap) {
			char *q;

			if (cap >= limit)
				break;
			cap = cap > limit / 2 ? limit : cap * 2;
			q = realloc(p, cap);
			if (!q) {
				free(p);
				fprintf(stderr, "%s: out of memory\n",
					progname);
				return EXIT_FAILURE;
			}
			p = q;
		}
		got = fread(p + n, 1, cap - n, stdin);
		n += got;
		if (got == 0) {
			if (ferror(stdin)) {
				fprintf(stderr,
					"%s: reading standard input: %s\n",
					progname, strerror(errno));
				free(p);
				return EXIT_FAILURE;
			}
			break;
		}
	}
	if (n > 0 && p[n - 1] == '\n')
		n--;
	if (n > MAX_STDIN_TEXT) {
		free(p);
		fprintf(stderr, "%s: standard input is larger than %zu MiB\n",
			progname, MAX_STDIN_TEXT >> 20);
		return EXIT_USAGE;
	}
	*text = p;
	*len = n;
	return EXIT_SUCCESS;
}

static int cmd_add(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	char *text = NULL;
	const char *content = argv[4];
	size_t len = strlen(argv[4]);
	int64_t id, at;
	char tbuf[64];
	int st;

	if (strcmp(argv[4], "-") == 0) {
		int rc = read_stdin(&text, &len);

		if (rc != EXIT_SUCCESS)
			return rc;
		content = text;
	}
	st = convc_add_message(x->c, argv[1], argv[2], argv[3], content, len,
			       x->o->platform, &id, &at, &e);
	free(text);
	if (st != CONVC_OK)
		return report(st, &e);
	if (x->o->json) {
		fprintf(x->out, "{\"id\":%" PRId64 ",\"created_at\":", id);
		json_time(x->out, at);
		fputs("}\n", x->out);
	} else {
		fmt_time(tbuf, sizeof(tbuf), at, 3);
		fprintf(x->out, "added message %" PRId64 " at %s\n", id, tbuf);
	}
	return EXIT_SUCCESS;
}

static int cmd_history(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	struct convc_message *m;
	size_t n, rolew = 4;
	int st = convc_get_recent_conversations(
		x->c, argv[1], argv[2], x->o->limit_set ? (int)x->o->limit : 0,
		x->o->platform, &m, &n, &e);

	if (st != CONVC_OK)
		return report(st, &e);
	if (x->o->json) {
		fputc('[', x->out);
		for (size_t i = 0; i < n; i++) {
			fprintf(x->out, "%s{\"id\":%" PRId64 ",\"role\":",
				i ? "," : "", m[i].id);
			json_cstr(x->out, m[i].role);
			fputs(",\"content\":", x->out);
			json_str(x->out, m[i].content, m[i].content_len);
			fputs(",\"created_at\":", x->out);
			json_time(x->out, m[i].created_at_usec);
			fputs(",\"provider\":", x->out);
			json_cstr(x->out, m[i].provider);
			fputc('}', x->out);
		}
		fputs("]\n", x->out);
		convc_messages_free(m, n);
		return EXIT_SUCCESS;
	}
	if (n == 0) {
		fputs("(no messages)\n", x->out);
		return EXIT_SUCCESS;
	}
	for (size_t i = 0; i < n; i++)
		if (text_width(m[i].role) > rolew)
			rolew = text_width(m[i].role);
	fprintf(x->out, "%-24s  %-*s  %s\n", "TIME", (int)rolew, "ROLE",
		"CONTENT");
	for (size_t i = 0; i < n; i++) {
		char tbuf[64];

		fmt_time(tbuf, sizeof(tbuf), m[i].created_at_usec, 3);
		fprintf(x->out, "%-24s  ", tbuf);
		put_cstr(x->out, m[i].role);
		fprintf(x->out, "%*s  ", (int)(rolew - text_width(m[i].role)),
			"");
		put_text(x->out, m[i].content, m[i].content_len,
			 24 + 2 + rolew + 2);
		fputc('\n', x->out);
	}
	convc_messages_free(m, n);
	return EXIT_SUCCESS;
}

static void print_deleted(struct cmd_ctx *x, int64_t deleted,
			  const char *what)
{
	if (x->o->json)
		fprintf(x->out, "{\"deleted\":%" PRId64 "}\n", deleted);
	else
		fprintf(x->out, "deleted %" PRId64 " %s%s\n", deleted, what,
			deleted == 1 ? "" : "s");
}

static int cmd_clear(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	int64_t deleted;
	int st = convc_clear_user_history(x->c, argv[1], argv[2],
					  x->o->platform, &deleted, &e);

	if (st != CONVC_OK)
		return report(st, &e);
	print_deleted(x, deleted, "message");
	return EXIT_SUCCESS;
}

static int cmd_count(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	int64_t count;
	int st = convc_get_conversation_count(x->c, argv[1],
					      argc > 2 ? argv[2] : NULL,
					      x->o->platform, &count, &e);

	if (st != CONVC_OK)
		return report(st, &e);
	if (x->o->json)
		fprintf(x->out, "{\"count\":%" PRId64 "}\n", count);
	else
		fprintf(x->out, "%" PRId64 "\n", count);
	return EXIT_SUCCESS;
}

static int cmd_stats_user(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	struct convc_user_stats s;
	size_t namew = 8;
	int st = convc_get_user_statistics(x->c, argv[1], x->o->platform, &s,
					   &e);

	if (st != CONVC_OK)
		return report(st, &e);
	if (x->o->json) {
		fprintf(x->out, "{\"total_messages\":%" PRId64
			",\"providers\":{", s.total_messages);
		for (size_t i = 0; i < s.nproviders; i++) {
			const struct convc_provider_stats *p = &s.providers[i];

			if (i)
				fputc(',', x->out);
			json_cstr(x->out, p->provider);
			fprintf(x->out, ":{\"message_count\":%" PRId64
				",\"last_message_at\":", p->message_count);
			if (p->has_last_message)
				json_time(x->out, p->last_message_at_usec);
			else
				fputs("null", x->out);
			fputc('}', x->out);
		}
		fputs("}}\n", x->out);
		convc_user_stats_free(&s);
		return EXIT_SUCCESS;
	}
	fprintf(x->out, "total messages: %" PRId64 "\n", s.total_messages);
	for (size_t i = 0; i < s.nproviders; i++)
		if (text_width(s.providers[i].provider) > namew)
			namew = text_width(s.providers[i].provider);
	if (s.nproviders > 0)
		fprintf(x->out, "%-*s  %8s  %s\n", (int)namew, "PROVIDER",
			"MESSAGES", "LAST MESSAGE");
	for (size_t i = 0; i < s.nproviders; i++) {
		const struct convc_provider_stats *p = &s.providers[i];
		char tbuf[64] = "-";

		if (p->has_last_message)
			fmt_time(tbuf, sizeof(tbuf), p->last_message_at_usec, 3);
		put_cstr(x->out, p->provider);
		fprintf(x->out, "%*s  %8" PRId64 "  %s\n",
			(int)(namew - text_width(p->provider)), "",
			p->message_count, tbuf);
	}
	convc_user_stats_free(&s);
	return EXIT_SUCCESS;
}

static int cmd_thread(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	const char *sub = argv[1];
	int st;

	if (strcmp(sub, "get") == 0) {
		char *tid;

		st = convc_get_thread(x->c, argv[2], x->o->platform, &tid, &e);
		if (st != CONVC_OK)
			return report(st, &e);
		if (x->o->json) {
			fputs("{\"thread_id\":", x->out);
			json_cstr(x->out, tid);
			fputs("}\n", x->out);
		} else if (tid) {
			put_cstr(x->out, tid);
			fputc('\n', x->out);
		} else {
			fputs("(no thread)\n", x->out);
		}
		free(tid);
	} else if (strcmp(sub, "set") == 0) {
		st = convc_save_thread(x->c, argv[2], argv[3], x->o->platform,
				       &e);
		if (st != CONVC_OK)
			return report(st, &e);
		fputs(x->o->json ? "{\"saved\":true}\n" : "thread saved\n",
		      x->out);
	} else {
		int64_t deleted;

		st = convc_delete_thread(x->c, argv[2], x->o->platform,
					 &deleted, &e);
		if (st != CONVC_OK)
			return report(st, &e);
		print_deleted(x, deleted, "thread");
	}
	return EXIT_SUCCESS;
}

/* cleanup --dry-run: cleanup_old_conversations with dry_run = true. */
static int cleanup_dry_run(struct cmd_ctx *x)
{
	msgpack_sbuffer buf;
	msgpack_packer pk;
	struct convc_error e;
	struct convc_reply r;
	const msgpack_object *would, *total;
	int st;

	msgpack_sbuffer_init(&buf);
	msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
	if (msgpack_pack_map(&pk, x->o->days_set ? 2 : 1) < 0 ||
	    msgpack_pack_str_with_body(&pk, "dry_run", 7) < 0 ||
	    msgpack_pack_true(&pk) < 0 ||
	    (x->o->days_set &&
	     (msgpack_pack_str_with_body(&pk, "days_to_keep", 12) < 0 ||
	      msgpack_pack_int64(&pk, x->o->days) < 0))) {
		msgpack_sbuffer_destroy(&buf);
		fprintf(stderr, "convctl: out of memory\n");
		return EXIT_FAILURE;
	}
	st = convc_call(x->c, "cleanup_old_conversations", buf.data, buf.size,
			&r, &e);
	msgpack_sbuffer_destroy(&buf);
	if (st != CONVC_OK)
		return report(st, &e);
	would = convc_map_get(&r.result, "would_delete");
	total = convc_map_get(&r.result, "messages");
	if (!would || !total ||
	    would->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    total->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
		convc_reply_free(&r);
		fprintf(stderr, "convctl: convd does not support --dry-run "
				"(no would_delete in its answer); nothing was "
				"deleted\n");
		return EXIT_FAILURE;
	}
	if (x->o->json)
		fprintf(x->out,
			"{\"deleted\":0,\"would_delete\":%" PRIu64
			",\"messages\":%" PRIu64 ",\"dry_run\":true}\n",
			would->via.u64, total->via.u64);
	else
		fprintf(x->out,
			"would delete %" PRIu64 " of %" PRIu64 " message%s "
			"(dry run: nothing was deleted)\n",
			would->via.u64, total->via.u64,
			total->via.u64 == 1 ? "" : "s");
	convc_reply_free(&r);
	return EXIT_SUCCESS;
}

static int cmd_cleanup(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	int64_t deleted;
	int st;

	if (x->o->dry_run)
		return cleanup_dry_run(x);
	st = convc_cleanup_old_conversations(
		x->c, x->o->days_set ? (int)x->o->days : -1, &deleted, &e);

	if (st != CONVC_OK)
		return report(st, &e);
	print_deleted(x, deleted, "message");
	return EXIT_SUCCESS;
}

static int cmd_stats(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	struct convc_reply r;
	int rc;
	int st = convc_stats(x->c, &r, &e);

	if (st != CONVC_OK)
		return report(st, &e);
	if (x->o->prometheus) {
		rc = print_prometheus(x->out, &r.result);
	} else if (x->o->json) {
		json_value(x->out, &r.result);
		fputc('\n', x->out);
		rc = EXIT_SUCCESS;
	} else {
		rc = print_flat(x->out, &r.result);
	}
	convc_reply_free(&r);
	return rc;
}

static int cmd_health(struct cmd_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	struct convc_reply r;
	bool ok;
	int rc;
	int st = convc_health(x->c, &ok, &r, &e);

	if (st != CONVC_OK)
		return report(st, &e);
	if (x->o->json) {
		json_value(x->out, &r.result);
		fputc('\n', x->out);
		rc = EXIT_SUCCESS;
	} else {
		rc = print_flat(x->out, &r.result);
	}
	convc_reply_free(&r);
	if (rc == EXIT_SUCCESS && !ok)
		rc = EXIT_DAEMON;
	return rc;
}


/* ------------------------------------------------------------------ */
/* export and import: JSON Lines */

/* One export_history page, as convd sent it (rows with their keys). */
static int export_page(struct cmd_ctx *x, const char *user, int64_t after,
		       struct convc_reply *reply, struct convc_error *e)
{
	msgpack_packer *pk;
	uint32_t msgid;
	int n = 3 + (x->o->provider != NULL) + (x->o->platform != NULL);

	pk = convc_request_begin(x->c, "export_history", &msgid, e);
	if (!pk)
		return CONVC_ERR_LOCAL;
	if (msgpack_pack_array(pk, 1) < 0 || msgpack_pack_map(pk, (size_t)n) < 0 ||
	    msgpack_pack_str_with_body(pk, "user_id", 7) < 0 ||
	    msgpack_pack_str_with_body(pk, user, strlen(user)) < 0 ||
	    msgpack_pack_str_with_body(pk, "after_id", 8) < 0 ||
	    msgpack_pack_int64(pk, after) < 0 ||
	    msgpack_pack_str_with_body(pk, "limit", 5) < 0 ||
	    msgpack_pack_int(pk, EXPORT_PAGE) < 0 ||
	    (x->o->provider &&
	     (msgpack_pack_str_with_body(pk, "provider", 8) < 0 ||
	      msgpack_pack_str_with_body(pk, x->o->provider,
					 strlen(x->o->provider)) < 0)) ||
	    (x->o->platform &&
	     (msgpack_pack_str_with_body(pk, "platform", 8) < 0 ||
	      msgpack_pack_str_with_body(pk, x->o->platform,
					 strlen(x->o->platform)) < 0))) {
		convc_request_abort(x->c);
		snprintf(e->code, sizeof(e->code), "no_memory");
		snprintf(e->message, sizeof(e->message), "out of memory");
		return CONVC_ERR_LOCAL;
	}
	n = convc_request_end(x->c, e);
	if (n != CONVC_OK)
		return n;
	return convc_wait(x->c, msgid, reply, e);
}

/*
 * One message per line, oldest first (id order), all of the user's
 * history on the platform (with --provider, that provider's only),
 * fetched a page at a time: up to EXPORT_PAGE messages, fewer when they
 * are large (convd keeps a page within max_output_bytes), until a page
 * is empty.  Always JSON Lines: --json changes nothing.
 */
static int cmd_export(struct cmd_ctx *x, int argc CONVD_UNUSED,
		      char **argv CONVD_UNUSED)
{
	const char *platform = x->o->platform ? x->o->platform : "line";
	struct convc_error e;
	int64_t after = 0;

	for (;;) {
		struct convc_message *m;
		struct convc_reply reply;
		size_t n;
		int st = export_page(x, argv[1], after, &reply, &e);

		if (st == CONVC_OK)
			st = convc_result_messages(&reply.result, &m, &n, &e);
		if (st != CONVC_OK) {
			convc_reply_free(&reply);
			return report(st, &e);
		}
		for (size_t i = 0; i < n; i++) {
			const msgpack_object *key = convc_map_get(
				&reply.result.via.array.ptr[i],
				"idempotency_key");

			fprintf(x->out, "{\"id\":%" PRId64 ",\"user_id\":",
				m[i].id);
			json_cstr(x->out, argv[1]);
			fputs(",\"platform\":", x->out);
			json_cstr(x->out, platform);
			fputs(",\"provider\":", x->out);
			json_cstr(x->out, m[i].provider);
			fputs(",\"role\":", x->out);
			json_cstr(x->out, m[i].role);
			fputs(",\"content\":", x->out);
			json_str(x->out, m[i].content, m[i].content_len);
			fputs(",\"created_at\":", x->out);
			json_time(x->out, m[i].created_at_usec);
			if (key && key->type == MSGPACK_OBJECT_STR) {
				fputs(",\"idempotency_key\":", x->out);
				json_str(x->out, key->via.str.ptr,
					 key->via.str.size);
			}
			fputs("}\n", x->out);
		}
		if (n > 0)
			after = m[n - 1].id;
		convc_messages_free(m, n);
		convc_reply_free(&reply);
		if (ferror(x->out))
			return EXIT_FAILURE;	/* finish_output says why */
		if (n == 0)
			return EXIT_SUCCESS;
	}
}

/* The fields of one import line; strings are malloc'd, NUL-terminated. */
struct import_row {
	char *user_id, *platform, *provider, *role, *content, *created_at;
	char *idempotency_key;
	size_t content_len;
};

static void import_row_free(struct import_row *r)
{
	free(r->user_id);
	free(r->idempotency_key);
	free(r->platform);
	free(r->provider);
	free(r->role);
	free(r->content);
	free(r->created_at);
	memset(r, 0, sizeof(*r));
}

struct jparser {
	const char *p, *end;
	char *err;
	size_t errlen;
};

static bool jfail(struct jparser *j, const char *fmt, ...) CONVD_PRINTF(2, 3);

static bool jfail(struct jparser *j, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(j->err, j->errlen, fmt, ap);
	va_end(ap);
	return false;
}

static void jws(struct jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
				 *j->p == '\r' || *j->p == '\n'))
		j->p++;
}

static bool jhex4(struct jparser *j, uint32_t *v)
{
	*v = 0;
	if (j->end - j->p < 4)
		return jfail(j, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		int h = hex_digit(j->p[i]);

		if (h < 0)
			return jfail(j, "bad \\u escape");
		*v = *v << 4 | (uint32_t)h;
	}
	j->p += 4;
	return true;
}

static void put_utf8(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12);
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | cp >> 18);
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	buf_add(b, u, n);
}

/*
 * A JSON string at j->p (the opening quote) into out (when not NULL):
 * escapes decoded, \u surrogate pairs joined; raw bytes are copied as
 * they are (convd checks UTF-8).  Control characters must be escaped.
 */
static bool jstring(struct jparser *j, struct buf *out)
{
	if (j->p >= j->end || *j->p != '"')
		return jfail(j, "expected a string");
	j->p++;
	for (;;) {
		const char *q = j->p;
		uint32_t cp, lo;
		char c;

		while (q < j->end && *q != '"' && *q != '\\' &&
		       (unsigned char)*q >= 0x20)
			q++;
		if (out && q > j->p)
			buf_add(out, j->p, (size_t)(q - j->p));
		j->p = q;
		if (j->p >= j->end)
			return jfail(j, "unterminated string");
		c = *j->p++;
		if (c == '"')
			return out ? !out->nomem || jfail(j, "out of memory")
				   : true;
		if (c != '\\')
			return jfail(j, "control character in a string");
		if (j->p >= j->end)
			return jfail(j, "unterminated string");
		c = *j->p++;
		switch (c) {
		case '"': case '\\': case '/':
			cp = (unsigned char)c;
			break;
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u':
			if (!jhex4(j, &cp))
				return false;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return jfail(j, "lone low surrogate \\u%04X",
					     (unsigned)cp);
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (j->end - j->p < 2 || j->p[0] != '\\' ||
				    j->p[1] != 'u')
					return jfail(j, "lone high surrogate "
						     "\\u%04X", (unsigned)cp);
				j->p += 2;
				if (!jhex4(j, &lo))
					return false;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return jfail(j, "bad surrogate pair");
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				     (lo - 0xDC00);
			}
			break;
		default:
			return jfail(j, "bad escape \\%c", c);
		}
		if (out)
			put_utf8(out, cp);
	}
}

/* Skips a JSON number (grammar checked). */
static bool jnumber(struct jparser *j)
{
	const char *q = j->p;

	if (q < j->end && *q == '-')
		q++;
	if (q >= j->end || *q < '0' || *q > '9')
		return jfail(j, "bad number");
	if (*q == '0')
		q++;
	else
		while (q < j->end && *q >= '0' && *q <= '9')
			q++;
	if (q < j->end && *q == '.') {
		q++;
		if (q >= j->end || *q < '0' || *q > '9')
			return jfail(j, "bad number");
		while (q < j->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < j->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < j->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= j->end || *q < '0' || *q > '9')
			return jfail(j, "bad number");
		while (q < j->end && *q >= '0' && *q <= '9')
			q++;
	}
	j->p = q;
	return true;
}

static bool jliteral(struct jparser *j, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return jfail(j, "unexpected character '%c'", *j->p);
	j->p += n;
	return true;
}

/* Skips any JSON value (the fields an import does not use). */
static bool jskip(struct jparser *j, int depth)
{
	jws(j);
	if (j->p >= j->end)
		return jfail(j, "expected a value");
	if (depth > 32)
		return jfail(j, "nested too deep");
	switch (*j->p) {
	case '"':
		return jstring(j, NULL);
	case 't':
		return jliteral(j, "true");
	case 'f':
		return jliteral(j, "false");
	case 'n':
		return jliteral(j, "null");
	case '[':
	case '{': {
		char close = *j->p == '[' ? ']' : '}';
		bool obj = close == '}';

		j->p++;
		jws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (;;) {
			if (obj) {
				jws(j);
				if (!jstring(j, NULL))
					return false;
				jws(j);
				if (j->p >= j->end || *j->p != ':')
					return jfail(j, "expected ':'");
				j->p++;
			}
			if (!jskip(j, depth + 1))
				return false;
			jws(j);
			if (j->p < j->end && *j->p == ',') {
				j->p++;
				continue;
			}
			if (j->p < j->end && *j->p == close) {
				j->p++;
				return true;
			}
			return jfail(j, "expected ',' or '%c'", close);
		}
	}
	default:
		return jnumber(j);
	}
}

/*
 * One line: a JSON object with the strings user_id, provider, role,
 * content, created_at and optionally platform and idempotency_key; other
 * members (id, and any a later export adds) are skipped.
 */
static bool parse_import_line(const char *s, size_t len,
			      struct import_row *row, char *err, size_t errlen)
{
	static const char *const names[] = { "user_id", "platform",
					     "provider", "role", "content",
					     "created_at", "idempotency_key" };
	struct jparser j = { s, s + len, err, errlen };
	char **slots[] = { &row->user_id, &row->platform, &row->provider,
			   &row->role, &row->content, &row->created_at,
			   &row->idempotency_key };
	struct buf key = { 0 };
	bool ok = false;

	memset(row, 0, sizeof(*row));
	jws(&j);
	if (j.p >= j.end || *j.p != '{') {
		jfail(&j, "not a JSON object");
		goto out;
	}
	j.p++;
	jws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
	} else {
		for (;;) {
			size_t k;

			jws(&j);
			key.len = 0;
			if (!jstring(&j, &key))
				goto out;
			jws(&j);
			if (j.p >= j.end || *j.p != ':') {
				jfail(&j, "expected ':'");
				goto out;
			}
			j.p++;
			jws(&j);
			for (k = 0; k < ARRAY_LEN(names); k++)
				if (key.p && strlen(names[k]) == key.len &&
				    memcmp(names[k], key.p, key.len) == 0)
					break;
			if (k < ARRAY_LEN(names)) {
				struct buf v = { 0 };

				if (*slots[k]) {
					jfail(&j, "'%s' given twice", names[k]);
					goto out;
				}
				if (j.p < j.end && *j.p != '"') {
					jfail(&j, "'%s' must be a string",
					      names[k]);
					goto out;
				}
				if (!jstring(&j, &v)) {
					free(v.p);
					goto out;
				}
				buf_add(&v, "", 0);	/* "" -> allocated */
				if (v.nomem) {
					free(v.p);
					jfail(&j, "out of memory");
					goto out;
				}
				*slots[k] = v.p;
				if (k == 4)
					row->content_len = v.len;
			} else if (!jskip(&j, 0)) {
				goto out;
			}
			jws(&j);
			if (j.p < j.end && *j.p == ',') {
				j.p++;
				continue;
			}
			if (j.p < j.end && *j.p == '}') {
				j.p++;
				break;
			}
			jfail(&j, "expected ',' or '}'");
			goto out;
		}
	}
	jws(&j);
	if (j.p != j.end) {
		jfail(&j, "text after the object");
		goto out;
	}
	for (size_t k = 0; k < ARRAY_LEN(names); k++) {
		if (k != 1 && k != 6 && !*slots[k]) {
			jfail(&j, "'%s' is missing", names[k]);
			goto out;
		}
	}
	ok = true;
out:
	free(key.p);
	if (!ok)
		import_row_free(row);
	return ok;
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	/* H. Hinnant's algorithm: days since 1970-01-01, proleptic Gregorian */
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char **p, const char *end, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (*p >= end || **p < '0' || **p > '9')
			return false;
		*v = *v * 10 + (**p - '0');
		(*p)++;
	}
	return true;
}

/*
 * ISO 8601 / RFC 3339 date and time -> microseconds since the epoch:
 * YYYY-MM-DD, 'T' (or 't' or a space), hh:mm:ss, an optional fraction
 * (digits beyond microseconds are dropped), and Z, +hh:mm, -hh:mm, +hhmm
 * or +hh; without a zone the time is UTC.
 */
static bool parse_iso_time(const char *s, int64_t *usec)
{
	const char *p = s, *end = s + strlen(s);
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, scale = 100000, days;
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
				     30, 31 };

	if (!digits(&p, end, 4, &y) || p >= end || *p++ != '-' ||
	    !digits(&p, end, 2, &mo) || p >= end || *p++ != '-' ||
	    !digits(&p, end, 2, &d) || p >= end ||
	    (*p != 'T' && *p != 't' && *p != ' '))
		return false;
	p++;
	if (!digits(&p, end, 2, &h) || p >= end || *p++ != ':' ||
	    !digits(&p, end, 2, &mi) || p >= end || *p++ != ':' ||
	    !digits(&p, end, 2, &sec))
		return false;
	if (p < end && (*p == '.' || *p == ',')) {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return false;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (p < end && (*p == 'Z' || *p == 'z')) {
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		sign = *p++ == '-' ? -1 : 1;
		if (!digits(&p, end, 2, &oh))
			return false;
		if (p < end && *p == ':')
			p++;
		if (p < end && !digits(&p, end, 2, &om))
			return false;
		if (oh > 23 || om > 59)
			return false;
	}
	if (p != end || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
	    sec > 59)
		return false;
	if (d > mdays[mo - 1] + (mo == 2 && (y % 4 == 0 && (y % 100 != 0 ||
							       y % 400 == 0))))
		return false;
	days = days_from_civil(y, (unsigned)mo, (unsigned)d);
	*usec = ((days * 24 + h) * 60 + mi) * 60 + sec;
	*usec -= (int64_t)sign * (oh * 3600 + om * 60);
	*usec = *usec * 1000000 + frac;
	return true;
}

/* Reads one line of at most MAX_STDIN_TEXT bytes (without its newline);
 * 0 at end of input, -1 after printing an error. */
static int read_line(FILE *in, struct buf *line, bool *too_long)
{
	int c;

	line->len = 0;
	*too_long = false;
	if (line->p)
		line->p[0] = '\0';
	while ((c = getc(in)) != EOF) {
		char ch = (char)c;

		if (ch == '\n')
			return 1;
		if (line->len >= MAX_STDIN_TEXT) {
			*too_long = true;
			continue;	/* read to the end of the line */
		}
		buf_add(line, &ch, 1);
		if (line->nomem) {
			fprintf(stderr, "%s: out of memory\n", progname);
			return -1;
		}
	}
	if (ferror(in)) {
		fprintf(stderr, "%s: reading standard input: %s\n", progname,
			strerror(errno));
		return -1;
	}
	return line->len > 0 || *too_long ? 1 : 0;
}

static void print_import_count(struct cmd_ctx *x, int64_t imported,
			       int64_t skipped)
{
	if (x->o->json)
		fprintf(x->out, "{\"imported\":%" PRId64 ",\"skipped\":%" PRId64
			"}\n", imported, skipped);
	else
		fprintf(x->out, "imported %" PRId64 " message%s, skipped %"
			PRId64 " already present\n", imported,
			imported == 1 ? "" : "s", skipped);
}

/*
 * Standard input, one message per line in the format of export (blank
 * lines are skipped), stored one at a time in the order of the lines
 * with their time, role, provider, platform, content and idempotency
 * key.  A message that is already stored (with the same key for the user
 * and platform; without a key, equal in all of these and the user) is
 * skipped, so a file can be imported again.  The first bad line or error stops the
 * import; what was stored before it stays.
 */
static int cmd_import(struct cmd_ctx *x, int argc CONVD_UNUSED,
		      char **argv CONVD_UNUSED)
{
	struct buf line = { 0 };
	int64_t imported = 0, skipped = 0, lineno = 0;
	int rc = EXIT_SUCCESS;

	for (;;) {
		struct import_row row;
		struct convc_error e;
		char err[256];
		bool too_long, fresh;
		int64_t at;
		int st, r = read_line(stdin, &line, &too_long);

		if (r < 0) {
			rc = EXIT_FAILURE;
			break;
		}
		if (r == 0)
			break;
		lineno++;
		if (too_long) {
			fprintf(stderr, "%s: line %" PRId64 ": longer than %zu "
				"MiB\n", progname, lineno, MAX_STDIN_TEXT >> 20);
			rc = EXIT_USAGE;
			break;
		}
		if (line.len == 0 || strspn(line.p, " \t\r") == line.len)
			continue;
		if (!parse_import_line(line.p, line.len, &row, err,
				       sizeof(err))) {
			fprintf(stderr, "%s: line %" PRId64 ": ", progname,
				lineno);
			put_cstr(stderr, err);
			fputc('\n', stderr);
			rc = EXIT_USAGE;
			break;
		}
		if (!parse_iso_time(row.created_at, &at)) {
			fprintf(stderr, "%s: line %" PRId64 ": created_at: not "
				"an ISO 8601 time: ", progname, lineno);
			put_cstr(stderr, row.created_at);
			fputc('\n', stderr);
			import_row_free(&row);
			rc = EXIT_USAGE;
			break;
		}
		st = convc_import_message_key(x->c, row.user_id, row.provider,
					      row.role, row.content,
					      row.content_len,
					      row.platform ? row.platform
							   : x->o->platform,
					      at, row.idempotency_key, NULL,
					      &fresh, &e);
		import_row_free(&row);
		if (st != CONVC_OK) {
			fprintf(stderr, "%s: line %" PRId64 ":\n", progname,
				lineno);
			rc = report(st, &e);
			break;
		}
		if (fresh)
			imported++;
		else
			skipped++;
	}
	free(line.p);
	if (rc != EXIT_SUCCESS)
		fprintf(stderr, "%s: stopped: imported %" PRId64 ", skipped %"
			PRId64 " before the error\n", progname, imported,
			skipped);
	else
		print_import_count(x, imported, skipped);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Command table and option parsing */

enum {
	OPT_JSON = 0x100,
	OPT_PLATFORM,
	OPT_DAYS,
	OPT_PROMETHEUS,
	OPT_PROVIDER,
	OPT_DRY_RUN,
};

#define CO_LIMIT 1u
#define CO_DAYS 2u
#define CO_PROMETHEUS 4u
#define CO_PROVIDER 8u
#define CO_DRY_RUN 16u

struct command {
	const char *name;
	int min_args, max_args;		/* operands after the name */
	unsigned opts;			/* CO_* allowed */
	int default_timeout_s;		/* 0: no limit */
	const char *synopsis;
	int (*run)(struct cmd_ctx *x, int argc, char **argv);
};

static const struct command commands[] = {
	{ "ping", 0, 0, 0, DEFAULT_TIMEOUT_S, "ping", cmd_ping },
	{ "add", 4, 4, 0, DEFAULT_TIMEOUT_S,
	  "add USER PROVIDER ROLE TEXT|-", cmd_add },
	{ "history", 2, 2, CO_LIMIT, DEFAULT_TIMEOUT_S,
	  "history USER PROVIDER [-n LIMIT]", cmd_history },
	{ "clear", 2, 2, 0, DEFAULT_TIMEOUT_S, "clear USER PROVIDER",
	  cmd_clear },
	{ "count", 1, 2, 0, DEFAULT_TIMEOUT_S, "count USER [PROVIDER]",
	  cmd_count },
	{ "stats-user", 1, 1, 0, DEFAULT_TIMEOUT_S, "stats-user USER",
	  cmd_stats_user },
	{ "thread", 2, 3, 0, DEFAULT_TIMEOUT_S,
	  "thread get|set|delete USER [THREAD]", cmd_thread },
	{ "cleanup", 0, 0, CO_DAYS | CO_DRY_RUN, 0,
	  "cleanup [--days N] [--dry-run]", cmd_cleanup },
	{ "stats", 0, 0, CO_PROMETHEUS, DEFAULT_TIMEOUT_S,
	  "stats [--prometheus]", cmd_stats },
	{ "export", 1, 1, CO_PROVIDER, DEFAULT_TIMEOUT_S,
	  "export USER [--provider P]", cmd_export },
	{ "import", 0, 0, 0, DEFAULT_TIMEOUT_S, "import", cmd_import },
	{ "health", 0, 0, 0, DEFAULT_TIMEOUT_S, "health", cmd_health },
};

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "config", required_argument, NULL, 'c' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "platform", required_argument, NULL, OPT_PLATFORM },
	{ "timeout", required_argument, NULL, 't' },
	{ "limit", required_argument, NULL, 'n' },
	{ "days", required_argument, NULL, OPT_DAYS },
	{ "prometheus", no_argument, NULL, OPT_PROMETHEUS },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "provider", required_argument, NULL, OPT_PROVIDER },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

enum parse_result {
	PARSE_OK,
	PARSE_HELP,
	PARSE_VERSION,
	PARSE_ERROR,		/* message printed; exit 2 */
};

static const char *opt_name(int ch, char *buf, size_t len)
{
	for (const struct option *lo = long_opts; lo->name; lo++)
		if (lo->val == ch) {
			snprintf(buf, len, "--%s", lo->name);
			return buf;
		}
	snprintf(buf, len, "-%c", ch);
	return buf;
}

/*
 * One getopt pass over argv (argv[0] is skipped).  With `stop_at_operand`
 * it stops at the first operand (the command); otherwise options and
 * operands may be mixed and the operands end up at argv[*first..argc).
 * *seen collects the CO_* options given.
 */
static enum parse_result parse_options(int argc, char **argv,
				       bool stop_at_operand,
				       struct options *o, unsigned *seen,
				       int *first)
{
	const char *shortopts = stop_at_operand ? "+:s:c:t:n:hV" : ":s:c:t:n:hV";
	char nbuf[32];
	int ch;

	optind = 0;	/* glibc: full re-initialisation */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shortopts, long_opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (!*optarg) {
				usage_error("empty socket path");
				return PARSE_ERROR;
			}
			o->socket = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_PLATFORM:
			o->platform = optarg;
			break;
		case 't':
			if (!parse_int(optarg, 0, MAX_TIMEOUT_S, &o->timeout_s)) {
				usage_error("-t: '%s' is not a number of seconds "
					    "from 0 to %d", optarg,
					    MAX_TIMEOUT_S);
				return PARSE_ERROR;
			}
			o->timeout_set = true;
			break;
		case 'n':
			if (!parse_int(optarg, 1, 1000, &o->limit)) {
				usage_error("-n: '%s' is not a number from 1 "
					    "to 1000", optarg);
				return PARSE_ERROR;
			}
			o->limit_set = true;
			*seen |= CO_LIMIT;
			break;
		case OPT_DAYS:
			if (!parse_int(optarg, 0, 36500, &o->days)) {
				usage_error("--days: '%s' is not a number from 0 "
					    "to 36500", optarg);
				return PARSE_ERROR;
			}
			o->days_set = true;
			*seen |= CO_DAYS;
			break;
		case OPT_PROMETHEUS:
			o->prometheus = true;
			*seen |= CO_PROMETHEUS;
			break;
		case OPT_PROVIDER:
			o->provider = optarg;
			*seen |= CO_PROVIDER;
			break;
		case OPT_DRY_RUN:
			o->dry_run = true;
			*seen |= CO_DRY_RUN;
			break;
		case 'h':
			return PARSE_HELP;
		case 'V':
			return PARSE_VERSION;
		case ':':
			usage_error("option %s needs a value",
				    optind > 0 && optind <= argc
					    ? argv[optind - 1]
					    : opt_name(optopt, nbuf, sizeof(nbuf)));
			return PARSE_ERROR;
		default:
			if (optopt)
				usage_error("unknown option -%c", optopt);
			else
				usage_error("unknown option %s",
					    argv[optind - 1]);
			return PARSE_ERROR;
		}
	}
	*first = optind;
	return PARSE_OK;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Checks operands and command options; prints the usage error. */
static bool check_command(const struct command *cmd, int nargs,
			  char **args, unsigned seen, const struct options *o)
{
	if (seen & ~cmd->opts) {
		unsigned bad = seen & ~cmd->opts;
		const char *opt = (bad & CO_LIMIT)	? "-n/--limit"
				  : (bad & CO_DAYS)	? "--days"
				  : (bad & CO_PROVIDER) ? "--provider"
				  : (bad & CO_DRY_RUN)	? "--dry-run"
							: "--prometheus";

		usage_error("%s does not apply to '%s' (usage: convctl %s)", opt,
			    cmd->name, cmd->synopsis);
		return false;
	}
	if (o->prometheus && o->json) {
		usage_error("--prometheus and --json exclude each other");
		return false;
	}
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		usage_error("wrong number of arguments (usage: convctl %s)",
			    cmd->synopsis);
		return false;
	}
	if (cmd->run == cmd_thread) {
		const char *sub = args[0];
		int want = strcmp(sub, "set") == 0 ? 3 : 2;

		if (strcmp(sub, "get") && strcmp(sub, "set") &&
		    strcmp(sub, "delete")) {
			usage_error("thread: unknown subcommand '%s' (usage: "
				    "convctl %s)", sub, cmd->synopsis);
			return false;
		}
		if (nargs != want) {
			usage_error("wrong number of arguments (usage: convctl "
				    "thread %s)",
				    want == 3 ? "set USER THREAD"
					      : strcmp(sub, "get") == 0
						? "get USER"
						: "delete USER");
			return false;
		}
	}
	return true;
}

/* Flushes stdout; a write error (other than a closed pipe) fails. */
static int finish_output(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno != EPIPE)
			fprintf(stderr, "%s: writing output: %s\n", progname,
				strerror(errno));
		return rc == EXIT_SUCCESS ? EXIT_FAILURE : rc;
	}
	return rc;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	const struct command *cmd;
	struct cmd_ctx x;
	unsigned seen = 0;
	int first, sub_argc, rc;
	char **sub_argv;

	switch (parse_options(argc, argv, true, &o, &seen, &first)) {
	case PARSE_HELP:
		print_help(stdout);
		return finish_output(EXIT_SUCCESS);
	case PARSE_VERSION:
		printf("convctl (convd) %s\n", PACKAGE_VERSION);
		return finish_output(EXIT_SUCCESS);
	case PARSE_ERROR:
		return EXIT_USAGE;
	case PARSE_OK:
		break;
	}
	if (first >= argc)
		return usage_error("no command given");
	if (strcmp(argv[first], "help") == 0) {
		print_help(stdout);
		return finish_output(EXIT_SUCCESS);
	}
	if (strcmp(argv[first], "db") == 0) {
		rc = dbcmd_main(argc - first, argv + first, o.config, o.json);
		return finish_output(rc);
	}
	cmd = find_command(argv[first]);
	if (!cmd)
		return usage_error("unknown command '%s'", argv[first]);
	/* Options may also follow the command, mixed with its operands. */
	sub_argc = argc - first;
	sub_argv = argv + first;
	switch (parse_options(sub_argc, sub_argv, false, &o, &seen, &first)) {
	case PARSE_HELP:
		printf("usage: convctl [OPTIONS] %s\n", cmd->synopsis);
		return finish_output(EXIT_SUCCESS);
	case PARSE_VERSION:
		printf("convctl (convd) %s\n", PACKAGE_VERSION);
		return finish_output(EXIT_SUCCESS);
	case PARSE_ERROR:
		return EXIT_USAGE;
	case PARSE_OK:
		break;
	}
	/* Operands are now sub_argv[first..sub_argc); put them right after
	 * the command name so that commands see argv[1..]. */
	if (!check_command(cmd, sub_argc - first, sub_argv + first, seen, &o))
		return EXIT_USAGE;
	memmove(sub_argv + 1, sub_argv + first,
		(size_t)(sub_argc - first) * sizeof(*sub_argv));
	sub_argc = 1 + (sub_argc - first);

	x.o = &o;
	x.out = stdout;
	rc = open_conn(&o, cmd->default_timeout_s, &x.c);
	if (rc != EXIT_SUCCESS)
		return rc;
	rc = cmd->run(&x, sub_argc, sub_argv);
	convc_close(x.c);
	return finish_output(rc);
}
