/*
 * convd.c - the daemon: options, start-up, signals, reload and shutdown.
 *
 * Start-up failures are fatal (exit 1 with the reason); after that, a
 * failure only ever closes the client or server connection it concerns.
 * Signal handlers do nothing but wake the loop (libevent signal events):
 * reload and shutdown run in the loop like everything else.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "admin.h"
#include "autoconfig.h"
#include "batch.h"
#include "clock.h"
#include "config.h"
#include "context.h"
#include "erase.h"
#include "msgpage.h"
#include "search.h"
#include "conversations.h"
#include "dbconf.h"
#include "http.h"
#include "deadline.h"
#include "health.h"
#include "log.h"
#include "loop.h"
#include "memory.h"
#include "pool.h"
#include "retention.h"
#include "partition.h"
#include "query.h"
#include "request.h"
#include "schema_check.h"
#include "sdn.h"
#include "server.h"
#include "stats.h"
#include "store.h"
#include "topology.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/convd.conf"
#define STATUS_USEC (5 * USEC_PER_SEC)
#define DRAIN_CHECK_USEC (20 * 1000)

struct clock_cache clock_cache;

static struct {
	struct event_base *base;
	struct config cfg;
	struct dbconf dc;
	const char *config_path;
	bool config_given;
	struct event sig_hup, sig_term, sig_int;
	struct event watchdog, status, drain;
	bool events_set;		/* the six above are assigned */
	usec_t drain_deadline;
	bool stopping;
	struct pool_statement *stmts;	/* every module's, for the pool */
	size_t nstmts;
} d;

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: convd [-c FILE] [--check-config]\n"
		"       convd --version | --help\n"
		"\n"
		"The conversation store daemon: serves MessagePack-RPC on a "
		"Unix socket,\nbacked by PostgreSQL.  Runs in the foreground "
		"and logs to stderr.\n"
		"\n"
		"  -c, --config FILE   configuration file (default %s)\n"
		"  -t, --check-config  validate the configuration and exit\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n"
		"\n"
		"Environment: DATABASE_URL overrides DB_HOST, DB_PORT, "
		"DB_NAME, DB_USER,\nDB_PASSWORD, which override the file's "
		"[database] section.\n"
		"\n"
		"Configuration options (see convd.conf(5)):\n",
		DEFAULT_CONFIG);
	config_print_help(out);
}

/* Loads path (or only defaults when it is the default and missing). */
static int load_config(struct config *cfg, char *err, size_t errlen)
{
	if (config_init(cfg) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!d.config_given && access(d.config_path, F_OK) < 0) {
		log_notice("no %s: using defaults and the environment",
			   d.config_path);
	} else if (config_load_file(cfg, d.config_path, err, errlen) < 0) {
		config_free(cfg);
		return -1;
	}
	if (config_validate(cfg, err, errlen) < 0) {
		config_free(cfg);
		return -1;
	}
	return 0;
}

static struct pool_settings pool_settings_from(const struct config *cfg)
{
	struct pool_settings ps = {
		.size = (int)cfg->pool.size,
		.max_overflow = (int)cfg->pool.max_overflow,
		.timeout = (int)cfg->pool.timeout,
		.recycle = (int)cfg->pool.recycle,
		.pre_ping = cfg->pool.pre_ping,
		.pre_ping_after = (int)cfg->pool.pre_ping_after,
		.overflow_idle = (int)cfg->pool.overflow_idle_timeout,
		.statement_timeout = (int)cfg->db.statement_timeout,
		.min_size = (int)cfg->pool.min_size,
		.idle_timeout = (int)cfg->pool.idle_timeout,
		.backoff_min = (int)cfg->pool.reconnect_backoff_min,
		.backoff_max = (int)cfg->pool.reconnect_backoff_max,
		.prepare = strcmp(cfg->db.prepared_statements, "yes") == 0 ?
				   POOL_PREPARE_YES :
			   strcmp(cfg->db.prepared_statements, "no") == 0 ?
				   POOL_PREPARE_NO :
				   POOL_PREPARE_AUTO,
		.want_primary =
			topology_wants_primary(cfg->db.target_session_attrs),
		.recheck_interval = (int)cfg->db.recheck_interval,
	};
	return ps;
}

static void update_status(void)
{
	struct pool_stats ps;
	struct server_stats ss;
	struct health h;

	health_check(&h);
	pool_stats(&ps);
	server_stats(&ss);
	sdn_notify("STATUS=%s; schema %s; %d clients; pool %d open, %d busy, "
		   "%d waiting",
		   strcmp(h.database, "up") == 0 ? "database up" :
		   strcmp(h.database, "stalled") == 0 ?
						   "database STALLED" :
						   "database DOWN",
		   h.schema, ss.clients, ps.open, ps.busy, ps.waiting);
}

static void on_status(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	update_status();
	log_ratelimit_flush();
}

/* A timer that fires proves the loop turns: only then is systemd told. */
static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	sdn_notify("WATCHDOG=1");
}

static void log_nonreloadable(const struct config_option *opt, void *arg)
{
	(void)arg;
	log_warn("reload: [%s] %s changed but cannot change at run time; "
		 "restart convd to apply it",
		 opt->section, opt->name);
}

/* Moves every reloadable option's value from src into dst. */
static void config_take_reloadable(struct config *dst,
				   struct config *src)
{
	for (size_t i = 0; i < config_noptions; i++) {
		const struct config_option *o = &config_options[i];
		char *a = (char *)dst + o->offset, *b = (char *)src + o->offset;

		if (!o->reloadable)
			continue;
		switch (o->type) {
		case CONFIG_T_STRING: {
			char *tmp = *(char **)a;

			*(char **)a = *(char **)b;
			*(char **)b = tmp;
			break;
		}
		case CONFIG_T_BOOL:
			*(bool *)a = *(bool *)b;
			break;
		case CONFIG_T_LEVEL:
			*(enum log_level *)a = *(enum log_level *)b;
			break;
		case CONFIG_T_INT:
		case CONFIG_T_SIZE:
		case CONFIG_T_MODE:
			*(int64_t *)a = *(int64_t *)b;
			break;
		}
	}
}

/*
 * Every client and every database connection is a descriptor, plus a few
 * of convd's own.  As Redis does for maxclients: the soft limit is raised
 * toward the hard one as far as max_clients and the pool need; if even the
 * hard limit is short, the log says so at start (beyond it, new clients
 * wait in the listen backlog while accepting pauses, see server.c).
 */
#define FD_RESERVE 32

static void fit_fd_limit(const struct config *cfg)
{
	rlim_t want = (rlim_t)cfg->server.max_clients +
		      (rlim_t)cfg->pool.size + (rlim_t)cfg->pool.max_overflow +
		      FD_RESERVE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > rl.rlim_cur) {
		rlim_t to = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ?
				    rl.rlim_max :
				    want;
		struct rlimit nrl = {.rlim_cur = to, .rlim_max = rl.rlim_max};

		if (setrlimit(RLIMIT_NOFILE, &nrl) == 0) {
			log_info("open file limit raised from %llu to %llu",
				 (unsigned long long)rl.rlim_cur,
				 (unsigned long long)to);
			rl.rlim_cur = to;
		} else {
			log_warn("cannot raise the open file limit from %llu "
				 "to %llu: %s",
				 (unsigned long long)rl.rlim_cur,
				 (unsigned long long)to, strerror(errno));
		}
	}
	if (rl.rlim_cur < want)
		log_warn("max_clients (%lld) and the pool (up to %lld "
			 "connections) need %llu file descriptors, but the "
			 "limit is %llu (LimitNOFILE=, ulimit -n): clients "
			 "beyond it wait until others leave",
			 (long long)cfg->server.max_clients,
			 (long long)(cfg->pool.size + cfg->pool.max_overflow),
			 (unsigned long long)want,
			 (unsigned long long)rl.rlim_cur);
}

static void reload(void)
{
	struct config next;
	char err[512];
	struct pool_settings ps;

	sdn_reloading();
	log_notice("reloading %s", d.config_path);
	if (load_config(&next, err, sizeof(err)) < 0) {
		log_error("reload failed, keeping the running configuration: "
			  "%s",
			  err);
		sdn_notify("READY=1");
		update_status();
		return;
	}
	(void)config_nonreloadable_changes(&d.cfg, &next, log_nonreloadable,
					   NULL);
	config_take_reloadable(&d.cfg, &next);
	config_free(&next);
	log_set_level(d.cfg.log.level);
	fit_fd_limit(&d.cfg);
	ps = pool_settings_from(&d.cfg);
	pool_reconfigure(&ps);
	deadline_reconfigure(d.cfg.server.request_timeout * 1000);
	if (server_reconfigure(&d.cfg) < 0)
		log_error("reload: the new access lists are invalid; keeping "
			  "the old ones");
	retention_reconfigure(&d.cfg);
	log_notice("configuration reloaded");
	sdn_notify("READY=1");
	update_status();
}

static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	struct server_stats ss;

	server_stats(&ss);
	/* done when every request is answered and every answer written
	 * (clients close once their output is flushed) */
	if (request_inflight() == 0 && ss.clients == 0) {
		log_info("all requests answered");
		event_base_loopexit(d.base, NULL);
		return;
	}
	if (clock_mono_usec() >= d.drain_deadline) {
		log_warn("shutdown: %d requests still running, %d clients "
			 "not flushed after shutdown_timeout; closing their "
			 "connections",
			 request_inflight(), ss.clients);
		event_base_loopexit(d.base, NULL);
		return;
	}
	if (loop_arm_usec(&d.drain, DRAIN_CHECK_USEC, "shutdown drain timer") < 0)
		event_base_loopexit(d.base, NULL);	/* cannot wait: stop */
}

static void shutdown_begin(int sig)
{
	if (d.stopping) {
		log_notice("second %s: exiting now", strsignal(sig));
		event_base_loopbreak(d.base);
		return;
	}
	d.stopping = true;
	log_notice("%s: shutting down (finishing %d requests in flight)",
		   strsignal(sig), request_inflight());
	sdn_notify("STOPPING=1");
	server_stop_accepting();
	http_stopping();
	d.drain_deadline = clock_mono_usec() +
			   d.cfg.server.shutdown_timeout * USEC_PER_SEC;
	if (loop_arm_usec(&d.drain, 0, "shutdown drain timer") < 0)
		event_base_loopexit(d.base, NULL);	/* cannot wait: stop */
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	if (sig == SIGHUP) {
		if (!d.stopping)
			reload();
		return;
	}
	shutdown_begin((int)sig);
}

/* Sets up the daemon's own events: signals and timers. */
static int events_setup(void)
{
	if (evsignal_assign(&d.sig_hup, d.base, SIGHUP, on_signal, NULL) < 0 ||
	    evsignal_assign(&d.sig_term, d.base, SIGTERM, on_signal, NULL) < 0 ||
	    evsignal_assign(&d.sig_int, d.base, SIGINT, on_signal, NULL) < 0 ||
	    evtimer_assign(&d.drain, d.base, on_drain, NULL) < 0 ||
	    event_assign(&d.status, d.base, -1, EV_PERSIST, on_status,
			 NULL) < 0 ||
	    event_assign(&d.watchdog, d.base, -1, EV_PERSIST, on_watchdog,
			 NULL) < 0)
		return -1;
	d.events_set = true;
	if (loop_arm(&d.sig_hup, NULL, "SIGHUP") < 0 ||
	    loop_arm(&d.sig_term, NULL, "SIGTERM") < 0 ||
	    loop_arm(&d.sig_int, NULL, "SIGINT") < 0)
		return -1;
	return 0;
}

static void events_cleanup(void)
{
	if (!d.events_set)
		return;
	event_del(&d.sig_hup);
	event_del(&d.sig_term);
	event_del(&d.sig_int);
	event_del(&d.drain);
	event_del(&d.status);
	event_del(&d.watchdog);
	d.events_set = false;
}

/* The request gate: database methods wait for a schema convd serves. */
static const char *schema_gate(void)
{
	return schema_check_serving() ? NULL : schema_check_message();
}

/* Each method's handler (validate.h's ids). */
static void register_handlers(void)
{
	static const enum method_id one_statement[] = {
		METHOD_CLEAR_HISTORY, METHOD_GET_COUNT, METHOD_GET_USER_STATS,
		METHOD_GET_THREAD, METHOD_SAVE_THREAD, METHOD_DELETE_THREAD,
		METHOD_EXPORT_HISTORY, METHOD_IMPORT_MESSAGES,
	};

	request_register(METHOD_PING, admin_ping);
	request_register(METHOD_STATS, admin_stats);
	request_register(METHOD_HEALTH, admin_health);
	for (size_t i = 0; i < ARRAY_LEN(one_statement); i++)
		query_register(one_statement[i], store_build);
	batch_register(METHOD_ADD_MESSAGE, &store_add_batch);
	batch_register(METHOD_GET_RECENT, &store_recent_batch);
	request_register(METHOD_CLEANUP, retention_request);
	/* issue 17 */
	request_register(METHOD_LIST_CONVERSATIONS, conversations_list);
	query_register(METHOD_DELETE_CONVERSATION, conversations_build);
	query_register(METHOD_GET_STATE, conversations_build);
	query_register(METHOD_SET_STATE, conversations_build);
	/* issue 18: retrieval */
	request_register(METHOD_GET_CONTEXT, context_dispatch);
	request_register(METHOD_GET_MESSAGES, msgpage_dispatch);
	request_register(METHOD_DELETE_MESSAGE, erase_delete_message);
	request_register(METHOD_SEARCH_MESSAGES, search_dispatch);
	request_register(METHOD_FORGET_USER, erase_forget_user);
	request_set_gate(schema_gate);
}

/*
 * The statements every pool connection may prepare: each module's table,
 * one after the other (a module with statements adds its table here).
 */
static struct pool_statement *collect_statements(size_t *n)
{
	static const struct {
		const struct pool_statement *stmts;
		const size_t *n;
	} tables[] = {
		{store_statements, &store_nstatements},
		{conversations_statements, &conversations_nstatements},
	};
	struct pool_statement *all;
	size_t total = 0, k = 0;

	for (size_t i = 0; i < ARRAY_LEN(tables); i++)
		total += *tables[i].n;
	all = calloc(total ? total : 1, sizeof(*all));
	if (!all)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(tables); i++)
		for (size_t j = 0; j < *tables[i].n; j++)
			all[k++] = tables[i].stmts[j];
	*n = total;
	return all;
}

static int start(void)
{
	struct pool_settings ps = pool_settings_from(&d.cfg);
	uint64_t wd;
	int lfd;

	clock_tick();
	d.base = event_base_new();
	if (!d.base) {
		log_error("cannot create the event loop");
		return -1;
	}
	if (events_setup() < 0) {
		log_error("cannot set up signal handling");
		return -1;
	}
	fit_fd_limit(&d.cfg);
	stats_setup();
	admin_setup(clock_real_usec(), clock_mono_usec());
	register_handlers();
	lfd = sdn_listen_fd();
	if (lfd == -2)
		return -1;
	if (server_setup(d.base, &d.cfg, lfd) < 0)
		return -1;
	if (http_setup(d.base, &d.cfg) < 0)
		return -1;
	d.stmts = collect_statements(&d.nstmts);
	if (!d.stmts) {
		log_error("out of memory");
		return -1;
	}
	if (pool_setup(d.base, &d.dc, &ps, d.stmts, d.nstmts) < 0)
		return -1;
	if (batch_setup(d.base) < 0 || schema_check_setup(d.base) < 0 ||
	    deadline_setup(d.base, d.cfg.server.request_timeout * 1000) < 0 ||
	    retention_setup(d.base, &d.cfg) < 0 ||
	    partition_setup(d.base) < 0) {
		log_error("out of memory");
		return -1;
	}
	if (memory_setup(d.base) < 0 ||
	    loop_arm_usec(&d.status, STATUS_USEC, "status timer") < 0)
		return -1;
	wd = sdn_watchdog_usec();
	if (wd > 0) {
		if (loop_arm_usec(&d.watchdog, (usec_t)wd / 2,
				  "watchdog timer") < 0)
			return -1;
		log_info("systemd watchdog every %.1f s", (double)wd / 2e6);
	}
	sdn_notify("READY=1\nMAINPID=%d", (int)getpid());
	update_status();
	log_notice("convd %s ready", PACKAGE_VERSION);
	return 0;
}

static void stop(void)
{
	memory_cleanup();
	retention_cleanup();
	partition_cleanup();
	schema_check_cleanup();
	batch_cleanup();
	pool_cleanup();
	http_cleanup();
	deadline_cleanup();
	server_cleanup();
	request_cleanup();
	free(d.stmts);
	d.stmts = NULL;
	events_cleanup();
	if (d.base)
		event_base_free(d.base);
	dbconf_free(&d.dc);
	config_free(&d.cfg);
	log_notice("convd stopped");
	log_cleanup();
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool check_only = false;
	char err[512];
	int opt;

	d.config_path = DEFAULT_CONFIG;
	clock_tick();
	log_setup("convd", LOG_LVL_INFO);
	while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			d.config_path = optarg;
			d.config_given = true;
			break;
		case 't':
			check_only = true;
			break;
		case 'V':
			printf("convd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "convd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (load_config(&d.cfg, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	if (dbconf_build(&d.cfg, dbconf_getenv, &d.dc,
			 err, sizeof(err)) < 0) {
		log_error("%s", err);
		config_free(&d.cfg);
		return 1;
	}
	if (check_only) {
		/* the url as it may be shown: its passwords masked */
		struct config shown = d.cfg;
		char url[8192];

		dbconf_mask(d.cfg.db.url, url, sizeof(url));
		shown.db.url = url;
		config_print_effective(stdout, &shown);
		printf("# database: %s\n", d.dc.describe);
		printf("configuration OK: %s\n",
		       d.config_given || access(d.config_path, F_OK) == 0 ?
			       d.config_path :
			       "(defaults)");
		dbconf_free(&d.dc);
		config_free(&d.cfg);
		return 0;
	}
	log_set_level(d.cfg.log.level);
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)(clock_real_usec() ^ (getpid() << 16)));
	if (start() < 0) {
		sdn_notify("STATUS=start-up failed");
		stop();
		return 1;
	}
	/* One pass at a time; the cached clock is read anew in each, at its
	 * first use after the wait for events. */
	for (;;) {
		clock_invalidate();
		if (event_base_loop(d.base, EVLOOP_ONCE) != 0 ||
		    event_base_got_exit(d.base) || event_base_got_break(d.base))
			break;
	}
	stop();
	return 0;
}
