/*
 * config.h - convd's configuration: one table of options drives the INI
 * parser, `convd --help`, the sample etc/convd.conf and the option list in
 * convd.conf(5) (tests/unit/test_config checks that they agree).
 *
 * The file is INI: [section] headers, `key = value` lines, `#` or `;`
 * comments on their own line.  Values may be "double quoted" (with \" and
 * \\ escapes) to keep leading/trailing spaces or a '#'.  Times are in
 * seconds, sizes in bytes (a K, M or G suffix multiplies by 1024^n),
 * booleans yes/no/true/false/on/off/1/0, modes in octal.
 *
 * The environment (DATABASE_URL, DB_HOST, ...) is applied by dbconf, not
 * here: this module only knows the file.
 */
#ifndef CONVD_CONFIG_H
#define CONVD_CONFIG_H

#include <stdio.h>

#include "common.h"
#include "log.h"

struct config {
	char *path;			/* file it was loaded from, or NULL */

	struct {
		char *url;
		char *host;
		int64_t port;		/* 0 = libpq default */
		char *name;
		char *user;
		char *password;
		char *password_file;
		char *sslmode;		/* "" = require for TCP, libpq's for Unix */
		char *sslrootcert;
		char *sslcert;
		char *sslkey;
		int64_t connect_timeout;
		int64_t keepalives_idle;
		int64_t keepalives_interval;
		int64_t keepalives_count;
		int64_t tcp_user_timeout;	/* milliseconds, 0 = system */
		char *target_session_attrs;
		char *application_name;
		int64_t statement_timeout;	/* milliseconds, 0 = none */
		char *prepared_statements;	/* auto, yes, no */
		int64_t recheck_interval;	/* seconds */
	} db;

	struct {
		int64_t size;
		int64_t max_overflow;
		int64_t timeout;
		int64_t recycle;
		bool pre_ping;
		int64_t pre_ping_after;
		int64_t overflow_idle_timeout;
		int64_t min_size;
		int64_t idle_timeout;
		int64_t reconnect_backoff_min;	/* milliseconds */
		int64_t reconnect_backoff_max;	/* milliseconds */
	} pool;

	struct {
		char *socket;
		int64_t socket_mode;
		char *socket_group;
		int64_t max_clients;
		int64_t max_request_bytes;
		int64_t max_content_bytes;
		int64_t max_inflight;
		int64_t max_output_bytes;
		int64_t idle_timeout;
		int64_t request_timeout;	/* milliseconds, 0 = none */
		int64_t memory_budget;		/* bytes, 0 = none */
		int64_t shutdown_timeout;
		char *allow_users;
		char *allow_groups;
		char *admin_users;
		char *admin_groups;
	} server;

	struct {
		int64_t days_to_keep;
		int64_t interval;
		int64_t batch_size;
	} retention;

	struct {
		char *listen;		/* "" = off */
		int64_t max_connections;
		int64_t timeout;
		int64_t max_header_bytes;
	} http;

	struct {
		enum log_level level;
	} log;

	struct {
		char *directory;
		bool allow_reset;
	} migrations;
};

enum config_type {
	CONFIG_T_STRING,
	CONFIG_T_INT,
	CONFIG_T_BOOL,
	CONFIG_T_SIZE,	/* bytes, with K/M/G suffixes */
	CONFIG_T_MODE,	/* octal file mode */
	CONFIG_T_LEVEL,	/* log level name */
};

struct config_option {
	const char *section;
	const char *name;
	enum config_type type;
	size_t offset;		/* offsetof(struct config, ...) */
	const char *def;	/* default, as written in the file */
	int64_t min, max;	/* bounds of CONFIG_T_INT, _SIZE and _MODE */
	bool reloadable;	/* takes effect on SIGHUP */
	bool secret;		/* never printed */
	const char *doc;	/* one or two sentences */
	/*
	 * Optional: the value the sample configuration shows (commented out)
	 * instead of the default, for an option that is off by default and
	 * whose doc says what the example does (retention).
	 */
	const char *example;
	/*
	 * CONFIG_T_STRING only, optional: checks a value (and may normalise
	 * it in place, never making it longer).  Returns -1 with the reason
	 * in why.
	 */
	int (*check)(char *value, char *why, size_t whylen);
};

extern const struct config_option config_options[];
extern const size_t config_noptions;

/* Fills every option with its default. */
CONVD_WUR int config_init(struct config *cfg);

/*
 * Reads path over the current values.  On error returns -1, leaves cfg
 * unchanged and writes "FILE:LINE: [section] key: reason" into err.
 * A key may appear only once per file; files are at most 1 MiB, lines at
 * most 4096 bytes.
 */
CONVD_WUR int config_load_file(struct config *cfg, const char *path,
			       char *err, size_t errlen);

/*
 * Sets one option from its text form, as if read from a file (the same
 * checks; strings are copied).  On error returns -1 with the reason in why.
 */
CONVD_WUR int config_set(struct config *cfg,
			 const struct config_option *opt, const char *text,
			 char *why, size_t whylen);

/* Cross-option checks (e.g. max_content_bytes < max_request_bytes). */
CONVD_WUR int config_validate(const struct config *cfg, char *err,
			      size_t errlen);

void config_free(struct config *cfg);

const struct config_option *config_find(const char *section,
					const char *name);

/* Value of an option as text ("********" for secrets that are set). */
void config_format_value(const struct config *cfg,
			 const struct config_option *opt, char *buf,
			 size_t len);

void config_print_help(FILE *out);		/* for convd --help */
/* etc/convd.conf and convd.conf(5)'s mdoc option list; exported for
 * tests/unit/test_config.c, which checks both files against them. */
void config_print_sample(FILE *out);
void config_print_man(FILE *out);
void config_print_effective(FILE *out, const struct config *cfg);

/*
 * Calls cb for every option whose value differs between old and new and
 * that cannot change at run time.  Returns how many there were.
 */
int config_nonreloadable_changes(const struct config *old,
				 const struct config *new,
				 void (*cb)(const struct config_option *opt,
					    void *arg),
				 void *arg);

#endif
