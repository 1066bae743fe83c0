/*
 * request.c - one RPC request from the moment it is read to its answer
 * (request.h): allocation, the handler registry, staging of the answer,
 * and the end of every request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "proto.h"
#include "request.h"
#include "stats.h"

#define container_of(p, type, member) \
	((type *)(void *)((char *)(p) - offsetof(type, member)))

/*
 * Request blocks are recycled: a request whose arguments fit in
 * REQ_SMALL bytes (nearly all of them) takes a block from this list and
 * gives it back, so the hot path does no malloc/free per request.
 */
#define REQ_SMALL 2048
#define REQ_CACHE_MAX 512

/*
 * Responses are packed into one staging buffer (the loop packs one
 * response at a time) and handed to the transport in one piece when
 * complete: one write to the client's output per response instead of
 * one per field, and a response whose packing fails never reaches the
 * socket half-made.
 */
#define STAGE_KEEP (256u << 10)

static struct {
	const struct request_ops *ops;
	request_handler_fn handlers[METHOD_COUNT_];
	request_gate_fn gate;
	size_t max_output;
	int inflight;
	/* the block cache */
	struct request_queue free;
	int nfree;
	/* the staging buffer */
	msgpack_packer pk;
	char *stage;
	size_t stage_len, stage_cap;
	bool too_large;		/* the response went over max_output */
} rq = {.free = TAILQ_HEAD_INITIALIZER(rq.free)};

/* A response may not outgrow max_output_bytes: staging stops there (and
 * the request gets result_too_large) instead of holding a result of any
 * size in memory, then dropping the client for it. */
static int request_stage_write(void *data, const char *buf, size_t len)
{
	(void)data;
	if (len > rq.max_output - rq.stage_len || rq.too_large) {
		rq.too_large = true;
		return -1;
	}
	if (len > rq.stage_cap - rq.stage_len) {
		size_t cap = rq.stage_cap ? rq.stage_cap : 16384;
		char *np;

		while (cap - rq.stage_len < len) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		np = realloc(rq.stage, cap);
		if (!np)
			return -1;
		rq.stage = np;
		rq.stage_cap = cap;
	}
	memcpy(rq.stage + rq.stage_len, buf, len);
	rq.stage_len += len;
	return 0;
}

void request_setup(const struct request_ops *ops)
{
	rq.ops = ops;
	msgpack_packer_init(&rq.pk, NULL, request_stage_write);
}

void request_cleanup(void)
{
	struct request *r;

	while ((r = TAILQ_FIRST(&rq.free))) {
		TAILQ_REMOVE(&rq.free, r, link);
		free(r);
	}
	rq.nfree = 0;
	free(rq.stage);
	rq.stage = NULL;
	rq.stage_len = rq.stage_cap = 0;
	rq.too_large = false;
}

void request_register(enum method_id m, request_handler_fn fn)
{
	if ((unsigned)m < METHOD_COUNT_)
		rq.handlers[m] = fn;
}

void request_set_gate(request_gate_fn gate)
{
	rq.gate = gate;
}

void request_set_max_output(size_t bytes)
{
	rq.max_output = bytes;
}

size_t request_max_output(void)
{
	return rq.max_output;
}

int request_inflight(void)
{
	return rq.inflight;
}

/* ---- staging ------------------------------------------------------------- */

msgpack_packer *request_stage_packer(void)
{
	return &rq.pk;
}

const char *request_staged(size_t *len)
{
	*len = rq.stage_len;
	return rq.stage;
}

/* Drops what is staged (sent, or given up for an error); a buffer grown
 * large for one answer is given back. */
void request_unstage(void)
{
	rq.stage_len = 0;
	rq.too_large = false;
	if (rq.stage_cap > STAGE_KEEP) {
		free(rq.stage);
		rq.stage = NULL;
		rq.stage_cap = 0;
	}
}

/* ---- life ---------------------------------------------------------------- */

static size_t request_data_bytes(const struct method_spec *spec,
				 const struct validate_args *args)
{
	size_t total = 0;

	for (int i = 0; i < spec->nparams; i++)
		if (spec->params[i].kind != METHOD_PK_INT && args->v[i].present)
			total += args->v[i].s.len + 1;
	return total;
}

size_t request_footprint(const struct method_spec *spec,
			 const struct validate_args *args)
{
	size_t data = request_data_bytes(spec, args);

	return sizeof(struct request) + (data > REQ_SMALL ? data : REQ_SMALL);
}

struct request *request_new(struct client *c, uint32_t msgid,
			    const struct method_spec *spec,
			    const struct validate_args *args, usec_t started)
{
	size_t data = request_data_bytes(spec, args);
	size_t cap = data <= REQ_SMALL ? REQ_SMALL : data;
	struct request *r = NULL;
	char *p;

	if (cap == REQ_SMALL && (r = TAILQ_FIRST(&rq.free))) {
		TAILQ_REMOVE(&rq.free, r, link);
		rq.nfree--;
	} else {
		r = malloc(sizeof(*r) + cap);
		if (!r)
			return NULL;
	}
	memset(r, 0, sizeof(*r));
	r->data_cap = cap;
	r->client = c;
	r->msgid = msgid;
	r->spec = spec;
	r->args = *args;
	r->started = started;
	p = r->data;
	for (int i = 0; i < spec->nparams; i++) {
		struct validate_arg *v = &r->args.v[i];

		if (spec->params[i].kind == METHOD_PK_INT) {
			/* the value is v->i; no text */
			v->s.p = NULL;
			v->s.len = 0;
			continue;
		}
		if (!v->present)
			continue;
		if (v->s.len > 0)	/* a boolean has no text (s.p NULL) */
			memcpy(p, v->s.p, v->s.len);
		p[v->s.len] = '\0';
		v->s.p = p;
		p += v->s.len + 1;
	}
	rq.inflight++;
	return r;
}

static void request_free(struct request *r)
{
	if (r->data_cap == REQ_SMALL && rq.nfree < REQ_CACHE_MAX) {
		TAILQ_INSERT_HEAD(&rq.free, r, link);
		rq.nfree++;
		return;
	}
	free(r);
}

void request_dispatch(struct request *r)
{
	request_handler_fn fn = rq.handlers[r->spec->id];

	if (r->spec->needs_db && rq.gate) {
		const char *why = rq.gate();

		if (why) {
			request_error(r, E_UNAVAILABLE, "%s", why);
			return;
		}
	}
	if (!fn) {
		request_error(r, E_NO_SUCH_METHOD,
			      "%s is not served by this convd", r->spec->name);
		return;
	}
	fn(r);
}

/* Every request ends here, answered (staged) or not. */
static void request_end(struct request *r, enum rpc_error e)
{
	stats_record(r->spec->id, e, clock_now() - r->started);
	deadline_unwatch(&r->dl);
	rq.inflight--;
	rq.ops->done(r);
	request_unstage();
	request_free(r);
}

msgpack_packer *request_result(struct request *r)
{
	if (proto_pack_result_head(&rq.pk, r->msgid) < 0)
		log_error("%s: cannot pack the response", r->spec->name);
	return &rq.pk;
}

void request_finish(struct request *r)
{
	request_end(r, E_COUNT_);
}

void request_error(struct request *r, enum rpc_error e, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	/* whatever was packed of a result is dropped for the error */
	rq.stage_len = 0;
	rq.too_large = false;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (proto_pack_error(&rq.pk, true, r->msgid, rpc_error_code(e), msg) <
	    0)
		log_error("cannot pack error response");
	request_end(r, e);
}

void request_abort(struct request *r, const char *why)
{
	if (rq.too_large) {
		log_notice("%s: the result is larger than max_output_bytes "
			   "(%zu); answered result_too_large",
			   r->spec->name, rq.max_output);
		request_error(r, E_RESULT_TOO_LARGE,
			      "the result is larger than [server] "
			      "max_output_bytes (%zu bytes); ask for fewer rows "
			      "(limit)",
			      rq.max_output);
		return;
	}
	log_error("%s: %s; closing the client connection", r->spec->name, why);
	rq.ops->broken(r);
	request_end(r, E_INTERNAL);
}

/* ---- deadlines ------------------------------------------------------------ */

static void request_on_deadline(struct deadline_link *dl)
{
	struct request *r = container_of(dl, struct request, dl);

	r->expire(r);
}

void request_watch(struct request *r, request_expire_fn expire)
{
	r->expire = expire;
	deadline_watch(&r->dl, r->started, r->spec->name, request_on_deadline);
}
