/*
 * dbbackup.c - --backup FILE: pg_dump before a change, when the database
 * holds data.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dbbackup.h"
#include "dbconn.h"

/* Whether any user table of the database holds a row. */
static int holds_data(struct dbctx *c, bool *out)
{
	char err[DBCTX_ERRLEN];
	PGresult *r = dbconn_exec(c,
				  "SELECT format('%I.%I', n.nspname, c.relname)"
				  " FROM pg_class c JOIN pg_namespace n"
				  " ON n.oid = c.relnamespace"
				  " WHERE c.relkind IN ('r', 'p')"
				  " AND n.nspname NOT IN ('pg_catalog',"
				  " 'information_schema')"
				  " AND n.nspname !~ '^pg_(toast|temp_)'",
				  err, sizeof(err));

	*out = false;
	if (!r) {
		dbctx_error("%s", err);
		return DBCTX_EX_FAIL;
	}
	for (int i = 0; i < PQntuples(r) && !*out; i++) {
		char *sql;
		PGresult *e;

		if (asprintf(&sql, "SELECT EXISTS (SELECT 1 FROM %s)",
			     PQgetvalue(r, i, 0)) < 0) {
			PQclear(r);
			dbctx_error("out of memory");
			return DBCTX_EX_FAIL;
		}
		e = dbconn_exec(c, sql, err, sizeof(err));
		free(sql);
		if (!e) {
			PQclear(r);
			dbctx_error("%s", err);
			return DBCTX_EX_FAIL;
		}
		*out = PQgetvalue(e, 0, 0)[0] == 't';
		PQclear(e);
	}
	PQclear(r);
	return DBCTX_EX_OK;
}

/* 'value' for a conninfo string. */
static int conninfo_add(char **buf, size_t *len, const char *key,
			const char *val)
{
	size_t need = strlen(key) + 2 * strlen(val) + 5;
	char *nb = realloc(*buf, *len + need + 1), *p;

	if (!nb)
		return -1;
	*buf = nb;
	p = nb + *len;
	p += sprintf(p, "%s%s='", *len ? " " : "", key);
	for (const char *s = val; *s; s++) {
		if (*s == '\'' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '\'';
	*p = '\0';
	*len = (size_t)(p - nb);
	return 0;
}

/* Runs pg_dump -Fc into path, with the connection's own parameters; the
 * password (if any) goes through a private passfile, never argv. */
static int run_pg_dump(struct dbctx *c, const char *path)
{
	PQconninfoOption *opts = PQconninfo(c->conn), *o;
	char *conninfo = NULL, *password = NULL;
	size_t len = 0;
	char dir[] = "/tmp/convctl-backup-XXXXXX", passfile[64] = "";
	pid_t pid;
	int status, rc = DBCTX_EX_FAIL;
	struct stat st;

	if (!opts) {
		dbctx_error("out of memory");
		return DBCTX_EX_FAIL;
	}
	for (o = opts; o->keyword; o++) {
		if (!o->val || !o->val[0])
			continue;
		if (strcmp(o->keyword, "password") == 0) {
			password = strdup(o->val);
			continue;
		}
		if (strcmp(o->keyword, "passfile") == 0)
			continue;
		if (conninfo_add(&conninfo, &len, o->keyword, o->val) < 0) {
			dbctx_error("out of memory");
			goto out;
		}
	}
	if (!conninfo && conninfo_add(&conninfo, &len, "dbname",
				      PQdb(c->conn)) < 0) {
		dbctx_error("out of memory");
		goto out;
	}
	if (password) {
		FILE *f;
		int fd;

		if (!mkdtemp(dir)) {
			dbctx_error("backup: cannot make a temporary "
				    "directory: %s", strerror(errno));
			goto out;
		}
		snprintf(passfile, sizeof(passfile), "%s/pgpass", dir);
		fd = open(passfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			  0600);
		f = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!f) {
			if (fd >= 0)
				close(fd);
			dbctx_error("backup: cannot write %s: %s", passfile,
				    strerror(errno));
			goto out;
		}
		fputs("*:*:*:*:", f);
		for (const char *s = password; *s; s++) {
			if (*s == ':' || *s == '\\')
				fputc('\\', f);
			fputc(*s, f);
		}
		fputc('\n', f);
		if (fclose(f) != 0) {
			dbctx_error("backup: cannot write %s", passfile);
			goto out;
		}
	}
	printf("backup: pg_dump --format=custom --file=%s\n", path);
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		dbctx_error("backup: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		char *argv[] = {"pg_dump", "--format=custom", "--no-password",
				NULL, NULL, NULL};
		char *fileopt = NULL, *dbopt = NULL;

		if (asprintf(&fileopt, "--file=%s", path) < 0 ||
		    asprintf(&dbopt, "--dbname=%s", conninfo) < 0)
			_exit(127);
		argv[3] = fileopt;
		argv[4] = dbopt;
		if (passfile[0])
			setenv("PGPASSFILE", passfile, 1);
		unsetenv("PGPASSWORD");
		execvp("pg_dump", argv);
		fprintf(stderr, "convctl db: backup: cannot run pg_dump: %s\n",
			strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			dbctx_error("backup: waitpid: %s", strerror(errno));
			goto out;
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		dbctx_error("backup: pg_dump failed (%s %d): nothing was changed",
			    WIFEXITED(status) ? "exit status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status)
					      : WTERMSIG(status));
		goto out;
	}
	if (stat(path, &st) == 0)
		printf("backup: %s written (%lld bytes)\n", path,
		       (long long)st.st_size);
	rc = DBCTX_EX_OK;
out:
	if (passfile[0])
		unlink(passfile);
	if (strcmp(dir, "/tmp/convctl-backup-XXXXXX") != 0)
		rmdir(dir);
	if (password) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	free(conninfo);
	PQconninfoFree(opts);
	return rc;
}

/* --backup FILE, when given and the database holds data. */
int dbbackup_run(struct dbctx *c)
{
	bool data;
	int rc;

	if (!(c->o.given & DBCTX_O_BACKUP))
		return DBCTX_EX_OK;
	rc = holds_data(c, &data);
	if (rc != DBCTX_EX_OK)
		return rc;
	if (!data) {
		printf("backup: the database holds no data, no backup "
		       "needed\n");
		return DBCTX_EX_OK;
	}
	return run_pg_dump(c, c->o.backup);
}

/* --try --backup FILE: what the backup needs, without writing it. */
int dbbackup_check(struct dbctx *c)
{
	const char *path = getenv("PATH"), *slash;
	char dir[PATH_MAX], exe[PATH_MAX];
	bool data, found = false;
	int rc;

	if (!(c->o.given & DBCTX_O_BACKUP))
		return DBCTX_EX_OK;
	rc = holds_data(c, &data);
	if (rc != DBCTX_EX_OK || !data)
		return rc;
	for (const char *p = path ? path : "/usr/bin:/bin"; p && !found;) {
		const char *end = strchr(p, ':');
		int len = end ? (int)(end - p) : (int)strlen(p);

		if (len > 0)
			snprintf(exe, sizeof(exe), "%.*s/pg_dump", len, p);
		else
			snprintf(exe, sizeof(exe), "./pg_dump");
		found = access(exe, X_OK) == 0;
		p = end ? end + 1 : NULL;
	}
	slash = strrchr(c->o.backup, '/');
	snprintf(dir, sizeof(dir), "%.*s",
		 slash ? (int)(slash - c->o.backup) + (slash == c->o.backup)
		       : 1,
		 slash ? c->o.backup : ".");
	if (!found) {
		dbctx_error("backup: pg_dump is not in PATH: the real run "
			    "would fail before changing anything");
		return DBCTX_EX_FAIL;
	}
	if (access(dir, W_OK | X_OK) < 0) {
		dbctx_error("backup: cannot write into %s: %s", dir,
			    strerror(errno));
		return DBCTX_EX_FAIL;
	}
	printf("backup: would run pg_dump --format=custom --file=%s\n",
	       c->o.backup);
	return DBCTX_EX_OK;
}
