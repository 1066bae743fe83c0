/*
 * convctl_conn.c - convctl's connection to convd and its error reports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "convctl_conn.h"
#include "convctl_text.h"

int convctl_conn_report(int st, const struct convc_error *e)
{
	fprintf(stderr, "%s: ", convctl_progname);
	convctl_text_cstr(stderr, e->code);
	fputs(": ", stderr);
	convctl_text_cstr(stderr, e->message);
	fputc('\n', stderr);
	switch (st) {
	case CONVC_ERR_DAEMON:
		/* convd refused the whole connection (max_clients): it
		 * answers the first request with `overloaded` */
		if (strcmp(e->code, "overloaded") == 0)
			return CONVCTL_EXIT_UNREACHABLE;
		return CONVCTL_EXIT_DAEMON;
	case CONVC_ERR_CONN:
		return CONVCTL_EXIT_UNREACHABLE;
	default:
		return EXIT_FAILURE;
	}
}

/* The socket: -s, else $CONVD_SOCKET, else -c FILE's, else the default.
 * *owned is set when the path was allocated. */
static int socket_path(const struct convctl_options *o, const char **path,
		       char **owned)
{
	const char *env = getenv("CONVD_SOCKET");
	struct config cfg;
	char err[512];

	*owned = NULL;
	if (o->socket) {
		*path = o->socket;
		return EXIT_SUCCESS;
	}
	if (env && *env) {
		*path = env;
		return EXIT_SUCCESS;
	}
	*path = CONVD_DEFAULT_SOCKET;
	if (!o->config)
		return EXIT_SUCCESS;
	if (config_init(&cfg) < 0)
		return convctl_nomem();
	if (config_load_file(&cfg, o->config, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", convctl_progname, err);
		config_free(&cfg);
		return CONVCTL_EXIT_USAGE;
	}
	if (cfg.server.socket && *cfg.server.socket) {
		*owned = strdup(cfg.server.socket);
		if (!*owned) {
			config_free(&cfg);
			return convctl_nomem();
		}
		*path = *owned;
	}
	config_free(&cfg);
	return EXIT_SUCCESS;
}

int convctl_conn_open(const struct convctl_options *o, int default_timeout_s,
		      struct convc **out)
{
	struct convc_error e;
	const char *path;
	char *owned;
	int64_t t = o->timeout_set ? o->timeout_s : default_timeout_s;
	int rc = socket_path(o, &path, &owned);

	if (rc != EXIT_SUCCESS)
		return rc;
	*out = convc_connect(path, (int)(t * 1000), &e);
	free(owned);
	if (!*out)
		return convctl_conn_report(strcmp(e.code, "no_memory") == 0
						   ? CONVC_ERR_LOCAL
						   : CONVC_ERR_CONN,
					   &e);
	return EXIT_SUCCESS;
}
