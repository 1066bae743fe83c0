/*
 * dbcmd.c - `convctl db ...`: the schema migration commands: the command
 * table, options, usage and dispatch.  The commands live in their modules
 * (dbsetup, dbapply, dbreport, dbcheck, dbauthor; see HACKING.md).
 *
 * Every command that changes the database takes a session advisory lock
 * (CONVD_LOCK_MIGRATE, bounded wait), then reads the history table, so that
 * concurrent runs from several hosts apply each revision exactly once.
 * Each transactional revision runs in its own transaction together with
 * its history row and the destructive-change guard; a non-transactional
 * one is marked dirty while it runs and stays dirty if it fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dbapply.h"
#include "dbauthor.h"
#include "dbcheck.h"
#include "dbcmd.h"
#include "dbctx.h"
#include "dbhist.h"
#include "dbreport.h"
#include "dbsetup.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef PKGDATADIR
#define PKGDATADIR "/usr/share/convd"
#endif

struct command {
	const char *name;
	int (*fn)(struct dbctx *c);
	unsigned opts;
	int min_args, max_args;
	const char *args;
};

#define RUN_OPTS							\
	(DBCTX_O_SQL | DBCTX_O_TRY | DBCTX_O_BACKUP |			\
	 DBCTX_O_ALLOW_DESTRUCTIVE | DBCTX_O_ACCEPT_CHANGED |		\
	 DBCTX_O_LOCK_TIMEOUT)

static const struct command commands[] = {
	{"setup", dbsetup_setup,
	 RUN_OPTS | DBCTX_O_LEGACY_TZ | DBCTX_O_LAYOUT, 0, 0,
	 " [--layout plain|partitioned]"},
	{"partition", dbsetup_partition, DBCTX_O_LOCK_TIMEOUT, 0, 0, ""},
	{"check", dbcheck_check, 0, 0, 0, ""},
	{"status", dbreport_status, 0, 0, 0, ""},
	{"current", dbreport_current, 0, 0, 0, ""},
	{"history", dbreport_history, 0, 0, 0, ""},
	{"heads", dbreport_heads, 0, 0, 0, ""},
	{"branches", dbreport_branches, 0, 0, 0, ""},
	{"show", dbreport_show, 0, 1, 1, " REV"},
	{"upgrade", dbapply_upgrade, RUN_OPTS, 0, 1, " [TARGET]"},
	{"downgrade", dbapply_downgrade, RUN_OPTS, 1, 1, " TARGET"},
	{"rollback", dbapply_rollback, RUN_OPTS, 0, 1, " [N]"},
	{"merge", dbauthor_merge, DBCTX_O_MESSAGE, 2, MIGRATE_REV_MAX_PARENTS,
	 " REV REV... -m MESSAGE"},
	{"stamp", dbapply_stamp, DBCTX_O_SQL | DBCTX_O_LOCK_TIMEOUT, 1, 1,
	 " TARGET"},
	{"verify", dbcheck_verify, DBCTX_O_OFFLINE, 0, 0, ""},
	{"migrate", dbauthor_migrate,
	 DBCTX_O_MESSAGE | DBCTX_O_AUTOGENERATE | DBCTX_O_MODEL | DBCTX_O_HEAD |
	 DBCTX_O_SPLICE, 0, 0,
	 " -m MESSAGE [--autogenerate] [--head REV [--splice]]"},
	{"diff", dbauthor_diff, DBCTX_O_MODEL | DBCTX_O_SQL, 0, 0, ""},
	{"reset", dbapply_reset, DBCTX_O_YES | DBCTX_O_BACKUP |
	 DBCTX_O_LOCK_TIMEOUT, 0, 0, ""},
	{"resolve", dbapply_resolve, DBCTX_O_APPLIED | DBCTX_O_ROLLED_BACK |
	 DBCTX_O_LOCK_TIMEOUT, 1, 1, " REV"},
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: convctl [-c FILE] [--json] db COMMAND [OPTIONS] [ARGS]\n"
		"\n"
		"  setup                   create the history table, adopt a "
		"legacy database,\n"
		"                          upgrade to head (idempotent)\n"
		"  setup --layout partitioned   the same, history partitioned "
		"by month\n"
		"  partition               convert the history to monthly "
		"partitions (online,\n"
		"                          resumable)\n"
		"  check                   connection, server, schema state, "
		"tables\n"
		"  status | current | history | heads | branches | show REV\n"
		"  upgrade [TARGET]        TARGET: head (default), heads, REV, "
		"+N\n"
		"  downgrade TARGET        TARGET: base, REV, -N\n"
		"  upgrade|downgrade FROM:TO --sql   offline SQL, no database\n"
		"  rollback [N]            revert the last N (default 1)\n"
		"  merge REV REV... -m MSG a revision joining heads\n"
		"  stamp TARGET            record as applied without running\n"
		"  verify [--offline]      files, graph, checksums, destructive "
		"statements\n"
		"  migrate -m MSG [--autogenerate] [--model FILE] [--head REV "
		"[--splice]]\n"
		"  diff [--model FILE] [--sql]  database against the schema "
		"model\n"
		"  reset --yes             down to base and up to head (needs "
		"allow_reset)\n"
		"  resolve REV --applied | --rolled-back   clear a dirty "
		"revision\n"
		"\n"
		"options: --sql  --try  --backup FILE  --allow-destructive  "
		"--accept-changed\n"
		"         --legacy-timezone ZONE (setup: how to read a legacy "
		"database's times)\n"
		"         --lock-timeout SECONDS (default %d)\n"
		"exit status: 0 ok, 1 failed, 2 usage, 3 cannot reach the "
		"database\n",
		DBCTX_DEFAULT_LOCK_TIMEOUT);
}

struct optdef {
	const char *name;
	unsigned bit;
	bool arg;
};

static const struct optdef optdefs[] = {
	{"sql", DBCTX_O_SQL, false},
	{"try", DBCTX_O_TRY, false},
	{"yes", DBCTX_O_YES, false},
	{"allow-destructive", DBCTX_O_ALLOW_DESTRUCTIVE, false},
	{"accept-changed", DBCTX_O_ACCEPT_CHANGED, false},
	{"autogenerate", DBCTX_O_AUTOGENERATE, false},
	{"offline", DBCTX_O_OFFLINE, false},
	{"applied", DBCTX_O_APPLIED, false},
	{"rolled-back", DBCTX_O_ROLLED_BACK, false},
	{"message", DBCTX_O_MESSAGE, true},
	{"backup", DBCTX_O_BACKUP, true},
	{"model", DBCTX_O_MODEL, true},
	{"lock-timeout", DBCTX_O_LOCK_TIMEOUT, true},
	{"legacy-timezone", DBCTX_O_LEGACY_TZ, true},
	{"head", DBCTX_O_HEAD, true},
	{"splice", DBCTX_O_SPLICE, false},
	{"layout", DBCTX_O_LAYOUT, true},
};

static const struct optdef *optdef_of(unsigned bit)
{
	for (size_t k = 0; k < ARRAY_LEN(optdefs); k++)
		if (optdefs[k].bit == bit)
			return &optdefs[k];
	return NULL;
}

static bool is_relative(const char *s)
{
	if ((s[0] != '-' && s[0] != '+') || !s[1])
		return false;
	for (const char *p = s + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static int set_opt(struct dbctx *c, const struct optdef *d, const char *val)
{
	c->o.given |= d->bit;
	switch (d->bit) {
	case DBCTX_O_MESSAGE:
		c->o.message = val;
		break;
	case DBCTX_O_BACKUP:
		if (!val[0]) {
			dbctx_error("--backup needs a file name");
			return DBCTX_EX_USAGE;
		}
		c->o.backup = val;
		break;
	case DBCTX_O_MODEL:
		c->o.model = val;
		break;
	case DBCTX_O_LEGACY_TZ:
		c->o.legacy_tz = val;
		break;
	case DBCTX_O_HEAD:
		c->o.head = val;
		break;
	case DBCTX_O_LAYOUT:
		if (strcmp(val, "plain") && strcmp(val, "partitioned")) {
			dbctx_error("--layout is plain or partitioned");
			return DBCTX_EX_USAGE;
		}
		c->o.partitioned = strcmp(val, "partitioned") == 0;
		break;
	case DBCTX_O_LOCK_TIMEOUT: {
		char *end;

		errno = 0;
		c->o.lock_timeout = strtol(val, &end, 10);
		if (errno || *end || end == val || c->o.lock_timeout < 0 ||
		    c->o.lock_timeout > 86400) {
			dbctx_error("--lock-timeout takes seconds from 0 to "
				    "86400");
			return DBCTX_EX_USAGE;
		}
		break;
	}
	default:
		break;
	}
	return DBCTX_EX_OK;
}

/* Options anywhere among the arguments; "-N"/"+N" are arguments. */
static int parse_args(struct dbctx *c, int argc, char **argv, int *help)
{
	bool only_args = false;

	c->o.args = calloc((size_t)argc + 1, sizeof(char *));
	if (!c->o.args) {
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const struct optdef *d = NULL;
		const char *val = NULL;

		if (only_args || a[0] != '-' || !a[1] || is_relative(a)) {
			c->o.args[c->o.nargs++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = true;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			*help = 1;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			c->json = true;
			continue;
		}
		if (a[1] == 'm') {
			d = optdef_of(DBCTX_O_MESSAGE);
			val = a[2] ? a + 2 : NULL;
		} else if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);

			for (size_t k = 0; k < ARRAY_LEN(optdefs); k++)
				if (strlen(optdefs[k].name) == n &&
				    strncmp(optdefs[k].name, a + 2, n) == 0)
					d = &optdefs[k];
			if (d && eq) {
				if (!d->arg) {
					dbctx_error("option --%s takes no "
						    "value", d->name);
					return DBCTX_EX_USAGE;
				}
				val = eq + 1;
			}
		}
		if (!d) {
			dbctx_error("unknown option '%s'", a);
			return DBCTX_EX_USAGE;
		}
		if (d->arg && !val) {
			if (i + 1 >= argc) {
				dbctx_error("option %s needs a value", a);
				return DBCTX_EX_USAGE;
			}
			val = argv[++i];
		}
		if (set_opt(c, d, val ? val : "") != DBCTX_EX_OK)
			return DBCTX_EX_USAGE;
	}
	return DBCTX_EX_OK;
}

static int load_config(struct dbctx *c, const char *config_path)
{
	char err[DBCTX_ERRLEN];
	const char *path = config_path;

	if (config_init(&c->cfg) < 0) {
		dbctx_error("cannot initialise the configuration");
		return DBCTX_EX_FAIL;
	}
	c->cfg_ok = true;
	if (!path && access(SYSCONFDIR "/convd.conf", F_OK) == 0)
		path = SYSCONFDIR "/convd.conf";
	if (path && config_load_file(&c->cfg, path, err, sizeof(err)) < 0) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	c->dir = c->cfg.migrations.directory && c->cfg.migrations.directory[0]
			 ? c->cfg.migrations.directory
			 : PKGDATADIR "/migrations";
	if (c->o.model) {
		c->model_path = strdup(c->o.model);
	} else if (asprintf(&c->model_path, "%s/%s", c->dir,
			    DBCTX_MODEL_FILE) < 0) {
		c->model_path = NULL;
	}
	if (!c->model_path) {
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	return DBCTX_EX_OK;
}

static void ctx_free(struct dbctx *c)
{
	dbhist_free(c);
	if (c->conn)
		PQfinish(c->conn);
	if (c->set_ok)
		migrate_set_free(&c->set);
	if (c->cfg_ok)
		config_free(&c->cfg);
	free(c->applied);
	free(c->nsp);
	free(c->qhist);
	free(c->model_path);
	free(c->o.args);
}

int dbcmd_main(int argc, char **argv, const char *config_path, bool json)
{
	struct dbctx c;
	const struct command *cmd = NULL;
	int help = 0, rc;

	memset(&c, 0, sizeof(c));
	c.json = json;
	c.out = JSON_INIT(stdout);
	if (argc < 2 || strcmp(argv[1], "help") == 0 ||
	    strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? DBCTX_EX_USAGE : DBCTX_EX_OK;
	}
	for (size_t i = 0; i < ARRAY_LEN(commands); i++)
		if (strcmp(commands[i].name, argv[1]) == 0)
			cmd = &commands[i];
	if (!cmd) {
		dbctx_error("unknown command '%s' (see 'convctl db help')",
			    argv[1]);
		return DBCTX_EX_USAGE;
	}
	c.cmd = cmd->name;
	rc = parse_args(&c, argc - 2, argv + 2, &help);
	if (rc != DBCTX_EX_OK)
		goto out;
	if (help) {
		printf("usage: convctl db %s%s\n", cmd->name, cmd->args);
		rc = DBCTX_EX_OK;
		goto out;
	}
	if (c.o.given & ~cmd->opts) {
		for (size_t k = 0; k < ARRAY_LEN(optdefs); k++)
			if (c.o.given & ~cmd->opts & optdefs[k].bit)
				dbctx_error("%s does not take --%s", cmd->name,
					    optdefs[k].name);
		rc = DBCTX_EX_USAGE;
		goto out;
	}
	if (c.o.nargs < cmd->min_args || c.o.nargs > cmd->max_args) {
		dbctx_error("usage: convctl db %s%s", cmd->name, cmd->args);
		rc = DBCTX_EX_USAGE;
		goto out;
	}
	if ((c.o.given & DBCTX_O_SQL) && (c.o.given & DBCTX_O_TRY)) {
		dbctx_error("--sql and --try do not go together");
		rc = DBCTX_EX_USAGE;
		goto out;
	}
	rc = load_config(&c, config_path);
	if (rc == DBCTX_EX_OK)
		rc = cmd->fn(&c);
out:
	json_warn_replaced(&c.out, "convctl db");
	fflush(stdout);
	ctx_free(&c);
	return rc;
}
