/*
 * convctl_table.c - convctl's command table: one row per command, in the
 * order of `convctl help` (convctl.h: adding a command).
 */
#include <string.h>

#include "convctl.h"
#include "convctl_cmd.h"

#define T CONVCTL_DEFAULT_TIMEOUT_S

const struct convctl_command convctl_table[] = {
	{ "ping", 0, 0, 0, T, "ping",
	  "ping\tcheck that convd answers", convctl_admin_ping, NULL },
	{ "add", 4, 4, 0, T, "add USER PROVIDER ROLE TEXT|-",
	  "add USER PROVIDER ROLE TEXT|-\tstore a message (- reads TEXT from "
	  "stdin)",
	  convctl_history_add, NULL },
	{ "history", 2, 2, CONVCTL_OPT_LIMIT, T,
	  "history USER PROVIDER [-n LIMIT]",
	  "history USER PROVIDER [-n LIMIT]\trecent messages, oldest first "
	  "(LIMIT turns)",
	  convctl_history_show, NULL },
	{ "clear", 2, 2, 0, T, "clear USER PROVIDER",
	  "clear USER PROVIDER\tdelete a user's history for a provider",
	  convctl_history_clear, NULL },
	{ "count", 1, 2, 0, T, "count USER [PROVIDER]",
	  "count USER [PROVIDER]\tnumber of stored messages",
	  convctl_history_count, NULL },
	{ "stats-user", 1, 1, 0, T, "stats-user USER",
	  "stats-user USER\tmessages per provider",
	  convctl_history_user_stats, NULL },
	{ "thread", 2, 3, 0, T, "thread get|set|delete USER [THREAD]",
	  "thread get USER\tthe user's thread id\n"
	  "thread set USER THREAD\tsave the user's thread id\n"
	  "thread delete USER\tforget the user's thread id",
	  convctl_thread_run, convctl_thread_check },
	{ "cleanup", 0, 0, CONVCTL_OPT_DAYS | CONVCTL_OPT_DRY_RUN, 0,
	  "cleanup [--days N] [--dry-run]",
	  "cleanup [--days N] [--dry-run]\tdelete messages older than N days "
	  "(admin)",
	  convctl_admin_cleanup, NULL },
	{ "export", 1, 1, CONVCTL_OPT_PROVIDER, T, "export USER [--provider P]",
	  "export USER [--provider P]\tthe user's whole history as JSON Lines",
	  convctl_transfer_export, NULL },
	{ "import", 0, 0, 0, T, "import",
	  "import\tstore JSON Lines from stdin, times kept (admin)",
	  convctl_transfer_import, NULL },
	{ "stats", 0, 0, CONVCTL_OPT_PROMETHEUS, T, "stats [--prometheus]",
	  "stats [--prometheus]\tdaemon statistics",
	  convctl_admin_stats, NULL },
	{ "health", 0, 0, 0, T, "health",
	  "health\tdatabase and schema state (exit 1 if not ok)",
	  convctl_admin_health, NULL },
	/* run by main(): no handler */
	{ "db", 0, 0, 0, 0, "db SUBCOMMAND ...",
	  "db SUBCOMMAND ...\tschema migrations (see convctl(1))", NULL, NULL },
	{ "help", 0, 0, 0, 0, "help", "help\tthis text", NULL, NULL },
};

const size_t convctl_table_len = ARRAY_LEN(convctl_table);

const struct convctl_command *convctl_table_find(const char *name)
{
	for (size_t i = 0; i < convctl_table_len; i++)
		if (convctl_table[i].run &&
		    strcmp(convctl_table[i].name, name) == 0)
			return &convctl_table[i];
	return NULL;
}
