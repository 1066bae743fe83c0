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
	{ "add", 4, 4, CONVCTL_OPT_CONVERSATION | CONVCTL_OPT_FIELDS, T,
	  "add USER PROVIDER ROLE TEXT|- [--conversation ID] "
	  "[--tool-call-id ID] [--name NAME] [--model MODEL] [--tokens N] "
	  "[--metadata JSON] [--structured]",
	  "add USER PROVIDER ROLE TEXT|-\tstore a message (- reads TEXT from "
	  "stdin; fields: convctl(1))",
	  convctl_history_add, NULL },
	{ "history", 2, 2, CONVCTL_OPT_LIMIT | CONVCTL_OPT_CONVERSATION, T,
	  "history USER PROVIDER [-n LIMIT] [--conversation ID]",
	  "history USER PROVIDER [-n LIMIT] [--conversation ID]\trecent "
	  "messages, oldest first (LIMIT turns), tool calls and structured "
	  "content included",
	  convctl_conv_history, NULL },
	{ "clear", 2, 2, CONVCTL_OPT_CONVERSATION, T,
	  "clear USER PROVIDER [--conversation ID]",
	  "clear USER PROVIDER\tdelete the default conversation's messages "
	  "(or --conversation's)",
	  convctl_history_clear, NULL },
	{ "count", 1, 2, CONVCTL_OPT_CONVERSATION, T,
	  "count USER [PROVIDER] [--conversation ID]",
	  "count USER [PROVIDER]\tmessages in the default conversation (or "
	  "--conversation's)",
	  convctl_history_count, NULL },
	{ "delete-conversation", 3, 3, 0, T,
	  "delete-conversation USER PROVIDER CONVERSATION",
	  "delete-conversation USER PROVIDER CONVERSATION\tdelete a named "
	  "conversation and its state",
	  convctl_history_delete_conversation, NULL },
	{ "stats-user", 1, 1, 0, T, "stats-user USER",
	  "stats-user USER\tmessages per provider",
	  convctl_history_user_stats, NULL },
	{ "thread", 2, 3, 0, T, "thread get|set|delete USER [THREAD]",
	  "thread get USER\tthe user's thread id\n"
	  "thread set USER THREAD\tsave the user's thread id\n"
	  "thread delete USER\tforget the user's thread id",
	  convctl_thread_run, convctl_thread_check },
	/* issue 17 */
	{ "conversations", 1, 1, CONVCTL_OPT_PROVIDER | CONVCTL_OPT_LIMIT, T,
	  "conversations USER [--provider P] [-n PAGE]",
	  "conversations USER [--provider P]\tthe user's conversations, "
	  "newest activity first",
	  convctl_conv_list, NULL },
	{ "state", 3, 5, CONVCTL_OPT_CONVERSATION | CONVCTL_OPT_EXPECTED, T,
	  "state get|set USER PROVIDER [JSON [METADATA]] [--conversation ID] "
	  "[--expected-version N]",
	  "state get USER PROVIDER\tthe conversation's provider state\n"
	  "state set USER PROVIDER JSON [METADATA]\treplace it (JSON "
	  "objects; --expected-version N: only at version N)",
	  convctl_conv_state, convctl_conv_state_check },
	{ "cleanup", 0, 0, CONVCTL_OPT_DAYS | CONVCTL_OPT_DRY_RUN, 0,
	  "cleanup [--days N] [--dry-run]",
	  "cleanup [--days N] [--dry-run]\tdelete messages older than N days "
	  "(admin)",
	  convctl_admin_cleanup, NULL },
	{ "export", 1, 1, CONVCTL_OPT_PROVIDER | CONVCTL_OPT_CONVERSATION, T,
	  "export USER [--provider P] [--conversation ID]",
	  "export USER [--provider P]\tthe user's whole history, every "
	  "field, as JSON Lines",
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
	{ "context", 3, 3,
	  CONVCTL_OPT_CONVERSATION | CONVCTL_OPT_SYSTEM | CONVCTL_OPT_LIMIT, T,
	  "context USER PROVIDER MAX_TOKENS [--conversation C] [--system] "
	  "[-n MAX]",
	  "context USER PROVIDER MAX_TOKENS\tthe newest messages within "
	  "MAX_TOKENS, tool calls whole",
	  convctl_retrieve_context, NULL },
	{ "messages", 2, 2,
	  CONVCTL_OPT_CONVERSATION | CONVCTL_OPT_BEFORE | CONVCTL_OPT_LIMIT, T,
	  "messages USER PROVIDER [--conversation C] [--before ID] [-n LIMIT]",
	  "messages USER PROVIDER [--before ID]\ta page of messages, older "
	  "than ID",
	  convctl_retrieve_messages, NULL },
	{ "search", 2, 2,
	  CONVCTL_OPT_PROVIDER | CONVCTL_OPT_CONVERSATION | CONVCTL_OPT_LIMIT, T,
	  "search USER QUERY [--provider P] [--conversation C] [-n LIMIT]",
	  "search USER QUERY\tthe user's messages containing QUERY, newest "
	  "first",
	  convctl_retrieve_search, NULL },
	{ "forget", 1, 1, CONVCTL_OPT_YES, T, "forget USER [--yes]",
	  "forget USER [--yes]\tdelete everything of USER (admin; asks "
	  "unless --yes)",
	  convctl_retrieve_forget, NULL },
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
