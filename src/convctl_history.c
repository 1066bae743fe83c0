/*
 * convctl_history.c - convctl's commands on a user's history: add (with
 * every field of a message), clear, count, delete-conversation and
 * stats-user (history: convctl_conv.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "convctl_cmd.h"
#include "convctl_conn.h"
#include "convctl_json.h"
#include "convctl_text.h"
#include "convctl_time.h"
#include "jsonmp.h"

/* Reads all of stdin (at most CONVCTL_MAX_STDIN_TEXT bytes) and removes
 * one trailing newline. */
static int read_stdin(char **text, size_t *len)
{
	/* Up to two bytes more: a newline to strip, then "too large". */
	const size_t limit = CONVCTL_MAX_STDIN_TEXT + 2;
	size_t cap = 65536, n = 0;
	char *p = malloc(cap);

	if (!p)
		return convctl_nomem();
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
				return convctl_nomem();
			}
			p = q;
		}
		got = fread(p + n, 1, cap - n, stdin);
		n += got;
		if (got == 0) {
			if (ferror(stdin)) {
				fprintf(stderr,
					"%s: reading standard input: %s\n",
					convctl_progname, strerror(errno));
				free(p);
				return EXIT_FAILURE;
			}
			break;
		}
	}
	if (n > 0 && p[n - 1] == '\n')
		n--;
	if (n > CONVCTL_MAX_STDIN_TEXT) {
		free(p);
		fprintf(stderr, "%s: standard input is larger than %zu MiB\n",
			convctl_progname, CONVCTL_MAX_STDIN_TEXT >> 20);
		return CONVCTL_EXIT_USAGE;
	}
	*text = p;
	*len = n;
	return EXIT_SUCCESS;
}

/* JSON text packed as msgpack into sb (initialized here; destroyed by
 * the caller), checked to be of the kind the option needs; 0, or an
 * exit status after the usage error. */
static int pack_json(const char *what, const char *text, size_t len,
		     bool map_only, msgpack_sbuffer *sb)
{
	msgpack_packer pk;
	char err[160];
	unsigned char t;

	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	if (jsonmp_pack(text, len, &pk, err, sizeof(err)) < 0)
		return convctl_usage_error("%s: not JSON: %s", what, err);
	t = sb->size > 0 ? (unsigned char)sb->data[0] : 0;
	if ((t & 0xF0) == 0x80 || t == 0xDE || t == 0xDF)
		return 0;
	if (!map_only && ((t & 0xF0) == 0x90 || t == 0xDC || t == 0xDD))
		return 0;
	return convctl_usage_error("%s: not a JSON %s", what,
				   map_only ? "object" : "array or object");
}

int convctl_history_add(struct convctl_ctx *x, int argc CONVD_UNUSED,
			char **argv CONVD_UNUSED)
{
	const struct convctl_options *o = x->o;
	struct convc_message_opts mo = {
		.platform = o->platform,
		.conversation_id = o->conversation,
		.tool_call_id = o->tool_call_id,
		.name = o->name,
		.model = o->model,
		.has_tokens = o->tokens_set,
		.tokens = o->tokens,
	};
	msgpack_sbuffer content_sb = { 0 }, meta_sb = { 0 };
	struct convc_error e;
	char *text = NULL;
	const char *content = argv[4];
	size_t len = strlen(argv[4]);
	int64_t id, at;
	char tbuf[64];
	int st, rc = EXIT_SUCCESS;

	if (strcmp(argv[4], "-") == 0) {
		rc = read_stdin(&text, &len);
		if (rc != EXIT_SUCCESS)
			return rc;
		content = text;
	}
	if (o->structured) {
		rc = pack_json("--structured TEXT", content, len, false,
			       &content_sb);
		if (rc)
			goto out;
		mo.content_mp = content_sb.data;
		mo.content_mp_len = content_sb.size;
		content = NULL;
		len = 0;
	}
	if (o->metadata) {
		rc = pack_json("--metadata", o->metadata, strlen(o->metadata),
			       true, &meta_sb);
		if (rc)
			goto out;
		mo.metadata_mp = meta_sb.data;
		mo.metadata_mp_len = meta_sb.size;
	}
	st = convc_add_message_ex(x->c, argv[1], argv[2], argv[3], content,
				  len, &mo, &id, &at, NULL, &e);
	if (st != CONVC_OK) {
		rc = convctl_conn_report(st, &e);
		goto out;
	}
	if (x->o->json) {
		fprintf(x->out, "{\"id\":%" PRId64 ",\"created_at\":", id);
		convctl_json_time(&x->json, at);
		fputs("}\n", x->out);
	} else {
		convctl_time_format(tbuf, sizeof(tbuf), at, 3);
		fprintf(x->out, "added message %" PRId64 " at %s\n", id, tbuf);
	}
out:
	msgpack_sbuffer_destroy(&content_sb);
	msgpack_sbuffer_destroy(&meta_sb);
	free(text);
	return rc;
}

/* The default conversation only, unless --conversation names one: the
 * protocol's meaning (convd-protocol(7) clear_user_history). */
int convctl_history_clear(struct convctl_ctx *x, int argc CONVD_UNUSED,
			  char **argv CONVD_UNUSED)
{
	struct convc_error e;
	int64_t deleted;
	int st = convc_clear_user_history_ex(x->c, argv[1], argv[2],
					     x->o->conversation, x->o->platform,
					     &deleted, &e);

	if (st != CONVC_OK)
		return convctl_conn_report(st, &e);
	convctl_text_deleted(x, deleted, "message");
	return EXIT_SUCCESS;
}

/* As clear: the default conversation unless --conversation. */
int convctl_history_count(struct convctl_ctx *x, int argc CONVD_UNUSED,
			  char **argv CONVD_UNUSED)
{
	struct convc_error e;
	int64_t count;
	int st = convc_get_conversation_count_ex(x->c, argv[1],
						 argc > 2 ? argv[2] : NULL,
						 x->o->conversation,
						 x->o->platform, &count, &e);

	if (st != CONVC_OK)
		return convctl_conn_report(st, &e);
	if (x->o->json)
		fprintf(x->out, "{\"count\":%" PRId64 "}\n", count);
	else
		fprintf(x->out, "%" PRId64 "\n", count);
	return EXIT_SUCCESS;
}

int convctl_history_delete_conversation(struct convctl_ctx *x,
					int argc CONVD_UNUSED, char **argv)
{
	struct convc_error e;
	int64_t deleted;
	int st = convc_delete_conversation(x->c, argv[1], argv[2], argv[3],
					   x->o->platform, &deleted, &e);

	if (st != CONVC_OK)
		return convctl_conn_report(st, &e);
	convctl_text_deleted(x, deleted, "message");
	return EXIT_SUCCESS;
}

int convctl_history_user_stats(struct convctl_ctx *x, int argc CONVD_UNUSED,
			       char **argv CONVD_UNUSED)
{
	struct convc_error e;
	struct convc_user_stats s;
	size_t namew = 8;
	int st = convc_get_user_statistics(x->c, argv[1], x->o->platform, &s,
					   &e);

	if (st != CONVC_OK)
		return convctl_conn_report(st, &e);
	if (x->o->json) {
		fprintf(x->out, "{\"total_messages\":%" PRId64
			",\"providers\":{", s.total_messages);
		for (size_t i = 0; i < s.nproviders; i++) {
			const struct convc_provider_stats *p = &s.providers[i];

			if (i)
				fputc(',', x->out);
			json_cstr(&x->json, p->provider);
			fprintf(x->out, ":{\"message_count\":%" PRId64
				",\"last_message_at\":", p->message_count);
			if (p->has_last_message)
				convctl_json_time(&x->json,
						  p->last_message_at_usec);
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
		if (convctl_text_width(s.providers[i].provider) > namew)
			namew = convctl_text_width(s.providers[i].provider);
	if (s.nproviders > 0)
		fprintf(x->out, "%-*s  %8s  %s\n", (int)namew, "PROVIDER",
			"MESSAGES", "LAST MESSAGE");
	for (size_t i = 0; i < s.nproviders; i++) {
		const struct convc_provider_stats *p = &s.providers[i];
		char tbuf[64] = "-";

		if (p->has_last_message)
			convctl_time_format(tbuf, sizeof(tbuf),
					    p->last_message_at_usec, 3);
		convctl_text_cstr(x->out, p->provider);
		fprintf(x->out, "%*s  %8" PRId64 "  %s\n",
			(int)(namew - convctl_text_width(p->provider)), "",
			p->message_count, tbuf);
	}
	convc_user_stats_free(&s);
	return EXIT_SUCCESS;
}
