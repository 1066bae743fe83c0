/*
 * convctl_transfer.c - `convctl export` and `convctl import`: a user's
 * history as JSON Lines, out and back in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "content.h"
#include "convctl_cmd.h"
#include "convctl_conn.h"
#include "convctl_import.h"
#include "convctl_json.h"
#include "convctl_text.h"
#include "convctl_time.h"
#include "jsonmp.h"

#define EXPORT_PAGE 1000 /* export: messages per request */

/* Bytes as base64 (RFC 4648, padded) in a JSON string. */
static void put_b64(FILE *f, const void *data, size_t n)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	const uint8_t *p = data;
	char out[4];

	fputc('"', f);
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		out[0] = abc[v >> 18];
		out[1] = abc[(v >> 12) & 0x3F];
		out[2] = left > 1 ? abc[(v >> 6) & 0x3F] : '=';
		out[3] = left > 2 ? abc[v & 0x3F] : '=';
		fwrite(out, 1, 4, f);
	}
	fputc('"', f);
}

/*
 * metadata as JSON into *json (malloc'd) when that JSON packs back
 * (jsonmp) into exactly the bytes stored, so that import restores them;
 * false when it does not (a bin, a timestamp, a float32, a key that is
 * not a string, an integer or string not packed the shortest way,
 * nesting beyond msgpack-c's decoder) or memory ran out.
 */
static bool metadata_json(const void *mp, size_t len, char **json,
			  size_t *jlen)
{
	msgpack_unpacked u;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct json j;
	char err[128];
	bool same = false;
	FILE *f;

	*json = NULL;
	*jlen = 0;
	f = open_memstream(json, jlen);
	if (!f)
		return false;
	msgpack_unpacked_init(&u);
	j = JSON_INIT(f);
	if (msgpack_unpack_next(&u, mp, len, NULL) == MSGPACK_UNPACK_SUCCESS)
		convctl_json_value(&j, &u.data);
	msgpack_unpacked_destroy(&u);
	if (fclose(f) != 0 || *jlen == 0 || j.replaced > 0)
		goto out;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	same = jsonmp_pack(*json, *jlen, &pk, err, sizeof(err)) == 0 &&
	       sb.size == len && memcmp(sb.data, mp, len) == 0;
	msgpack_sbuffer_destroy(&sb);
out:
	if (!same) {
		free(*json);
		*json = NULL;
	}
	return same;
}

static void put_opt_str(struct convctl_ctx *x, bool *first, const char *key,
			const char *val)
{
	if (val)
		json_kv_str(&x->json, first, key, val);
}

/*
 * The text of a message: for structured content, the one convd derives
 * and import checks (content.h: "text" strs that are UTF-8 without NUL),
 * which the text libconvclient gives need not be.
 */
static void put_text(struct convctl_ctx *x, const struct convc_row *r)
{
	char *text = r->content_mp ? malloc(r->content_mp_len + 1) : NULL;
	ssize_t n = text ? content_text((struct strview){
					       (const char *)r->content_mp,
					       r->content_mp_len },
				       text, r->content_mp_len + 1)
			 : -1;

	if (n >= 0)
		json_str(&x->json, text, (size_t)n);
	else
		json_str(&x->json, r->content, r->content_len);
	free(text);
}

/* One message as a line of convctl(1) EXPORT FORMAT. */
static void put_row(struct convctl_ctx *x, const char *user,
		    const char *platform, const struct convc_row *r)
{
	bool first = true;

	fputc('{', x->out);
	json_kv_int(&x->json, &first, "id", r->id);
	json_kv_str(&x->json, &first, "user_id", user);
	json_kv_str(&x->json, &first, "platform", platform);
	json_kv_str(&x->json, &first, "provider", r->provider);
	put_opt_str(x, &first, "conversation_id", r->conversation_id);
	json_kv_str(&x->json, &first, "role", r->role);
	json_key(&x->json, &first, "content");
	put_text(x, r);
	if (r->content_mp) {
		json_key(&x->json, &first, "content_mp");
		put_b64(x->out, r->content_mp, r->content_mp_len);
	}
	json_key(&x->json, &first, "created_at");
	convctl_json_time(&x->json, r->created_at_usec);
	put_opt_str(x, &first, "tool_call_id", r->tool_call_id);
	put_opt_str(x, &first, "name", r->name);
	put_opt_str(x, &first, "model", r->model);
	if (r->has_tokens)
		json_kv_int(&x->json, &first, "tokens", r->tokens);
	if (r->metadata_mp) {
		char *js;
		size_t jn;

		if (metadata_json(r->metadata_mp, r->metadata_mp_len, &js,
				  &jn)) {
			json_key(&x->json, &first, "metadata");
			fwrite(js, 1, jn, x->out);
			free(js);
		} else {
			json_key(&x->json, &first, "metadata_mp");
			put_b64(x->out, r->metadata_mp, r->metadata_mp_len);
		}
	}
	put_opt_str(x, &first, "idempotency_key", r->idempotency_key);
	fputs("}\n", x->out);
}

/*
 * One message per line, oldest first (id order), all of the user's
 * history on the platform (with --provider, that provider's only; with
 * --conversation, that conversation's only), every field of it, fetched
 * a page at a time: up to EXPORT_PAGE messages, fewer when they are large
 * (convd keeps a page within max_output_bytes), until a page is empty.
 * Always JSON Lines: --json changes nothing.
 */
int convctl_transfer_export(struct convctl_ctx *x, int argc CONVD_UNUSED,
			    char **argv CONVD_UNUSED)
{
	const char *platform = x->o->platform ? x->o->platform : "line";
	struct convc_error e;
	int64_t after = 0;

	for (;;) {
		struct convc_row *rows;
		size_t n;
		int st = convc_export_history_ex(x->c, argv[1], x->o->provider,
						 x->o->conversation,
						 x->o->platform, after,
						 EXPORT_PAGE, &rows, &n, &e);

		if (st != CONVC_OK)
			return convctl_conn_report(st, &e);
		for (size_t i = 0; i < n; i++)
			put_row(x, argv[1], platform, &rows[i]);
		if (n > 0)
			after = rows[n - 1].id;
		convc_rows_free(rows, n);
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
 * with every field (convctl_import.h).  A message that is already stored
 * (with the same key for the user and platform; without a key, equal as
 * import_message compares them) is skipped, so a file can be imported
 * again.  The first bad line (a member it does not know included) or
 * error stops the import, naming the line; what was stored before it
 * stays.
 */
int convctl_transfer_import(struct convctl_ctx *x, int argc CONVD_UNUSED,
			    char **argv CONVD_UNUSED)
{
	struct buf line = { 0 };
	int64_t imported = 0, skipped = 0, lineno = 0;
	int rc = EXIT_SUCCESS;

	for (;;) {
		struct convctl_import_row row;
		struct convc_message_opts opts;
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
		opts = (struct convc_message_opts){
			.platform = row.platform ? row.platform
						 : x->o->platform,
			.conversation_id = row.conversation_id,
			.idempotency_key = row.idempotency_key,
			.content_mp = row.content_mp,
			.content_mp_len = row.content_mp_len,
			.tool_call_id = row.tool_call_id,
			.name = row.name,
			.model = row.model,
			.has_tokens = row.has_tokens,
			.tokens = row.tokens,
			.metadata_mp = row.metadata_mp,
			.metadata_mp_len = row.metadata_mp_len,
		};
		st = convc_import_message_ex(x->c, row.user_id, row.provider,
					     row.role,
					     row.content_mp ? NULL : row.content,
					     row.content_len, at, &opts, NULL,
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
