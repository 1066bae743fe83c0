/*
 * convctl_main.c - convctl's main(): the options before the command, the
 * command's row in the table, its options and operands checked, the
 * connection to convd, the command run, its output flushed.
 *
 *   convctl [-s SOCKET] [-c FILE] [--json] [--platform P] [-t SECONDS]
 *           COMMAND [ARGS]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoconfig.h"
#include "convctl.h"
#include "convctl_conn.h"
#include "dbcmd.h"

/* Flushes stdout; a write error (other than a closed pipe) fails. */
static int finish_output(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno != EPIPE)
			fprintf(stderr, "%s: writing output: %s\n",
				convctl_progname, strerror(errno));
		return rc == EXIT_SUCCESS ? EXIT_FAILURE : rc;
	}
	return rc;
}

/*
 * One pass of convctl_parse_options: before the command (cmd NULL: --help
 * prints convctl's help) or after it (--help prints the command's usage).
 * Returns -1 to go on, else the exit status.
 */
static int parse_pass(int argc, char **argv, const struct convctl_command *cmd,
		      struct convctl_options *o, unsigned *seen, int *first)
{
	switch (convctl_parse_options(argc, argv, cmd == NULL, o, seen,
				      first)) {
	case CONVCTL_PARSE_HELP:
		if (cmd)
			printf("usage: convctl [OPTIONS] %s\n", cmd->synopsis);
		else
			convctl_print_help(stdout);
		return finish_output(EXIT_SUCCESS);
	case CONVCTL_PARSE_VERSION:
		printf("convctl (convd) %s\n", PACKAGE_VERSION);
		return finish_output(EXIT_SUCCESS);
	case CONVCTL_PARSE_ERROR:
		return CONVCTL_EXIT_USAGE;
	case CONVCTL_PARSE_OK:
		break;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct convctl_options o = { 0 };
	const struct convctl_command *cmd;
	struct convctl_ctx x;
	unsigned seen = 0;
	int first, sub_argc, rc;
	char **sub_argv;

	rc = parse_pass(argc, argv, NULL, &o, &seen, &first);
	if (rc >= 0)
		return rc;
	if (first >= argc)
		return convctl_usage_error("no command given");
	if (strcmp(argv[first], "help") == 0) {
		convctl_print_help(stdout);
		return finish_output(EXIT_SUCCESS);
	}
	if (strcmp(argv[first], "db") == 0) {
		rc = dbcmd_main(argc - first, argv + first, o.config, o.json);
		return finish_output(rc);
	}
	cmd = convctl_table_find(argv[first]);
	if (!cmd)
		return convctl_usage_error("unknown command '%s'", argv[first]);
	/* Options may also follow the command, mixed with its operands. */
	sub_argc = argc - first;
	sub_argv = argv + first;
	rc = parse_pass(sub_argc, sub_argv, cmd, &o, &seen, &first);
	if (rc >= 0)
		return rc;
	/* Operands are now sub_argv[first..sub_argc); put them right after
	 * the command name so that commands see argv[1..]. */
	if (!convctl_check_command(cmd, sub_argc - first, sub_argv + first,
				   seen, &o))
		return CONVCTL_EXIT_USAGE;
	memmove(sub_argv + 1, sub_argv + first,
		(size_t)(sub_argc - first) * sizeof(*sub_argv));
	sub_argc = 1 + (sub_argc - first);

	x.o = &o;
	x.out = stdout;
	x.json = JSON_INIT(stdout);
	rc = convctl_conn_open(&o, cmd->default_timeout_s, &x.c);
	if (rc != EXIT_SUCCESS)
		return rc;
	rc = cmd->run(&x, sub_argc, sub_argv);
	convc_close(x.c);
	json_warn_replaced(&x.json, convctl_progname);
	return finish_output(rc);
}
