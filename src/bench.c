/*
 * bench.c - convd-bench: drives a running convd with N clients over its
 * Unix socket and reports requests/s and latency percentiles per method;
 * with --compare it runs the equivalent work through pgbench (and
 * redis-benchmark for ping) against the same machine in the same run and
 * prints the ratios.
 *
 * `threads` threads (like pgbench's -j), each with its own libevent loop
 * and its share of the N connections of the client library
 * (libconvclient) in its non-blocking mode, each keeping `depth` requests
 * in flight (pipelining): libevent watches convc_fd(), convc_process()
 * does the I/O and runs a completion callback per response, and the
 * callback queues the next request.  Latency is measured from the moment
 * a request is queued to the moment its response is decoded; each thread
 * keeps its own, merged when the run ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <msgpack.h>

#include "autoconfig.h"
#include "clock.h"
#include "common.h"
#include "consts.h"
#include "convd/client.h"
#include "json.h"
#include "log.h"
#include "loop.h"

enum bench_method { BM_ADD, BM_RECENT, BM_PING, BM_COUNT_ };

static const char *const bm_names[BM_COUNT_] = {
	[BM_ADD] = "add_message",
	[BM_RECENT] = "get_recent_conversations",
	[BM_PING] = "ping",
};

#define MAX_DEPTH 256

struct lat {
	usec_t *v;
	size_t n, cap;
	uint64_t errors;
	char first_error[sizeof(((struct convc_error *)0)->code) +
			sizeof(((struct convc_error *)0)->message) + 2];
};

struct bconn;
struct worker;

/* One request in flight: the callback's argument. */
struct slot {
	struct bconn *conn;
	usec_t sent;
	uint8_t method;
	bool busy;
};

struct bconn {
	struct worker *w;
	struct convc *c;
	struct event ev;		/* readable (persistent) */
	struct event wev;		/* writable, only while output waits */
	bool events_set;		/* ev and wev are assigned */
	struct slot slots[MAX_DEPTH];
	int inflight;
	unsigned rnd;
};

/* One thread: its loop, its connections, its latencies. */
struct worker {
	pthread_t tid;
	struct event_base *base;
	struct event stop;		/* the end of the run */
	struct bconn *conns;
	int nconns, open_conns;
	bool running;
	usec_t started, stopped;
	struct lat lat[BM_COUNT_];
};

static struct {
	const char *socket;
	int clients, threads, depth, seconds, size, users;
	int weights[BM_COUNT_];
	int wsum;
	bool compare, json, load_only;
	bool keys;		/* --keys: an idempotency key per add_message */
	unsigned long key_prefix;
	const char *pg;		/* libpq conninfo for pgbench */
	char *content;
	struct lat lat[BM_COUNT_];	/* the run's, merged */
	usec_t started, stopped;
} b = {
	.socket = NULL, .clients = 32, .threads = -1, .depth = 1, .seconds = 10,
	.size = 400, .users = 10000,
};

static void lat_add(struct lat *l, usec_t v)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 65536;
		usec_t *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv) {
			fprintf(stderr, "convd-bench: out of memory\n");
			exit(1);
		}
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = v;
}

static int cmp_usec(const void *x, const void *y)
{
	usec_t a = *(const usec_t *)x, c = *(const usec_t *)y;

	return a < c ? -1 : a > c;
}

static double lat_pct(const struct lat *l, double q)
{
	size_t i;

	if (l->n == 0)
		return 0;
	i = (size_t)(q * (double)(l->n - 1));
	return (double)l->v[i] / 1000.0;
}

static enum bench_method pick_method(struct bconn *c)
{
	int r;

	c->rnd = c->rnd * 1103515245u + 12345u;
	r = (int)((c->rnd >> 8) % (unsigned)b.wsum);
	for (int m = 0; m < BM_COUNT_; m++) {
		if (r < b.weights[m])
			return (enum bench_method)m;
		r -= b.weights[m];
	}
	return BM_PING;
}

static void die_conn(const struct convc_error *e, const char *what)
{
	fprintf(stderr, "convd-bench: %s: %s: %s\n", what, e->code,
		e->message);
	exit(1);
}

static void on_response(struct convc *c, int status,
			const struct convc_reply *reply,
			const struct convc_error *err, void *arg);

/* Queues one request on the connection (sent by the next convc_process). */
static void send_one(struct bconn *c)
{
	struct convc_error e;
	enum bench_method m = pick_method(c);
	msgpack_packer *pk;
	struct slot *s = c->slots;
	char user[32];
	int ulen;

	while (s->busy)
		s++;
	c->rnd = c->rnd * 1103515245u + 12345u;
	ulen = snprintf(user, sizeof(user), "bench-user-%u",
			(c->rnd >> 4) % (unsigned)b.users);
	pk = convc_request_begin(c->c, bm_names[m], NULL, &e);
	if (!pk)
		die_conn(&e, "cannot queue a request");
	switch (m) {
	case BM_ADD: {
		/* a packing failure is reported by convc_request_end_cb */
		static unsigned long long nkeys;	/* shared by the threads */
		char key[64];
		int klen = b.keys ? snprintf(key, sizeof(key), "bench-%lx-%llx",
					     b.key_prefix,
					     __atomic_fetch_add(&nkeys, 1,
								__ATOMIC_RELAXED)) :
				    0;

		(void)!(msgpack_pack_array(pk, b.keys ? 6 : 4) < 0 ||
			msgpack_pack_str_with_body(pk, user, (size_t)ulen) < 0 ||
			msgpack_pack_str_with_body(pk, "anthropic", 9) < 0 ||
			msgpack_pack_str_with_body(pk, "user", 4) < 0 ||
			msgpack_pack_str_with_body(pk, b.content,
						   (size_t)b.size) < 0 ||
			(b.keys &&
			 (msgpack_pack_str_with_body(pk, "line", 4) < 0 ||
			  msgpack_pack_str_with_body(pk, key, (size_t)klen) < 0)));
		break;
	}
	case BM_RECENT:
		(void)!(msgpack_pack_array(pk, 3) < 0 ||
			msgpack_pack_str_with_body(pk, user, (size_t)ulen) < 0 ||
			msgpack_pack_str_with_body(pk, "anthropic", 9) < 0 ||
			msgpack_pack_int(pk, 10) < 0);
		break;
	default:
		(void)!msgpack_pack_array(pk, 0);
		break;
	}
	s->conn = c;
	s->method = (uint8_t)m;
	s->busy = true;
	s->sent = clock_mono_usec();
	if (convc_request_end_cb(c->c, on_response, s, &e) != CONVC_OK)
		die_conn(&e, "cannot queue a request");
	c->inflight++;
}

static void on_response(struct convc *c, int status,
			const struct convc_reply *reply,
			const struct convc_error *err, void *arg)
{
	struct slot *s = arg;
	struct bconn *bc = s->conn;
	struct worker *w = bc->w;
	struct lat *l = &w->lat[s->method];

	(void)c;
	(void)reply;
	s->busy = false;
	bc->inflight--;
	if (status == CONVC_ERR_CONN)
		die_conn(err, "connection failed");
	if (status == CONVC_ERR_DAEMON) {
		if (l->errors++ == 0)
			snprintf(l->first_error, sizeof(l->first_error),
				 "%s: %s", err->code, err->message);
	} else if (w->running) {
		lat_add(l, clock_mono_usec() - s->sent);
	}
	if (w->running)
		send_one(bc);
}

static void conn_close(struct bconn *c)
{
	if (!c->c)
		return;
	if (c->events_set) {
		event_del(&c->ev);
		event_del(&c->wev);
		c->events_set = false;
	}
	convc_close(c->c);
	c->c = NULL;
	if (--c->w->open_conns == 0)
		event_base_loopexit(c->w->base, NULL);
}

/* Watches for writability while output waits; a connection whose event
 * cannot be armed would stall the run: it ends the benchmark. */
static void arm_write(struct bconn *c)
{
	if (convc_want_write(c->c) &&
	    loop_arm(&c->wev, NULL, "connection write") < 0)
		exit(1);
}

/* Runs convc_process for what libevent saw; watches for writability only
 * while output waits. */
static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct bconn *c = arg;
	struct convc_error e;
	int events = 0;

	(void)fd;
	if (what & EV_READ)
		events |= CONVC_EV_READ;
	if (what & EV_WRITE)
		events |= CONVC_EV_WRITE;
	if (convc_process(c->c, events, &e) != CONVC_OK)
		die_conn(&e, "connection failed");
	if (!c->w->running && c->inflight == 0) {
		conn_close(c);
		return;
	}
	arm_write(c);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	w->running = false;
	w->stopped = clock_mono_usec();
	/* in-flight requests drain; conns close as they empty */
	for (int i = 0; i < w->nconns; i++)
		if (w->conns[i].c && w->conns[i].inflight == 0)
			conn_close(&w->conns[i]);
}

static int connect_one(struct worker *w, struct bconn *c, int idx)
{
	struct convc_error e;
	int fd;

	c->c = convc_connect(b.socket, 10000, &e);
	if (!c->c) {
		fprintf(stderr, "convd-bench: cannot connect to %s: %s: %s\n",
			b.socket, e.code, e.message);
		return -1;
	}
	/* no per-request deadline: the run's timer bounds the benchmark */
	convc_set_timeout(c->c, 0);
	fd = convc_fd(c->c);
	c->w = w;
	c->rnd = 2166136261u ^ (unsigned)idx * 16777619u;
	if (event_assign(&c->ev, w->base, fd, EV_READ | EV_PERSIST, conn_event,
			 c) < 0 ||
	    event_assign(&c->wev, w->base, fd, EV_WRITE, conn_event, c) < 0)
		return -1;
	c->events_set = true;
	if (loop_arm(&c->ev, NULL, "connection read") < 0)
		return -1;
	w->open_conns++;
	return 0;
}

/* Queues `depth` requests on a connection and writes them. */
static void conn_start(struct bconn *c)
{
	struct convc_error e;

	while (c->inflight < b.depth)
		send_one(c);
	if (convc_process(c->c, CONVC_EV_WRITE, &e) != CONVC_OK)
		die_conn(&e, "connection failed");
	arm_write(c);
}

/* One thread's run: starts its connections, runs its loop until the
 * timer has stopped them and they have drained. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct timeval tv = {b.seconds, 0};

	if (evtimer_assign(&w->stop, w->base, on_stop, w) < 0 ||
	    loop_arm(&w->stop, &tv, "run timer") < 0) {
		fprintf(stderr, "convd-bench: cannot start a timer\n");
		exit(1);
	}
	w->running = true;
	w->started = clock_mono_usec();
	for (int i = 0; i < w->nconns; i++)
		conn_start(&w->conns[i]);
	event_base_dispatch(w->base);
	event_del(&w->stop);
	return NULL;
}

/* Appends a worker's latencies to the run's. */
static void lat_merge(struct lat *into, struct lat *from)
{
	for (size_t i = 0; i < from->n; i++)
		lat_add(into, from->v[i]);
	if (from->errors && !into->errors)
		memcpy(into->first_error, from->first_error,
		       sizeof(into->first_error));
	into->errors += from->errors;
	free(from->v);
	memset(from, 0, sizeof(*from));
}

/* Closes the workers' connections and frees them, their loops and
 * latencies (those not merged yet). */
static void workers_free(struct worker *ws, int nw, struct bconn *conns)
{
	for (int t = 0; t < nw; t++) {
		struct worker *w = &ws[t];

		for (int i = 0; i < w->nconns; i++)
			conn_close(&w->conns[i]);
		if (w->base)
			event_base_free(w->base);
		for (int m = 0; m < BM_COUNT_; m++)
			free(w->lat[m].v);
	}
	free(ws);
	free(conns);
}

/* Runs the mix in b.weights for b.seconds on b.threads threads; fills
 * b.lat, b.started and b.stopped. */
static int run_convd(void)
{
	struct bconn *conns;
	struct worker *ws;
	int nw = b.threads;

	for (int m = 0; m < BM_COUNT_; m++) {
		free(b.lat[m].v);
		memset(&b.lat[m], 0, sizeof(b.lat[m]));
	}
	b.wsum = 0;
	for (int m = 0; m < BM_COUNT_; m++)
		b.wsum += b.weights[m];
	conns = calloc((size_t)b.clients, sizeof(*conns));
	ws = calloc((size_t)nw, sizeof(*ws));
	if (!conns || !ws) {
		free(conns);
		free(ws);
		return -1;
	}
	/* connections dealt out evenly, in blocks */
	for (int t = 0, next = 0; t < nw; t++) {
		struct worker *w = &ws[t];
		int upto = (int)((long)b.clients * (t + 1) / nw);

		w->conns = conns + next;
		w->nconns = upto - next;
		w->base = event_base_new();
		next = upto;
		if (!w->base) {
			workers_free(ws, t + 1, conns);
			return -1;
		}
		for (int i = 0; i < w->nconns; i++)
			if (connect_one(w, &w->conns[i], next - w->nconns + i) <
			    0) {
				workers_free(ws, t + 1, conns);
				return -1;
			}
	}
	for (int t = 0; t < nw; t++)
		if (pthread_create(&ws[t].tid, NULL, worker_run, &ws[t]) != 0) {
			fprintf(stderr, "convd-bench: cannot start a thread\n");
			exit(1);
		}
	for (int t = 0; t < nw; t++)
		pthread_join(ws[t].tid, NULL);
	b.started = ws[0].started;
	b.stopped = ws[0].stopped;
	for (int t = 0; t < nw; t++) {
		struct worker *w = &ws[t];

		if (w->started < b.started)
			b.started = w->started;
		if (w->stopped > b.stopped)
			b.stopped = w->stopped;
		for (int m = 0; m < BM_COUNT_; m++)
			lat_merge(&b.lat[m], &w->lat[m]);
	}
	workers_free(ws, nw, conns);
	for (int m = 0; m < BM_COUNT_; m++)
		if (b.lat[m].n)
			qsort(b.lat[m].v, b.lat[m].n, sizeof(usec_t), cmp_usec);
	return 0;
}

static double rate(enum bench_method m)
{
	double secs = (double)(b.stopped - b.started) / 1e6;

	return secs > 0 ? (double)b.lat[m].n / secs : 0;
}

static void report(const char *title)
{
	if (b.json) {
		struct json j = JSON_INIT(stdout);
		bool first = true, mfirst = true;

		fputc('{', stdout);
		json_kv_str(&j, &first, "run", title);
		json_kv_int(&j, &first, "clients", b.clients);
		json_kv_int(&j, &first, "threads", b.threads);
		json_kv_int(&j, &first, "depth", b.depth);
		json_kv_int(&j, &first, "seconds", b.seconds);
		json_key(&j, &first, "methods");
		fputc('{', stdout);
		for (int m = 0; m < BM_COUNT_; m++) {
			bool f = true;

			if (!b.weights[m])
				continue;
			json_key(&j, &mfirst, bm_names[m]);
			fputc('{', stdout);
			json_kv_int(&j, &f, "requests", (int64_t)b.lat[m].n);
			json_key(&j, &f, "per_second");
			json_double(&j, rate((enum bench_method)m));
			json_key(&j, &f, "errors");
			json_uint(&j, b.lat[m].errors);
			json_key(&j, &f, "p50_ms");
			json_double(&j, lat_pct(&b.lat[m], 0.50));
			json_key(&j, &f, "p95_ms");
			json_double(&j, lat_pct(&b.lat[m], 0.95));
			json_key(&j, &f, "p99_ms");
			json_double(&j, lat_pct(&b.lat[m], 0.99));
			fputc('}', stdout);
		}
		fputs("}}\n", stdout);
		return;
	}
	printf("%s: %d clients, %d threads, depth %d, %d s\n", title,
	       b.clients, b.threads, b.depth, b.seconds);
	printf("  %-26s %10s %10s %8s %9s %9s %9s\n", "method", "requests",
	       "req/s", "errors", "p50 ms", "p95 ms", "p99 ms");
	for (int m = 0; m < BM_COUNT_; m++) {
		if (!b.weights[m])
			continue;
		printf("  %-26s %10zu %10.0f %8" PRIu64 " %9.3f %9.3f %9.3f\n",
		       bm_names[m], b.lat[m].n, rate((enum bench_method)m),
		       b.lat[m].errors, lat_pct(&b.lat[m], 0.50),
		       lat_pct(&b.lat[m], 0.95), lat_pct(&b.lat[m], 0.99));
		if (b.lat[m].errors)
			printf("  first error: %s\n", b.lat[m].first_error);
	}
	fflush(stdout);
}

/* ---- --compare: the same work through pgbench / redis-benchmark ---------- */

/* Runs argv, captures stdout into buf; returns the exit status. */
static int run_capture(char *const argv[], char *buf, size_t len)
{
	int pfd[2], status = -1;
	size_t got = 0;
	pid_t pid;

	if (pipe(pfd) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		close(pfd[0]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t n = read(pfd[0], buf + got, len - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == len - 1)
			got = 0; /* keep the tail only */
	}
	buf[got] = '\0';
	close(pfd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static double pgbench_tps(const char *script_body)
{
	char path[] = "/tmp/convd-bench-XXXXXX";
	char out[65536], clients[16], secs[16], threads[16];
	int fd = mkstemp(path);
	double tps = -1;
	char *p;

	if (fd < 0 || write(fd, script_body, strlen(script_body)) < 0) {
		perror("convd-bench: pgbench script");
		return -1;
	}
	close(fd);
	snprintf(clients, sizeof(clients), "%d", b.clients);
	snprintf(threads, sizeof(threads), "%d", b.threads);
	snprintf(secs, sizeof(secs), "%d", b.seconds);
	{
		char *argv[] = {"pgbench", "-n", "-M", "prepared", "-c",
				clients, "-j", threads, "-T", secs, "-f", path,
				(char *)b.pg, NULL};

		if (run_capture(argv, out, sizeof(out)) != 0)
			fprintf(stderr, "convd-bench: pgbench failed:\n%s\n",
				out);
		else if ((p = strstr(out, "tps = ")))
			tps = strtod(p + 6, NULL);
	}
	unlink(path);
	return tps;
}

static double redis_ping_rps(void)
{
	char dir[] = "/tmp/convd-bench-redis-XXXXXX";
	char sock[256], out[65536], clients[16], n[32], conf[512], th[16];
	double rps = -1;
	pid_t pid;

	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
	pid = fork();
	if (pid == 0) {
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 1);
		dup2(devnull, 2);
		snprintf(conf, sizeof(conf), "%s", sock);
		execlp("redis-server", "redis-server", "--port", "0",
		       "--unixsocket", conf, "--save", "", "--appendonly",
		       "no", "--dir", dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && access(sock, F_OK) < 0; i++)
		usleep(20000);
	if (access(sock, F_OK) == 0) {
		/* the same number of requests convd served per second,
		 * times the duration */
		snprintf(clients, sizeof(clients), "%d", b.clients);
		snprintf(n, sizeof(n), "%d", 100000 * b.seconds);
		snprintf(th, sizeof(th), "%d", b.threads);
		/* as many client threads as convd-bench's (--threads: 6.0+) */
		char *argv[] = {"redis-benchmark", "-s", sock, "-c", clients,
				"-n", n, "-t", "ping", "-q",
				b.threads > 1 ? "--threads" : NULL, th, NULL};
		if (run_capture(argv, out, sizeof(out)) == 0) {
			/* the summary line: "PING_MBULK: 123.45 requests per
			 * second" (PING_MBULK is the protocol form; progress
			 * lines before it say "rps=") */
			char *p = strstr(out, "PING_MBULK: ");

			while (p && strncmp(p + 12, "rps=", 4) == 0)
				p = strstr(p + 12, "PING_MBULK: ");
			if (p)
				rps = strtod(p + 12, NULL);
		}
	}
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	unlink(sock);
	rmdir(dir);
	return rps;
}

static void compare_line(const char *what, double ours, double theirs,
			 double target)
{
	if (theirs <= 0) {
		printf("  %-44s convd %10.0f/s   (the other side failed)\n",
		       what, ours);
		return;
	}
	printf("  %-44s convd %10.0f/s   other %10.0f/s   ratio %.2fx "
	       "(target %.1fx: %s)\n",
	       what, ours, theirs, ours / theirs, target,
	       ours / theirs >= target ? "met" : "NOT met");
}

static int run_compare(void)
{
	char script[8192];
	double ours, theirs;
	int saved[BM_COUNT_];

	memcpy(saved, b.weights, sizeof(saved));
	printf("== compare: %d clients, %d s per run, %d-byte messages\n",
	       b.clients, b.seconds, b.size);

	memset(b.weights, 0, sizeof(b.weights));
	b.weights[BM_ADD] = 1;
	if (run_convd() < 0)
		return -1;
	report("convd add_message");
	ours = rate(BM_ADD);
	snprintf(script, sizeof(script),
		 "\\set uid random(0, %d)\n"
		 "INSERT INTO " CONVD_T_HISTORY " (user_id, platform,"
		 " model_provider, role, content) VALUES ('bench-user-' || :uid,"
		 " 'line', 'anthropic', 'user', '%s');\n",
		 b.users - 1, b.content);
	theirs = pgbench_tps(script);
	compare_line("add_message vs pgbench INSERT", ours, theirs, 1.5);

	memset(b.weights, 0, sizeof(b.weights));
	b.weights[BM_RECENT] = 1;
	if (run_convd() < 0)
		return -1;
	report("convd get_recent_conversations");
	ours = rate(BM_RECENT);
	snprintf(script, sizeof(script),
		 "\\set uid random(0, %d)\n"
		 "SELECT id, role, content, created_at, model_provider FROM"
		 " " CONVD_T_HISTORY " WHERE user_id = 'bench-user-' ||"
		 " :uid AND platform = 'line' AND model_provider = 'anthropic'"
		 " ORDER BY created_at DESC, id DESC LIMIT 20;\n",
		 b.users - 1);
	theirs = pgbench_tps(script);
	compare_line("get_recent_conversations vs pgbench SELECT", ours, theirs,
		     0.8);

	memset(b.weights, 0, sizeof(b.weights));
	b.weights[BM_PING] = 1;
	if (run_convd() < 0)
		return -1;
	report("convd ping");
	ours = rate(BM_PING);
	theirs = redis_ping_rps();
	compare_line("ping vs redis-server PING", ours, theirs, 0.8);
	memcpy(b.weights, saved, sizeof(saved));
	return 0;
}

static int parse_mix(const char *s)
{
	char buf[256], *save = NULL, *tok;

	memset(b.weights, 0, sizeof(b.weights));
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		int w = 1, m;

		if (colon) {
			*colon = '\0';
			w = atoi(colon + 1);
		}
		for (m = 0; m < BM_COUNT_; m++)
			if (strcmp(tok, bm_names[m]) == 0 ||
			    (m == BM_RECENT && strcmp(tok, "history") == 0))
				break;
		if (m == BM_COUNT_ || w < 0 || w > 1000)
			return -1;
		b.weights[m] = w;
	}
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: convd-bench [-s SOCKET] [-c CLIENTS] [-j THREADS] [-d DEPTH]\n"
		"                   [-T SECONDS] [-m MIX] [--size BYTES] [--users N] [--json]\n"
		"                   [--compare --pg CONNINFO]\n"
		"\n"
		"  -s, --socket PATH   convd's socket (default $CONVD_SOCKET or %s)\n"
		"  -c, --clients N     concurrent connections (default 32)\n"
		"  -j, --threads N     client threads sharing them, like pgbench -j\n"
		"                      (default 2, at most CLIENTS)\n"
		"  -d, --depth N       requests in flight per connection (default 1, max %d)\n"
		"  -T, --time SECONDS  duration of each run (default 10)\n"
		"  -m, --mix MIX       methods and weights, e.g. add_message:1,get_recent_conversations:4\n"
		"                      (default add_message:1,get_recent_conversations:1)\n"
		"      --size BYTES    message size for add_message (default 400)\n"
		"      --keys          a fresh idempotency key on every add_message\n"
		"      --users N       distinct user ids (default 10000)\n"
		"      --json          one JSON object per run\n"
		"      --compare       also run pgbench (and redis-benchmark) with the\n"
		"                      equivalent work and print the ratios\n"
		"      --pg CONNINFO   the database for pgbench (libpq conninfo or URL)\n",
		CONVD_DEFAULT_SOCKET, MAX_DEPTH);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"clients", required_argument, NULL, 'c'},
		{"threads", required_argument, NULL, 'j'},
		{"depth", required_argument, NULL, 'd'},
		{"time", required_argument, NULL, 'T'},
		{"mix", required_argument, NULL, 'm'},
		{"size", required_argument, NULL, 1},
		{"users", required_argument, NULL, 2},
		{"json", no_argument, NULL, 3},
		{"compare", no_argument, NULL, 4},
		{"pg", required_argument, NULL, 5},
		{"keys", no_argument, NULL, 6},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	signal(SIGPIPE, SIG_IGN);
	log_setup("convd-bench", LOG_LVL_WARNING);
	b.socket = getenv("CONVD_SOCKET") ? getenv("CONVD_SOCKET") :
					    CONVD_DEFAULT_SOCKET;
	b.weights[BM_ADD] = 1;
	b.weights[BM_RECENT] = 1;
	while ((opt = getopt_long(argc, argv, "s:c:j:d:T:m:hV", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 's':
			b.socket = optarg;
			break;
		case 'c':
			b.clients = atoi(optarg);
			break;
		case 'j':
			b.threads = atoi(optarg);
			break;
		case 'd':
			b.depth = atoi(optarg);
			break;
		case 'T':
			b.seconds = atoi(optarg);
			break;
		case 'm':
			if (parse_mix(optarg) < 0) {
				fprintf(stderr, "convd-bench: bad --mix '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 1:
			b.size = atoi(optarg);
			break;
		case 2:
			b.users = atoi(optarg);
			break;
		case 3:
			b.json = true;
			break;
		case 4:
			b.compare = true;
			break;
		case 5:
			b.pg = optarg;
			break;
		case 6:
			b.keys = true;
			b.key_prefix = (unsigned long)time(NULL) ^
				       ((unsigned long)getpid() << 16);
			break;
		case 'V':
			printf("convd-bench %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (b.threads == -1)	/* not given */
		b.threads = b.clients < 2 ? 1 : 2;
	if (optind < argc || b.clients < 1 || b.clients > 100000 ||
	    b.threads < 1 || b.threads > b.clients || b.threads > 64 ||
	    b.depth < 1 || b.depth > MAX_DEPTH || b.seconds < 1 ||
	    b.size < 1 || b.size > (1 << 20) || b.users < 1 ||
	    (b.compare && !b.pg)) {
		usage(stderr);
		return 2;
	}
	b.content = malloc((size_t)b.size + 1);
	if (!b.content)
		return 1;
	for (int i = 0; i < b.size; i++)
		b.content[i] = (char)('a' + i % 26);
	b.content[b.size] = '\0';
	if (b.compare)
		return run_compare() < 0 ? 1 : 0;
	if (run_convd() < 0)
		return 1;
	report("convd");
	for (int m = 0; m < BM_COUNT_; m++)
		if (b.weights[m] && b.lat[m].errors)
			return 1;
	return 0;
}
