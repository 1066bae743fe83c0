/*
 * convctl_thread.c - `convctl thread get|set|delete`: the user's thread
 * id.
 */
#include <stdlib.h>
#include <string.h>

#include "convctl_cmd.h"
#include "convctl_conn.h"
#include "convctl_json.h"
#include "convctl_text.h"

int convctl_thread_run(struct convctl_ctx *x, int argc CONVD_UNUSED,
		       char **argv CONVD_UNUSED)
{
	struct convc_error e;
	const char *sub = argv[1];
	int st;

	if (strcmp(sub, "get") == 0) {
		char *tid;

		st = convc_get_thread(x->c, argv[2], x->o->platform, &tid, &e);
		if (st != CONVC_OK)
			return convctl_conn_report(st, &e);
		if (x->o->json) {
			fputs("{\"thread_id\":", x->out);
			json_cstr(&x->json, tid);
			fputs("}\n", x->out);
		} else if (tid) {
			convctl_text_cstr(x->out, tid);
			fputc('\n', x->out);
		} else {
			fputs("(no thread)\n", x->out);
		}
		free(tid);
	} else if (strcmp(sub, "set") == 0) {
		st = convc_save_thread(x->c, argv[2], argv[3], x->o->platform,
				       &e);
		if (st != CONVC_OK)
			return convctl_conn_report(st, &e);
		fputs(x->o->json ? "{\"saved\":true}\n" : "thread saved\n",
		      x->out);
	} else {
		int64_t deleted;

		st = convc_delete_thread(x->c, argv[2], x->o->platform,
					 &deleted, &e);
		if (st != CONVC_OK)
			return convctl_conn_report(st, &e);
		convctl_text_deleted(x, deleted, "thread");
	}
	return EXIT_SUCCESS;
}

/* get USER, set USER THREAD, delete USER. */
bool convctl_thread_check(const struct convctl_command *cmd, int nargs,
			  char **args)
{
	const char *sub = args[0];
	int want = strcmp(sub, "set") == 0 ? 3 : 2;

	if (strcmp(sub, "get") && strcmp(sub, "set") && strcmp(sub, "delete")) {
		convctl_usage_error("thread: unknown subcommand '%s' (usage: "
				    "convctl %s)",
				    sub, cmd->synopsis);
		return false;
	}
	if (nargs != want) {
		convctl_usage_error("wrong number of arguments (usage: convctl "
				    "thread %s)",
				    want == 3 ? "set USER THREAD"
				    : strcmp(sub, "get") == 0 ? "get USER"
							      : "delete USER");
		return false;
	}
	return true;
}
