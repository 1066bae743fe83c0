/*
 * convctl_transfer.c - `convctl export` and `convctl import`: a user's
 * history as JSON Lines, out and back in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "convctl_cmd.h"
#include "convctl_conn.h"
#include "convctl_import.h"
#include "convctl_json.h"
#include "convctl_text.h"
#include "convctl_time.h"

#define EXPORT_PAGE 1000 /* export: messages per request */

/* One export_history page, as convd sent it (rows with their keys). */
static int export_page(struct convctl_ctx *x, const char *user, int64_t after,
		       struct convc_reply *reply, struct convc_error *e)
{
	msgpack_packer *pk;
	uint32_t msgid;
	int n = 3 + (x->o->provider != NULL) + (x->o->platform != NULL);

	pk = convc_request_begin(x->c, "export_history", &msgid, e);
	if (!pk)
		return CONVC_ERR_LOCAL;
	if (msgpack_pack_array(pk, 1) < 0 ||
	    msgpack_pack_map(pk, (size_t)n) < 0 ||
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
int convctl_transfer_export(struct convctl_ctx *x, int argc CONVD_UNUSED,
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
			return convctl_conn_report(st, &e);
		}
		for (size_t i = 0; i < n; i++) {
			const msgpack_object *key = convc_map_get(
				&reply.result.via.array.ptr[i],
				"idempotency_key");

			bool first = true;

			fputc('{', x->out);
			json_key(&x->json, &first, "id");
			json_int(&x->json, m[i].id);
			json_kv_str(&x->json, &first, "user_id", argv[1]);
			json_kv_str(&x->json, &first, "platform", platform);
			json_kv_str(&x->json, &first, "provider",
				    m[i].provider);
			convctl_json_message(&x->json, &first, &m[i]);
			if (key && key->type == MSGPACK_OBJECT_STR) {
				json_key(&x->json, &first, "idempotency_key");
				json_str(&x->json, key->via.str.ptr,
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

/* Reads one line of at most CONVCTL_MAX_STDIN_TEXT bytes (without its
 * newline); 0 at end of input, -1 after printing an error. */
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
		if (line->len >= CONVCTL_MAX_STDIN_TEXT) {
			*too_long = true;
			continue;	/* read to the end of the line */
		}
		buf_add(line, &ch, 1);
		if (line->nomem) {
			convctl_nomem();
			return -1;
		}
	}
	if (ferror(in)) {
		fprintf(stderr, "%s: reading standard input: %s\n",
			convctl_progname, strerror(errno));
		return -1;
	}
	return line->len > 0 || *too_long ? 1 : 0;
}

static void print_import_count(struct convctl_ctx *x, int64_t imported,
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
 * skipped, so a file can be imported again.  The first bad line or error stops
 * the import; what was stored before it stays.
 */
int convctl_transfer_import(struct convctl_ctx *x, int argc CONVD_UNUSED,
			    char **argv CONVD_UNUSED)
{
	struct buf line = { 0 };
	int64_t imported = 0, skipped = 0, lineno = 0;
	int rc = EXIT_SUCCESS;

	for (;;) {
		struct convctl_import_row row;
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
			fprintf(stderr,
				"%s: line %" PRId64 ": longer than %zu "
				"MiB\n",
				convctl_progname, lineno,
				CONVCTL_MAX_STDIN_TEXT >> 20);
			rc = CONVCTL_EXIT_USAGE;
			break;
		}
		if (line.len == 0 || strspn(line.p, " \t\r") == line.len)
			continue;
		if (!convctl_import_parse(line.p, line.len, &row, err,
					  sizeof(err))) {
			fprintf(stderr, "%s: line %" PRId64 ": ",
				convctl_progname, lineno);
			convctl_text_cstr(stderr, err);
			fputc('\n', stderr);
			rc = CONVCTL_EXIT_USAGE;
			break;
		}
		if (!convctl_time_parse(row.created_at, &at)) {
			fprintf(stderr, "%s: line %" PRId64 ": created_at: not "
				"an ISO 8601 time: ", convctl_progname, lineno);
			convctl_text_cstr(stderr, row.created_at);
			fputc('\n', stderr);
			convctl_import_row_free(&row);
			rc = CONVCTL_EXIT_USAGE;
			break;
		}
		st = convc_import_message_key(x->c, row.user_id, row.provider,
					      row.role, row.content,
					      row.content_len,
					      row.platform ? row.platform
							   : x->o->platform,
					      at, row.idempotency_key, NULL,
					      &fresh, &e);
		convctl_import_row_free(&row);
		if (st != CONVC_OK) {
			fprintf(stderr, "%s: line %" PRId64 ":\n",
				convctl_progname, lineno);
			rc = convctl_conn_report(st, &e);
			break;
		}
		if (fresh)
			imported++;
		else
			skipped++;
	}
	free(line.p);
	if (rc != EXIT_SUCCESS)
		fprintf(stderr,
			"%s: stopped: imported %" PRId64 ", skipped %" PRId64
			" before the error\n",
			convctl_progname, imported, skipped);
	else
		print_import_count(x, imported, skipped);
	return rc;
}
