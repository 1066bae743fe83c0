/*
 * convctl.c - the command-line client of convd: its options, `convctl
 * help`, usage errors and the checks of a command line (main() is in
 * convctl_main.c).
 *
 *   convctl [-s SOCKET] [-c FILE] [--json] [--platform P] [-t SECONDS]
 *           COMMAND [ARGS]
 *
 * Every command but `db` talks to convd through the client library
 * (include/convd/client.h); the commands are the rows of convctl_table
 * (src/convctl_table.c), their handlers in src/convctl_*.c; `db ...` is
 * handed to dbcmd_main.  Output is a readable table or listing for
 * people, or with --json one line of stable JSON (shapes documented in
 * convctl(1)).
 *
 * Exit status: 0 ok, 1 error from the daemon (or a local failure such as
 * running out of memory), 2 usage error, 3 cannot reach the daemon
 * (connect failure, timeout, connection closed, protocol error).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoconfig.h"
#include "convctl.h"

const char convctl_progname[] = "convctl";

/* ------------------------------------------------------------------ */
/* Usage */

static const char usage_synopsis[] =
	"usage: convctl [-s SOCKET] [-c FILE] [--json] [--platform P] "
	"[-t SECONDS] COMMAND [ARGS]\n";

static const char usage_options[] =
	"\n"
	"Options:\n"
	"  -s, --socket PATH     convd's socket (default: $CONVD_SOCKET, else "
	"the\n"
	"                        [server] socket of -c FILE, else "
	CONVD_DEFAULT_SOCKET ")\n"
	"  -c, --config FILE     convd's configuration file\n"
	"      --json            print JSON instead of text\n"
	"      --platform NAME   platform of the user (default: line; forget:\n"
	"                        every platform)\n"
	"  -t, --timeout SECS    give up after SECS seconds (0: never; default "
	"60,\n"
	"                        none for cleanup)\n"
	"  -n, --limit LIMIT     history: number of turns, 1 to 1000 (default "
	"10);\n"
	"                        messages, search: rows; context: messages\n"
	"      --days N          cleanup: keep N days, 0 to 36500 (default: "
	"convd's)\n"
	"      --dry-run         cleanup: count what would be deleted, delete "
	"nothing\n"
	"      --prometheus      stats: Prometheus text format\n"
	"      --provider NAME   export, search: only the messages with this "
	"provider;\n"
	"                        conversations: only this provider's\n"
	"      --conversation ID history, state, context, messages, search: that\n"
	"                        conversation (default: the default one; search:\n"
	"                        every one)\n"
	"      --expected-version N  state set: only if the state's version is "
	"N\n"
	"                        (0: only if there is none)\n"
	"      --before ID       messages: the page older than message ID\n"
	"      --system          context: the system messages first\n"
	"      --yes             forget: do not ask\n"
	"      --tool-call-id ID add: the tool call a tool result answers\n"
	"      --name NAME       add: the name of the author (a tool, a "
	"participant)\n"
	"      --model MODEL     add: the model that wrote the message\n"
	"      --tokens N        add: its tokens, 0 to 2147483647\n"
	"      --metadata JSON   add: a JSON object kept with the message\n"
	"      --structured      add: TEXT is JSON (an array or object), stored "
	"as\n"
	"                        structured content\n"
	"  -h, --help            this text\n"
	"  -V, --version         print the version\n"
	"\n"
	"Exit status: 0 ok, 1 error from convd, 2 usage error, 3 cannot reach "
	"convd.\n";

/* The column where a command's description starts in `convctl help`. */
#define HELP_COLUMN 36

/* The synopsis, the commands (the help lines of the table) and the
 * options. */
void convctl_print_help(FILE *f)
{
	fputs(usage_synopsis, f);
	fputs("\nCommands:\n", f);
	for (size_t i = 0; i < convctl_table_len; i++) {
		const char *line = convctl_table[i].help;

		while (*line) {
			size_t n = strcspn(line, "\n");
			size_t u = strcspn(line, "\t");

			if (u > n)
				u = n;	/* no description */
			fprintf(f, "  %.*s", (int)u, line);
			if (u < n) {
				if (2 + u + 2 > HELP_COLUMN)
					fprintf(f, "\n%*s", HELP_COLUMN, "");
				else
					fprintf(f, "%*s",
						(int)(HELP_COLUMN - 2 - u), "");
				fprintf(f, "%.*s", (int)(n - u - 1),
					line + u + 1);
			}
			fputc('\n', f);
			line += n;
			if (*line)
				line++;
		}
	}
	fputs(usage_options, f);
}

int convctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", convctl_progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage_synopsis, stderr);
	fprintf(stderr, "Try '%s help' for more information.\n",
		convctl_progname);
	return CONVCTL_EXIT_USAGE;
}

int convctl_nomem(void)
{
	fprintf(stderr, "%s: out of memory\n", convctl_progname);
	return EXIT_FAILURE;
}

/* ------------------------------------------------------------------ */
/* Strict numbers */

static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (!s || !((*s >= '0' && *s <= '9') ||
		    (*s == '-' && s[1] >= '0' && s[1] <= '9')))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* ------------------------------------------------------------------ */
/* Options */

enum {
	OPT_JSON = 0x100,
	OPT_PLATFORM,
	OPT_DAYS,
	OPT_PROMETHEUS,
	OPT_PROVIDER,
	OPT_DRY_RUN,
	OPT_CONVERSATION,
	OPT_EXPECTED,
	OPT_BEFORE,
	OPT_SYSTEM,
	OPT_YES,
	OPT_TOOL_CALL_ID,
	OPT_NAME,
	OPT_MODEL,
	OPT_TOKENS,
	OPT_METADATA,
	OPT_STRUCTURED,
};

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "config", required_argument, NULL, 'c' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "platform", required_argument, NULL, OPT_PLATFORM },
	{ "timeout", required_argument, NULL, 't' },
	{ "limit", required_argument, NULL, 'n' },
	{ "days", required_argument, NULL, OPT_DAYS },
	{ "prometheus", no_argument, NULL, OPT_PROMETHEUS },
	{ "dry-run", no_argument, NULL, OPT_DRY_RUN },
	{ "provider", required_argument, NULL, OPT_PROVIDER },
	{ "conversation", required_argument, NULL, OPT_CONVERSATION },
	{ "expected-version", required_argument, NULL, OPT_EXPECTED },
	{ "before", required_argument, NULL, OPT_BEFORE },
	{ "system", no_argument, NULL, OPT_SYSTEM },
	{ "yes", no_argument, NULL, OPT_YES },
	{ "tool-call-id", required_argument, NULL, OPT_TOOL_CALL_ID },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "tokens", required_argument, NULL, OPT_TOKENS },
	{ "metadata", required_argument, NULL, OPT_METADATA },
	{ "structured", no_argument, NULL, OPT_STRUCTURED },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

enum parse_result {
	PARSE_OK,
	PARSE_HELP,
	PARSE_VERSION,
	PARSE_ERROR,		/* message printed; exit 2 */
};

static const char *opt_name(int ch, char *buf, size_t len)
{
	for (const struct option *lo = long_opts; lo->name; lo++)
		if (lo->val == ch) {
			snprintf(buf, len, "--%s", lo->name);
			return buf;
		}
	snprintf(buf, len, "-%c", ch);
	return buf;
}

/*
 * One getopt pass over argv (argv[0] is skipped).  With `stop_at_operand`
 * it stops at the first operand (the command); otherwise options and
 * operands may be mixed and the operands end up at argv[*first..argc).
 * *seen collects the CONVCTL_OPT_* options given.
 */
static enum parse_result parse_options(int argc, char **argv,
				       bool stop_at_operand,
				       struct convctl_options *o,
				       unsigned *seen, int *first)
{
	const char *shortopts =
		stop_at_operand ? "+:s:c:t:n:hV" : ":s:c:t:n:hV";
	char nbuf[32];
	int ch;

	optind = 0;	/* glibc: full re-initialisation */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shortopts, long_opts, NULL)) !=
	       -1) {
		switch (ch) {
		case 's':
			if (!*optarg) {
				convctl_usage_error("empty socket path");
				return PARSE_ERROR;
			}
			o->socket = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_PLATFORM:
			o->platform = optarg;
			break;
		case 't':
			if (!parse_int(optarg, 0, CONVCTL_MAX_TIMEOUT_S,
				       &o->timeout_s)) {
				convctl_usage_error(
					"-t: '%s' is not a number of seconds "
					"from 0 to %d",
					optarg, CONVCTL_MAX_TIMEOUT_S);
				return PARSE_ERROR;
			}
			o->timeout_set = true;
			break;
		case 'n':
			if (!parse_int(optarg, 1, 1000, &o->limit)) {
				convctl_usage_error(
					"-n: '%s' is not a number from 1 "
					"to 1000",
					optarg);
				return PARSE_ERROR;
			}
			o->limit_set = true;
			*seen |= CONVCTL_OPT_LIMIT;
			break;
		case OPT_DAYS:
			if (!parse_int(optarg, 0, 36500, &o->days)) {
				convctl_usage_error(
					"--days: '%s' is not a number from 0 "
					"to 36500",
					optarg);
				return PARSE_ERROR;
			}
			o->days_set = true;
			*seen |= CONVCTL_OPT_DAYS;
			break;
		case OPT_PROMETHEUS:
			o->prometheus = true;
			*seen |= CONVCTL_OPT_PROMETHEUS;
			break;
		case OPT_PROVIDER:
			o->provider = optarg;
			*seen |= CONVCTL_OPT_PROVIDER;
			break;
		case OPT_DRY_RUN:
			o->dry_run = true;
			*seen |= CONVCTL_OPT_DRY_RUN;
			break;
		case OPT_CONVERSATION:
			o->conversation = optarg;
			*seen |= CONVCTL_OPT_CONVERSATION;
			break;
		case OPT_EXPECTED:
			if (!parse_int(optarg, 0, INT64_MAX - 1,
				       &o->expected_version)) {
				convctl_usage_error(
					"--expected-version: '%s' is not a "
					"version (0 or more)",
					optarg);
				return PARSE_ERROR;
			}
			o->expected_version_set = true;
			*seen |= CONVCTL_OPT_EXPECTED;
			break;
		case OPT_BEFORE:
			if (!parse_int(optarg, 1, INT64_MAX - 1, &o->before)) {
				convctl_usage_error(
					"--before: '%s' is not a message id",
					optarg);
				return PARSE_ERROR;
			}
			o->before_set = true;
			*seen |= CONVCTL_OPT_BEFORE;
			break;
		case OPT_SYSTEM:
			o->system = true;
			*seen |= CONVCTL_OPT_SYSTEM;
			break;
		case OPT_YES:
			o->yes = true;
			*seen |= CONVCTL_OPT_YES;
			break;
		case OPT_TOOL_CALL_ID:
			o->tool_call_id = optarg;
			*seen |= CONVCTL_OPT_TOOL_CALL_ID;
			break;
		case OPT_NAME:
			o->name = optarg;
			*seen |= CONVCTL_OPT_NAME;
			break;
		case OPT_MODEL:
			o->model = optarg;
			*seen |= CONVCTL_OPT_MODEL;
			break;
		case OPT_TOKENS:
			if (!parse_int(optarg, 0, INT32_MAX, &o->tokens)) {
				convctl_usage_error(
					"--tokens: '%s' is not a number from 0 "
					"to %d",
					optarg, INT32_MAX);
				return PARSE_ERROR;
			}
			o->tokens_set = true;
			*seen |= CONVCTL_OPT_TOKENS;
			break;
		case OPT_METADATA:
			o->metadata = optarg;
			*seen |= CONVCTL_OPT_METADATA;
			break;
		case OPT_STRUCTURED:
			o->structured = true;
			*seen |= CONVCTL_OPT_STRUCTURED;
			break;
		case 'h':
			return PARSE_HELP;
		case 'V':
			return PARSE_VERSION;
		case ':':
			convctl_usage_error(
				"option %s needs a value",
				optind > 0 && optind <= argc
					? argv[optind - 1]
					: opt_name(optopt, nbuf, sizeof(nbuf)));
			return PARSE_ERROR;
		default:
			if (optopt)
				convctl_usage_error("unknown option -%c",
						    optopt);
			else
				convctl_usage_error("unknown option %s",
						    argv[optind - 1]);
			return PARSE_ERROR;
		}
	}
	*first = optind;
	return PARSE_OK;
}

enum convctl_parse convctl_parse_options(int argc, char **argv,
					 bool stop_at_operand,
					 struct convctl_options *o,
					 unsigned *seen, int *first)
{
	switch (parse_options(argc, argv, stop_at_operand, o, seen, first)) {
	case PARSE_HELP:
		return CONVCTL_PARSE_HELP;
	case PARSE_VERSION:
		return CONVCTL_PARSE_VERSION;
	case PARSE_ERROR:
		return CONVCTL_PARSE_ERROR;
	case PARSE_OK:
		break;
	}
	return CONVCTL_PARSE_OK;
}

/* Checks operands and command options; prints the usage error. */
bool convctl_check_command(const struct convctl_command *cmd, int nargs,
			   char **args, unsigned seen,
			   const struct convctl_options *o)
{
	if (seen & ~cmd->opts) {
		unsigned bad = seen & ~cmd->opts;
		const char *opt = (bad & CONVCTL_OPT_LIMIT)	? "-n/--limit"
				  : (bad & CONVCTL_OPT_DAYS)	? "--days"
				  : (bad & CONVCTL_OPT_PROVIDER) ? "--provider"
				  : (bad & CONVCTL_OPT_DRY_RUN)	? "--dry-run"
				  : (bad & CONVCTL_OPT_CONVERSATION)
					  ? "--conversation"
				  : (bad & CONVCTL_OPT_EXPECTED)
					  ? "--expected-version"
				  : (bad & CONVCTL_OPT_BEFORE)	? "--before"
				  : (bad & CONVCTL_OPT_SYSTEM)	? "--system"
				  : (bad & CONVCTL_OPT_YES)	? "--yes"
				  : (bad & CONVCTL_OPT_TOOL_CALL_ID)
					  ? "--tool-call-id"
				  : (bad & CONVCTL_OPT_NAME)	? "--name"
				  : (bad & CONVCTL_OPT_MODEL)	? "--model"
				  : (bad & CONVCTL_OPT_TOKENS)	? "--tokens"
				  : (bad & CONVCTL_OPT_METADATA) ? "--metadata"
				  : (bad & CONVCTL_OPT_STRUCTURED)
					  ? "--structured"
							: "--prometheus";

		convctl_usage_error(
			"%s does not apply to '%s' (usage: convctl %s)", opt,
			cmd->name, cmd->synopsis);
		return false;
	}
	if (o->prometheus && o->json) {
		convctl_usage_error(
			"--prometheus and --json exclude each other");
		return false;
	}
	if (nargs < cmd->min_args || nargs > cmd->max_args) {
		convctl_usage_error(
			"wrong number of arguments (usage: convctl %s)",
			cmd->synopsis);
		return false;
	}
	if (cmd->check && !cmd->check(cmd, nargs, args))
		return false;
	return true;
}
