/*
 * convctl_cmd.h - the handlers of convctl's commands, one section per
 * src/convctl_*.c file of commands.  Each is a row's `run` (or `check`)
 * in the command table (src/convctl_table.c; convctl.h says how).
 */
#ifndef CONVD_CONVCTL_CMD_H
#define CONVD_CONVCTL_CMD_H

#include "convctl.h"

/* --- convctl_admin.c: ping, cleanup, stats, health */
int convctl_admin_ping(struct convctl_ctx *x, int argc, char **argv);
int convctl_admin_cleanup(struct convctl_ctx *x, int argc, char **argv);
int convctl_admin_stats(struct convctl_ctx *x, int argc, char **argv);
int convctl_admin_health(struct convctl_ctx *x, int argc, char **argv);

/* --- convctl_history.c: add, clear, count, delete-conversation,
 * stats-user */
int convctl_history_add(struct convctl_ctx *x, int argc, char **argv);
int convctl_history_clear(struct convctl_ctx *x, int argc, char **argv);
int convctl_history_count(struct convctl_ctx *x, int argc, char **argv);
int convctl_history_delete_conversation(struct convctl_ctx *x, int argc,
					char **argv);
int convctl_history_user_stats(struct convctl_ctx *x, int argc, char **argv);

/* --- convctl_thread.c: thread get|set|delete */
int convctl_thread_run(struct convctl_ctx *x, int argc, char **argv);
bool convctl_thread_check(const struct convctl_command *cmd, int nargs,
			  char **args);

/* --- convctl_transfer.c: export, import (JSON Lines) */
int convctl_transfer_export(struct convctl_ctx *x, int argc, char **argv);
int convctl_transfer_import(struct convctl_ctx *x, int argc, char **argv);

/* --- convctl_conv.c: conversations, state get|set, history (issue 17) */
int convctl_conv_list(struct convctl_ctx *x, int argc, char **argv);
int convctl_conv_state(struct convctl_ctx *x, int argc, char **argv);
bool convctl_conv_state_check(const struct convctl_command *cmd, int nargs,
			      char **args);
int convctl_conv_history(struct convctl_ctx *x, int argc, char **argv);

/* --- convctl_retrieve.c: context, messages, search, forget (issue 18) */
int convctl_retrieve_context(struct convctl_ctx *x, int argc, char **argv);
int convctl_retrieve_messages(struct convctl_ctx *x, int argc, char **argv);
int convctl_retrieve_search(struct convctl_ctx *x, int argc, char **argv);
int convctl_retrieve_forget(struct convctl_ctx *x, int argc, char **argv);

#endif
