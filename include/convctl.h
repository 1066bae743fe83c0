/*
 * convctl.h - the convctl command: its options, the context a command
 * runs in, and the command table (src/convctl_table.c).
 *
 * Adding a command: write its handler in a new file src/convctl_NAME.c
 * (declared in include/convctl_cmd.h), add one row to the table in
 * src/convctl_table.c (name, operands, options, timeout, synopsis, help
 * lines, handler), and list the file in Makefile.am.  Parsing, the usage
 * errors, `convctl help`, `convctl CMD --help` and the connection all
 * come from the row.
 *
 * Exit status: 0 ok, 1 error from the daemon (or a local failure such as
 * running out of memory), 2 usage error, 3 cannot reach the daemon.
 */
#ifndef CONVD_CONVCTL_H
#define CONVD_CONVCTL_H

#include <stdio.h>

#include "common.h"
#include "convd/client.h"
#include "json.h"

#define CONVCTL_EXIT_DAEMON 1
#define CONVCTL_EXIT_USAGE 2
#define CONVCTL_EXIT_UNREACHABLE 3

/* add ... -: the text read from stdin; import: one line */
#define CONVCTL_MAX_STDIN_TEXT ((size_t)64 << 20)
#define CONVCTL_DEFAULT_TIMEOUT_S 60
#define CONVCTL_MAX_TIMEOUT_S 86400

/* The options of one run (global ones and those of commands). */
struct convctl_options {
	const char *socket;
	const char *config;
	const char *platform;
	bool json;
	bool timeout_set;
	int64_t timeout_s;
	/* command options */
	bool limit_set;
	int64_t limit;
	bool days_set;
	int64_t days;
	bool prometheus;
	const char *provider;			/* export --provider */
	bool dry_run;				/* cleanup --dry-run */
	/* issue 17 */
	const char *conversation;		/* --conversation */
	bool expected_version_set;		/* state set --expected-version */
	int64_t expected_version;
	/* issue 18: context, messages, search, forget */
	bool before_set;			/* messages --before */
	int64_t before;
	bool system;				/* context --system */
	bool yes;				/* forget --yes */
	/* add: the optional fields of a message (issue 17) */
	const char *tool_call_id;		/* --tool-call-id */
	const char *name;			/* --name */
	const char *model;			/* --model */
	bool tokens_set;			/* --tokens */
	int64_t tokens;
	const char *metadata;			/* --metadata JSON */
	bool structured;			/* --structured: TEXT is JSON */
};

/* Command options a command accepts (convctl_command.opts). */
#define CONVCTL_OPT_LIMIT 1u			/* -n, --limit */
#define CONVCTL_OPT_DAYS 2u			/* --days */
#define CONVCTL_OPT_PROMETHEUS 4u		/* --prometheus */
#define CONVCTL_OPT_PROVIDER 8u			/* --provider */
#define CONVCTL_OPT_DRY_RUN 16u			/* --dry-run */
#define CONVCTL_OPT_CONVERSATION 32u		/* --conversation */
#define CONVCTL_OPT_EXPECTED 64u		/* --expected-version */
#define CONVCTL_OPT_BEFORE 128u			/* --before */
#define CONVCTL_OPT_SYSTEM 256u			/* --system */
#define CONVCTL_OPT_YES 512u			/* --yes */
#define CONVCTL_OPT_TOOL_CALL_ID 1024u		/* --tool-call-id */
#define CONVCTL_OPT_NAME 2048u			/* --name */
#define CONVCTL_OPT_MODEL 4096u			/* --model */
#define CONVCTL_OPT_TOKENS 8192u		/* --tokens */
#define CONVCTL_OPT_METADATA 16384u		/* --metadata */
#define CONVCTL_OPT_STRUCTURED 32768u		/* --structured */
/* add: every field of a message */
#define CONVCTL_OPT_FIELDS                                                     \
	(CONVCTL_OPT_TOOL_CALL_ID | CONVCTL_OPT_NAME | CONVCTL_OPT_MODEL |    \
	 CONVCTL_OPT_TOKENS | CONVCTL_OPT_METADATA | CONVCTL_OPT_STRUCTURED)

/* What a command runs with: the options, the open connection, stdout,
 * and the JSON writer on stdout (json.h). */
struct convctl_ctx {
	const struct convctl_options *o;
	struct convc *c;
	FILE *out;
	struct json json;
};

struct convctl_command {
	const char *name;
	int min_args, max_args;		/* operands after the name */
	unsigned opts;			/* CONVCTL_OPT_* allowed */
	int default_timeout_s;		/* 0: no limit */
	const char *synopsis;		/* usage errors, `convctl CMD -h` */
	/* `convctl help`: lines of "USAGE\tWHAT IT DOES", '\n'-separated */
	const char *help;
	/*
	 * Runs the command; argv[0] is its name, argv[1..argc) the operands.
	 * NULL for `db` and `help`, which main() runs itself.  Returns the
	 * exit status.
	 */
	int (*run)(struct convctl_ctx *x, int argc, char **argv);
	/* Optional: checks the operands further (nargs of them at args),
	 * printing the usage error; false refuses the command line. */
	bool (*check)(const struct convctl_command *cmd, int nargs,
		      char **args);
};

/* The command table, in the order of `convctl help`. */
extern const struct convctl_command convctl_table[];
extern const size_t convctl_table_len;

/* The command called name (with a handler), or NULL. */
const struct convctl_command *convctl_table_find(const char *name);

extern const char convctl_progname[];

/* Prints "convctl: MESSAGE", the synopsis and a hint; returns
 * CONVCTL_EXIT_USAGE. */
int convctl_usage_error(const char *fmt, ...) CONVD_PRINTF(1, 2);

/* Prints "convctl: out of memory"; returns EXIT_FAILURE. */
int convctl_nomem(void);

/* `convctl help`: the synopsis, the commands (the table's help lines) and
 * the options. */
void convctl_print_help(FILE *f);

enum convctl_parse {
	CONVCTL_PARSE_OK,
	CONVCTL_PARSE_HELP,
	CONVCTL_PARSE_VERSION,
	CONVCTL_PARSE_ERROR,		/* message printed; exit 2 */
};

/*
 * One getopt pass over argv (argv[0] is skipped).  With `stop_at_operand`
 * it stops at the first operand (the command); otherwise options and
 * operands may be mixed and the operands end up at argv[*first..argc).
 * *seen collects the CONVCTL_OPT_* options given.
 */
enum convctl_parse convctl_parse_options(int argc, char **argv,
					 bool stop_at_operand,
					 struct convctl_options *o,
					 unsigned *seen, int *first);

/* Checks a command's operands (nargs at args) and the command options
 * given (seen); prints the usage error. */
bool convctl_check_command(const struct convctl_command *cmd, int nargs,
			   char **args, unsigned seen,
			   const struct convctl_options *o);

#endif
