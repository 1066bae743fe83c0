/*
 * prom.c - a stats map in the Prometheus text exposition format (0.0.4).
 *
 * The leaves it knows become the metrics of prom_table (by path) and
 * prom_families (methods.METHOD.* and protocol_errors.CODE, one family
 * each with method / code / le labels): counters end in _total,
 * microseconds become seconds, timestamps Unix seconds, booleans 1 or 0,
 * strings info metrics (NAME{LABEL="..."} 1), and
 * methods.METHOD.latency_us.{buckets.LE,sum,count} the histogram
 * convd_request_duration_seconds.  The latency percentiles (p50, p95, p99)
 * are left out: they are since start-up, and histogram_quantile() over
 * the buckets gives them for any window.  Any other leaf (a field added
 * by a newer convd, or a known one of an unexpected type) is kept as a
 * gauge named convd_ + its path with every character outside
 * [A-Za-z0-9_] replaced by '_' (+ _info for a string); nil, binary
 * values, other extensions and empty maps and arrays are left out.
 *
 * Samples are collected first, then written grouped by family under one
 * HELP and one TYPE line, the families in the order of their first sample
 * in the map.  A family name is never used twice: a leaf whose name is
 * taken by another kind of metric, or a second sample with the same name
 * and labels, is dropped (the known metrics are placed first, so an
 * unknown leaf cannot take a known name).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"
#include "proto.h"
#include "utf8.h"

/* How a leaf's value becomes a sample value. */
enum prom_conv {
	PROM_NUMBER,	/* integer or float as it is, boolean as 1 or 0 */
	PROM_USEC,	/* microseconds -> seconds */
	PROM_TIME,	/* timestamp (extension -1) -> Unix seconds */
	PROM_INFO,	/* string -> label value, sample value 1 */
	PROM_DAYS,	/* days -> seconds */
};

enum prom_type {
	PT_GAUGE,
	PT_COUNTER,
	PT_HISTOGRAM,
};

struct prom_metric {
	const char *path;	/* stats keys joined by '.'; NULL: a family */
	const char *name;
	enum prom_type type;
	enum prom_conv conv;
	const char *help;
	const char *label;	/* PROM_INFO: the label; NULL: "value" */
};

/* The stats leaves known by their path.  Names are unique. */
static const struct prom_metric prom_table[] = {
	{ "version", "convd_build_info", PT_GAUGE, PROM_INFO,
	  "The version of convd, in the version label.", "version" },
	{ "uptime_s", "convd_uptime_seconds", PT_GAUGE, PROM_NUMBER,
	  "Seconds since convd started.", NULL },
	{ "started_at", "convd_start_time_seconds", PT_GAUGE, PROM_TIME,
	  "When convd started, in seconds since the Unix epoch.", NULL },
	{ "clients.connected", "convd_clients_connected", PT_GAUGE,
	  PROM_NUMBER, "Client connections open now.", NULL },
	{ "clients.accepted", "convd_clients_accepted_total", PT_COUNTER,
	  PROM_NUMBER, "Client connections accepted on the socket, including "
	  "those then refused.", NULL },
	{ "clients.rejected", "convd_clients_rejected_total", PT_COUNTER,
	  PROM_NUMBER, "Client connections refused: max_clients reached or "
	  "the peer not allowed.", NULL },
	{ "clients.closed_on_error", "convd_clients_closed_on_error_total",
	  PT_COUNTER, PROM_NUMBER,
	  "Client connections closed by convd because of an error.", NULL },
	{ "clients.requests_in_flight", "convd_requests_in_flight", PT_GAUGE,
	  PROM_NUMBER, "Requests received and not yet answered.", NULL },
	{ "pool.database_up", "convd_pool_database_up", PT_GAUGE, PROM_NUMBER,
	  "Whether the database is reachable (1) or not (0).", NULL },
	{ "pool.open", "convd_pool_connections_open", PT_GAUGE, PROM_NUMBER,
	  "Database connections open now.", NULL },
	{ "pool.busy", "convd_pool_connections_busy", PT_GAUGE, PROM_NUMBER,
	  "Database connections in use by a request now.", NULL },
	{ "pool.idle", "convd_pool_connections_idle", PT_GAUGE, PROM_NUMBER,
	  "Open database connections not in use now.", NULL },
	{ "pool.connecting", "convd_pool_connections_connecting", PT_GAUGE,
	  PROM_NUMBER, "Database connections being established now.", NULL },
	{ "pool.waiting", "convd_pool_waiting_requests", PT_GAUGE, PROM_NUMBER,
	  "Requests waiting for a free database connection now.", NULL },
	{ "pool.connects", "convd_pool_connects_total", PT_COUNTER,
	  PROM_NUMBER, "Database connections established.", NULL },
	{ "pool.connect_failures", "convd_pool_connect_failures_total",
	  PT_COUNTER, PROM_NUMBER,
	  "Attempts to connect to the database that failed.", NULL },
	{ "pool.lost", "convd_pool_connections_lost_total", PT_COUNTER,
	  PROM_NUMBER, "Database connections found broken.", NULL },
	{ "pool.recycled", "convd_pool_connections_recycled_total", PT_COUNTER,
	  PROM_NUMBER, "Database connections closed for being older than the "
	  "recycle age.", NULL },
	{ "pool.timeouts", "convd_pool_timeouts_total", PT_COUNTER,
	  PROM_NUMBER, "Requests that got no database connection within the "
	  "pool timeout.", NULL },
	{ "pool.unavailable", "convd_pool_unavailable_total", PT_COUNTER,
	  PROM_NUMBER, "Requests refused because the database was "
	  "unavailable.", NULL },
	{ "pool.pings", "convd_pool_pings_total", PT_COUNTER, PROM_NUMBER,
	  "Checks of a database connection sent before handing it out.",
	  NULL },
	{ "pool.refused", "convd_pool_refused_total", PT_COUNTER, PROM_NUMBER,
	  "Connections the server refused for want of a free slot (53300).",
	  NULL },
	{ "pool.given_back", "convd_pool_given_back_total", PT_COUNTER,
	  PROM_NUMBER, "Connections closed to leave a slot to others on a "
	  "full server.", NULL },
	{ "pool.rechecks", "convd_pool_rechecks_total", PT_COUNTER, PROM_NUMBER,
	  "Checks that a connection's server is still a writable primary.",
	  NULL },
	{ "pool.read_only", "convd_pool_read_only_total", PT_COUNTER,
	  PROM_NUMBER, "Connections found on a server that no longer writes.",
	  NULL },
	{ "pool.not_replicated", "convd_pool_not_replicated_total", PT_COUNTER,
	  PROM_NUMBER, "Commits not confirmed by a synchronous standby (not "
	  "acknowledged).", NULL },
	{ "pool.stale", "convd_pool_stale_primaries_total", PT_COUNTER,
	  PROM_NUMBER, "Primaries left because another host wrote on a newer "
	  "timeline.", NULL },
	{ "pool.failing", "convd_pool_failing_queries", PT_GAUGE, PROM_NUMBER,
	  "Queries failed in a row since the last that succeeded.", NULL },
	{ "pool.pooler", "convd_pool_pooler", PT_GAUGE, PROM_NUMBER,
	  "1 when statements go unnamed through a transaction pooler.", NULL },
	{ "pool.database_stalled", "convd_pool_database_stalled", PT_GAUGE,
	  PROM_NUMBER, "Whether the database has stopped answering queries "
	  "(1) or not (0).", NULL },
	{ "pool.abandoned", "convd_pool_abandoned_queries_total", PT_COUNTER,
	  PROM_NUMBER, "Queries given up at their request's deadline.", NULL },
	{ "pool.deadline_timeouts", "convd_deadline_timeouts_total",
	  PT_COUNTER, PROM_NUMBER,
	  "Requests whose deadline passed before they were answered.", NULL },
	{ "pool.last_error", "convd_pool_last_error_info", PT_GAUGE, PROM_INFO,
	  "The last database connection error, in the label value.", NULL },
	{ "retention.days_to_keep", "convd_retention_max_age_seconds",
	  PT_GAUGE, PROM_DAYS, "Age beyond which retention deletes messages "
	  "([retention] days_to_keep); 0 when retention is off.", NULL },
	{ "retention.running", "convd_retention_running", PT_GAUGE,
	  PROM_NUMBER, "Whether a retention run is in progress (1) or not "
	  "(0).", NULL },
	{ "retention.runs", "convd_retention_runs_total", PT_COUNTER,
	  PROM_NUMBER, "Retention runs completed, scheduled or requested.",
	  NULL },
	{ "retention.skipped", "convd_retention_skipped_total", PT_COUNTER,
	  PROM_NUMBER, "Retention runs skipped because another convd held the "
	  "cleanup lock.", NULL },
	{ "retention.failures", "convd_retention_failures_total", PT_COUNTER,
	  PROM_NUMBER, "Retention runs that failed.", NULL },
	{ "retention.total_deleted", "convd_retention_deleted_total",
	  PT_COUNTER, PROM_NUMBER, "Messages deleted by retention runs.",
	  NULL },
	{ "retention.last_deleted", "convd_retention_last_run_deleted",
	  PT_GAUGE, PROM_NUMBER,
	  "Messages deleted by the last completed retention run.", NULL },
	{ "retention.last_duration_us",
	  "convd_retention_last_run_duration_seconds", PT_GAUGE, PROM_USEC,
	  "How long the last completed retention run took.", NULL },
	{ "retention.last_run", "convd_retention_last_run_timestamp_seconds",
	  PT_GAUGE, PROM_TIME, "When the last retention run completed, in "
	  "seconds since the Unix epoch.", NULL },
	{ "retention.next_run", "convd_retention_next_run_timestamp_seconds",
	  PT_GAUGE, PROM_TIME, "When the next retention run is due, in "
	  "seconds since the Unix epoch.", NULL },
	{ "memory.trims", "convd_memory_trims_total", PT_COUNTER, PROM_NUMBER,
	  "Times convd gave its free heap back to the kernel after a quiet "
	  "spell.", NULL },
	{ "memory.heap_bytes", "convd_memory_heap_bytes", PT_GAUGE,
	  PROM_NUMBER, "Bytes of heap convd holds, free or in use.", NULL },
	{ "memory.heap_free_bytes", "convd_memory_heap_free_bytes", PT_GAUGE,
	  PROM_NUMBER, "Bytes of convd's heap free for reuse.", NULL },
	{ "budget.limit_bytes", "convd_budget_limit_bytes", PT_GAUGE,
	  PROM_NUMBER, "The memory budget for the bytes buffered for all "
	  "clients.", NULL },
	{ "budget.used_bytes", "convd_budget_used_bytes", PT_GAUGE,
	  PROM_NUMBER, "Bytes buffered for clients now, against the budget.",
	  NULL },
	{ "budget.peak_bytes", "convd_budget_peak_bytes", PT_GAUGE,
	  PROM_NUMBER, "The most bytes buffered for clients at once since "
	  "start-up.", NULL },
	{ "budget.cutoffs", "convd_budget_cutoffs_total", PT_COUNTER,
	  PROM_NUMBER, "Times the memory budget cut a client off.", NULL },
};

/* The families with labels. */
enum {
	PF_REQUESTS,		/* methods.METHOD.requests */
	PF_ERRORS,		/* methods.METHOD.errors.CODE */
	PF_DURATION,		/* methods.METHOD.latency_us.buckets|sum|count */
	PF_DURATION_MAX,	/* methods.METHOD.latency_us.max */
	PF_PROTOCOL_ERRORS,	/* protocol_errors.CODE */
	PF_SKIP,		/* known, deliberately left out */
};

static const struct prom_metric prom_families[] = {
	[PF_REQUESTS] = { NULL, "convd_requests_total", PT_COUNTER,
	  PROM_NUMBER, "Requests handled since start-up by method, those "
	  "answered with an error included.", NULL },
	[PF_ERRORS] = { NULL, "convd_request_errors_total", PT_COUNTER,
	  PROM_NUMBER, "Requests answered with an error, by method and error "
	  "code.", NULL },
	[PF_DURATION] = { NULL, "convd_request_duration_seconds",
	  PT_HISTOGRAM, PROM_NUMBER, "Request latency by method, from reading "
	  "the request to queueing its answer.", NULL },
	[PF_DURATION_MAX] = { NULL, "convd_request_duration_max_seconds",
	  PT_GAUGE, PROM_USEC,
	  "The longest request latency since start-up by method.", NULL },
	[PF_PROTOCOL_ERRORS] = { NULL, "convd_protocol_errors_total",
	  PT_COUNTER, PROM_NUMBER, "Errors for messages that never reached "
	  "a method, by error code.", NULL },
	[PF_SKIP] = { NULL, "", PT_GAUGE, PROM_NUMBER, "", NULL },
};

/* The deepest known leaf, methods.METHOD.latency_us.buckets.LE. */
#define PROM_KNOWN_DEPTH 5

struct prom_sample {
	const struct prom_metric *m;	/* NULL: not known, see name */
	char *name;			/* unknown leaf: convd_PATH[_info] */
	char *path;			/* unknown leaf: for its HELP */
	const char *suffix;		/* histogram: _bucket, _sum, _count */
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
static void prom_help(struct buf *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_adds(out, "\\\\");
		else if (*s == '\n')
			buf_adds(out, "\\n");
		else
			buf_add(out, s, 1);
	}
}

/* Appends name="value" (\\, \" and \n escaped) to a label list.  The
 * format is UTF-8: an invalid byte (a server's message in another
 * encoding, say) becomes U+FFFD, or the scraper would refuse the text. */
static void prom_label(struct buf *b, const char *name, const char *v,
		       size_t len)
{
	if (b->len > 0)
		buf_add(b, ",", 1);
	buf_adds(b, name);
	buf_add(b, "=\"", 2);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t n = utf8_next((const unsigned char *)v + i, len - i, &cp);

		if (cp == UTF8_INVALID) {
			buf_adds(b, "\xEF\xBF\xBD");
			i++;
			continue;
		}
		if (v[i] == '\\')
			buf_adds(b, "\\\\");
		else if (v[i] == '"')
			buf_adds(b, "\\\"");
		else if (v[i] == '\n')
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
		buf_fmt_double(buf, len, d);
}

/* A timestamp extension (-1) in microseconds since the epoch. */
static bool prom_timestamp(const msgpack_object *o, int64_t *t)
{
	struct proto_node n = { .type = PROTO_EXT };

	if (o->type != MSGPACK_OBJECT_EXT)
		return false;
	n.ext_type = o->via.ext.type;
	n.v.s.p = o->via.ext.ptr;
	n.v.s.len = o->via.ext.size;
	return proto_node_timestamp(&n, t) == 0;
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
		if (!prom_timestamp(o, &t))
			return false;
		prom_usec(buf, len, t < 0,
			  t < 0 ? 0 - (uint64_t)t : (uint64_t)t);
		return true;
	case PROM_INFO:
		if (o->type != MSGPACK_OBJECT_STR)
			return false;
		snprintf(buf, len, "1");
		return true;
	case PROM_DAYS:
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    o->via.u64 > UINT64_MAX / 86400)
			return false;
		snprintf(buf, len, "%" PRIu64, o->via.u64 * 86400);
		return true;
	}
	return false;
}

/* A histogram bucket key, an upper bound in microseconds ("250") or
 * "+Inf", as the le label; false if it is neither. */
static bool prom_le_label(struct buf *labels, const struct prom_ctx *x,
			  int i)
{
	const char *k = x->path.p + x->key_off[i];
	size_t len = x->key_len[i];
	uint64_t us = 0;
	char le[48];

	if (prom_key_is(x, i, "+Inf")) {
		prom_label(labels, "le", "+Inf", 4);
		return true;
	}
	if (len == 0 || len > 19)
		return false;
	for (size_t j = 0; j < len; j++) {
		if (k[j] < '0' || k[j] > '9')
			return false;
		us = us * 10 + (uint64_t)(k[j] - '0');
	}
	prom_usec(le, sizeof(le), false, us);
	prom_label(labels, "le", le, strlen(le));
	return true;
}

/*
 * The known metric of the current path (and its labels, the sample name's
 * suffix and how to convert the value), or NULL.
 */
static const struct prom_metric *prom_known(const struct prom_ctx *x,
					    struct buf *labels,
					    const char **suffix,
					    enum prom_conv *conv)
{
	static const char *const skipped[] = { "p50", "p95", "p99" };
	const struct prom_metric *m = NULL;

	*suffix = "";
	if (x->depth > PROM_KNOWN_DEPTH)
		return NULL;
	if (prom_key_is(x, 0, "methods") && x->depth == 3 &&
	    prom_key_is(x, 2, "requests")) {
		prom_key_label(labels, x, "method", 1);
		m = &prom_families[PF_REQUESTS];
	} else if (prom_key_is(x, 0, "methods") && x->depth == 4 &&
		   prom_key_is(x, 2, "errors")) {
		prom_key_label(labels, x, "method", 1);
		prom_key_label(labels, x, "code", 3);
		m = &prom_families[PF_ERRORS];
	} else if (prom_key_is(x, 0, "methods") && x->depth >= 4 &&
		   prom_key_is(x, 2, "latency_us")) {
		prom_key_label(labels, x, "method", 1);
		if (x->depth == 5 && prom_key_is(x, 3, "buckets")) {
			if (!prom_le_label(labels, x, 4))
				return NULL;
			*suffix = "_bucket";
			*conv = PROM_NUMBER;
			return &prom_families[PF_DURATION];
		}
		if (x->depth != 4)
			return NULL;
		if (prom_key_is(x, 3, "sum")) {
			*suffix = "_sum";
			*conv = PROM_USEC;
			return &prom_families[PF_DURATION];
		}
		if (prom_key_is(x, 3, "count")) {
			*suffix = "_count";
			*conv = PROM_NUMBER;
			return &prom_families[PF_DURATION];
		}
		if (prom_key_is(x, 3, "max"))
			m = &prom_families[PF_DURATION_MAX];
		for (size_t i = 0; i < ARRAY_LEN(skipped); i++)
			if (prom_key_is(x, 3, skipped[i]))
				m = &prom_families[PF_SKIP];
	} else if (prom_key_is(x, 0, "protocol_errors") && x->depth == 2) {
		prom_key_label(labels, x, "code", 1);
		m = &prom_families[PF_PROTOCOL_ERRORS];
	} else {
		for (size_t i = 0; i < ARRAY_LEN(prom_table); i++)
			if (prom_path_is(x, prom_table[i].path))
				m = &prom_table[i];
	}
	if (m)
		*conv = m->conv;
	return m;
}

/* Collects the sample of one leaf, if it has one. */
static void prom_leaf(struct prom_ctx *x, const msgpack_object *o)
{
	struct prom_sample s = { .family = SIZE_MAX };
	struct buf labels = { 0 }, name = { 0 };
	enum prom_conv conv = PROM_NUMBER;
	int64_t t;

	s.m = prom_known(x, &labels, &s.suffix, &conv);
	if (s.m == &prom_families[PF_SKIP]) {
		buf_free(&labels);
		return;
	}
	if (!s.m || !prom_value(s.value, sizeof(s.value), o, conv)) {
		s.m = NULL;
		s.suffix = "";
		buf_free(&labels);
	}
	if (!s.m) {
		conv = o->type == MSGPACK_OBJECT_STR ? PROM_INFO
		     : prom_timestamp(o, &t) ? PROM_TIME : PROM_NUMBER;
		if (!prom_value(s.value, sizeof(s.value), o, conv))
			return;
		prom_name(&name, x->path.p ? x->path.p : "");
		if (conv == PROM_INFO)
			buf_adds(&name, "_info");
		s.name = name.p;
		s.path = strdup(x->path.p ? x->path.p : "");
	}
	if (conv == PROM_INFO)
		prom_label(&labels, s.m && s.m->label ? s.m->label : "value",
			   o->via.str.ptr, o->via.str.size);
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
		if (map)
			buf_add_key(&x->path, &o->via.map.ptr[i].key);
		else
			buf_printf(&x->path, "%" PRIu32, i);
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

/* Whether name is a sample name of histogram family h (NAME_bucket...). */
static bool prom_histogram_sample(const struct prom_sample *h,
				  const char *name)
{
	static const char *const sfx[] = { "_bucket", "_sum", "_count" };
	size_t len;

	if (!h->m || h->m->type != PT_HISTOGRAM)
		return false;
	len = strlen(h->m->name);
	if (strncmp(name, h->m->name, len) != 0)
		return false;
	for (size_t i = 0; i < ARRAY_LEN(sfx); i++)
		if (strcmp(name + len, sfx[i]) == 0)
			return true;
	return false;
}

/*
 * Puts sample i into its family, a new one (fam[nfam] = i) if its name is
 * new.  Dropped: an unknown leaf whose name is taken (or is one of a
 * histogram's sample names), a known one whose name belongs to another
 * metric, a repeated sample name and label set.
 */
static void prom_assign(struct prom_sample *s, size_t i, size_t *fam,
			size_t *nfam)
{
	const char *name = prom_sample_name(&s[i]);
	size_t f;

	for (f = 0; f < *nfam; f++) {
		if (strcmp(prom_sample_name(&s[fam[f]]), name) == 0)
			break;
		if (!s[i].m && prom_histogram_sample(&s[fam[f]], name))
			return;
	}
	if (f == *nfam) {
		fam[(*nfam)++] = i;
		s[i].family = f;
		return;
	}
	if (!s[i].m || s[fam[f]].m != s[i].m)
		return;
	for (size_t j = fam[f]; j < i; j++)
		if (s[j].family == f && strcmp(s[j].suffix, s[i].suffix) == 0 &&
		    strcmp(s[j].labels ? s[j].labels : "",
			   s[i].labels ? s[i].labels : "") == 0)
			return;
	s[i].family = f;
}

static void prom_print_family(struct buf *out, const struct prom_sample *s,
			      size_t n, size_t first)
{
	static const char *const types[] = {
		[PT_GAUGE] = "gauge",
		[PT_COUNTER] = "counter",
		[PT_HISTOGRAM] = "histogram",
	};
	const struct prom_sample *h = &s[first];
	const char *name = prom_sample_name(h);

	buf_printf(out, "# HELP %s ", name);
	if (h->m) {
		prom_help(out, h->m->help);
	} else {
		buf_adds(out, "The stats field ");
		prom_help(out, h->path);
		buf_adds(out, ", not known to this version of convd.");
	}
	buf_printf(out, "\n# TYPE %s %s\n", name,
		   types[h->m ? h->m->type : PT_GAUGE]);
	for (size_t j = first; j < n; j++) {
		if (s[j].family != h->family)
			continue;
		buf_adds(out, name);
		buf_adds(out, s[j].suffix ? s[j].suffix : "");
		if (s[j].labels)
			buf_printf(out, "{%s}", s[j].labels);
		buf_printf(out, " %s\n", s[j].value);
	}
}

int prom_format(struct buf *out, const msgpack_object *stats)
{
	struct prom_ctx x = { 0 };
	size_t *fam = NULL, nfam = 0;

	prom_walk(&x, stats);
	buf_free(&x.path);
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
				prom_print_family(out, x.s, x.n, i);
	}
	for (size_t i = 0; i < x.n; i++) {
		free(x.s[i].name);
		free(x.s[i].path);
		free(x.s[i].labels);
	}
	free(x.s);
	free(fam);
	return x.nomem || out->nomem ? -1 : 0;
}
