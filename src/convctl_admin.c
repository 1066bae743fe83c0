/*
 * convctl_admin.c - convctl's commands about convd itself: ping, cleanup
 * (retention, admin), stats and health.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "convctl_cmd.h"
#include "convctl_conn.h"
#include "convctl_json.h"
#include "convctl_prom.h"
#include "convctl_text.h"

int convctl_admin_ping(struct convctl_ctx *x, int argc CONVD_UNUSED,
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
		return convctl_conn_report(st, &e);
	rtt = (int64_t)(b.tv_sec - a.tv_sec) * 1000000 +
	      (b.tv_nsec - a.tv_nsec) / 1000;
	if (x->o->json)
		fprintf(x->out,
			"{\"result\":\"pong\",\"rtt_usec\":%" PRId64 "}\n",
			rtt);
	else
		fprintf(x->out, "pong (%" PRId64 ".%03" PRId64 " ms)\n",
			rtt / 1000, rtt % 1000);
	return EXIT_SUCCESS;
}

/* cleanup --dry-run: cleanup_old_conversations with dry_run = true. */
static int cleanup_dry_run(struct convctl_ctx *x)
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
		return convctl_nomem();
	}
	st = convc_call(x->c, "cleanup_old_conversations", buf.data, buf.size,
			&r, &e);
	msgpack_sbuffer_destroy(&buf);
	if (st != CONVC_OK)
		return convctl_conn_report(st, &e);
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

int convctl_admin_cleanup(struct convctl_ctx *x, int argc CONVD_UNUSED,
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
		return convctl_conn_report(st, &e);
	convctl_text_deleted(x, deleted, "message");
	return EXIT_SUCCESS;
}

/* A map (stats, health) as one line of JSON, or as "path  value" lines. */
static int print_map(struct convctl_ctx *x, const msgpack_object *map)
{
	if (!x->o->json)
		return convctl_text_flat(x->out, map);
	convctl_json_value(&x->json, map);
	fputc('\n', x->out);
	return EXIT_SUCCESS;
}

int convctl_admin_stats(struct convctl_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	struct convc_error e;
	struct convc_reply r;
	int rc;
	int st = convc_stats(x->c, &r, &e);

	if (st != CONVC_OK)
		return convctl_conn_report(st, &e);
	if (x->o->prometheus)
		rc = convctl_prom_print(x->out, &r.result);
	else
		rc = print_map(x, &r.result);
	convc_reply_free(&r);
	return rc;
}

int convctl_admin_health(struct convctl_ctx *x, int argc CONVD_UNUSED,
			 char **argv CONVD_UNUSED)
{
	struct convc_error e;
	struct convc_reply r;
	bool ok;
	int rc;
	int st = convc_health(x->c, &ok, &r, &e);

	if (st != CONVC_OK)
		return convctl_conn_report(st, &e);
	rc = print_map(x, &r.result);
	convc_reply_free(&r);
	if (rc == EXIT_SUCCESS && !ok)
		rc = CONVCTL_EXIT_DAEMON;
	return rc;
}

