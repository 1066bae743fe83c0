/*
 * batch.c - group commit and group reads (batch.h).
 */
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "clock.h"
#include "consts.h"
#include "log.h"
#include "loop.h"
#include "order.h"

/* One method's batcher. */
struct batcher {
	const struct batch_spec *spec;
	struct request_queue queue;	/* queued, not yet in a batch */
	int queued;
	int batches;			/* in flight (acquiring or running) */
	bool acquiring;			/* one batch waits for a connection */
	struct event timer;		/* the oldest queued request's wait */
	bool timer_set;
};

/* Indexed by method: those with a spec are batched (batch_register). */
static struct batcher batchers[METHOD_COUNT_];

/* A batch on its way: acquiring a connection, running, or (ordered)
 * retrying its requests one after the other. */
struct batch {
	struct batcher *bt;
	struct request_queue reqs;	/* its requests, in order */
	int n;
	struct pool_conn *pc;		/* while its query runs */
	struct pool_waiter waiter;
	char *buf;			/* the binary arrays */
	uint32_t *slots;		/* ordered: the conversations it holds */
	int nslots;
	struct request *cur;		/* ordered retries: the one running */
};

static const char batch_why_deadline[] = "no answer from the database "
					 "within [server] request_timeout";

static void batch_flush(struct batcher *bt);
static void batch_arm(struct batcher *bt);
static void batch_retry_next(struct batch *b);
static void batch_expire_running(struct request *r);

static void batch_free(struct batch *b)
{
	for (int i = 0; i < b->nslots; i++)
		order_release(b->slots[i]);
	b->bt->batches--;
	free(b->slots);
	free(b->buf);
	free(b);
}

/* Answers every request of q with the same error. */
static void batch_fail(struct request_queue *q, enum rpc_error e,
		       const char *msg)
{
	struct request *r;

	while ((r = TAILQ_FIRST(q))) {
		TAILQ_REMOVE(q, r, link);
		request_error(r, e, "%s", msg);
	}
}

/* Empties the batcher's queue into q. */
static void batch_take_all(struct batcher *bt, struct request_queue *q)
{
	TAILQ_INIT(q);
	TAILQ_CONCAT(q, &bt->queue, link);
	bt->queued = 0;
}

/* ---- ordered retries: one request after the other (b->cur runs) ---- */

static void batch_chain_on_result(void *arg, struct pool_conn *pc,
				  enum pool_status st, const PGresult *res,
				  const char *msg)
{
	struct batch *b = arg;
	struct request *r = b->cur;

	query_state(r)->pc = NULL;
	pool_release(pc);
	b->cur = NULL;
	query_answer(r, st, res, msg);
	batch_retry_next(b);
}

static void batch_chain_on_acquire(void *arg, struct pool_conn *pc,
				   enum pool_status st, const char *msg)
{
	struct batch *b = arg;
	struct request *r = b->cur;

	if (st != POOL_OK) {
		b->cur = NULL;
		request_error(r, query_error_for(st), "%s", msg);
		batch_retry_next(b);
		return;
	}
	query_state(r)->build = b->bt->spec->single;
	if (query_send(r, pc, batch_chain_on_result, b) < 0) {
		pool_release(pc);
		b->cur = NULL;
		request_error(r, E_UNAVAILABLE,
			      "database unavailable (cannot send the query)");
		batch_retry_next(b);
		return;
	}
	query_state(r)->pc = pc;
}

static void batch_retry_next(struct batch *b)
{
	struct batcher *bt = b->bt;
	struct request *r = TAILQ_FIRST(&b->reqs);

	if (!r) {
		batch_free(b);
		batch_flush(bt);
		return;
	}
	TAILQ_REMOVE(&b->reqs, r, link);
	b->cur = r;
	(void)pool_acquire_then(&query_state(r)->waiter,
				batch_chain_on_acquire, b);
}

/* The batch failed as a whole: each request again, alone.  Returns
 * whether the batch lives on (ordered: its requests run one after the
 * other, and it holds its conversations until the last has ended). */
static bool batch_retry_alone(struct batch *b)
{
	struct request *r;

	log_warn("%s: a batch of %d failed; retrying each alone",
		 b->bt->spec->what, b->n);
	if (b->bt->spec->slot) {
		batch_retry_next(b);
		return true;
	}
	while ((r = TAILQ_FIRST(&b->reqs))) {
		TAILQ_REMOVE(&b->reqs, r, link);
		query_run(r, b->bt->spec->single);
	}
	return false;
}

/* ---- running a batch ---------------------------------------------------------- */

static void batch_on_result(void *arg, struct pool_conn *pc,
			    enum pool_status st, const PGresult *res,
			    const char *msg)
{
	struct batch *b = arg;
	struct batcher *bt = b->bt;
	const struct batch_spec *spec = bt->spec;
	struct request_queue q;
	const char *sqlstate =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	pool_release(pc);
	b->pc = NULL;
	TAILQ_INIT(&q);
	TAILQ_CONCAT(&q, &b->reqs, link);
	if (st == POOL_OK) {
		struct request *r;

		if (spec->deliver(&q, b->n, res) < 0) {
			log_error("%s: a batch of %d got an unexpected result "
				  "(%d columns, %d rows)",
				  spec->what, b->n, PQnfields(res),
				  PQntuples(res));
			batch_fail(&q, E_INTERNAL, "unexpected result");
		}
		/* rows missing: another transaction committed a key
		 * meanwhile; alone, the request finds that row */
		while ((r = TAILQ_FIRST(&q))) {
			TAILQ_REMOVE(&q, r, link);
			query_run(r, spec->single);
		}
	} else if (st == POOL_QUERY_ERROR && b->n > 1 && sqlstate &&
		   strcmp(sqlstate, SQLSTATE_QUERY_CANCELED) == 0) {
		/* not retried after a statement timeout: each request would
		 * wait as long again */
		log_error("%s: a batch of %d took longer than "
			  "statement_timeout", spec->what, b->n);
		batch_fail(&q, E_TIMEOUT, "the query took longer than "
					  "[database] statement_timeout");
	} else if ((st == POOL_QUERY_ERROR || st == POOL_RESULT_TOO_LARGE) &&
		   b->n > 1) {
		TAILQ_CONCAT(&b->reqs, &q, link);
		if (batch_retry_alone(b))
			return;		/* the batch ends with its last retry */
	} else if (st == POOL_QUERY_ERROR || st == POOL_RESULT_TOO_LARGE) {
		struct request *r = TAILQ_FIRST(&q);

		TAILQ_REMOVE(&q, r, link);
		query_answer(r, st, res, msg);
	} else {
		batch_fail(&q, query_error_for(st),
			   query_status_message(st, msg));
	}
	batch_free(b);
	batch_flush(bt);
}

/* Takes what is queued now into b (ordered: only conversations that have
 * no other batch in flight; the others keep their place).  -1: out of
 * memory (nothing taken). */
static int batch_take(struct batch *b)
{
	struct batcher *bt = b->bt;
	const struct batch_spec *spec = bt->spec;
	struct request *r, *next;
	size_t bytes = 0;

	if (spec->slot) {
		b->slots = malloc(sizeof(*b->slots) * (size_t)spec->max_rows);
		if (!b->slots)
			return -1;
		order_begin();
	}
	for (r = TAILQ_FIRST(&bt->queue);
	     r && b->n < spec->max_rows && bytes < BATCH_MAX_BYTES; r = next) {
		next = TAILQ_NEXT(r, link);
		if (spec->slot) {
			uint32_t slot = spec->slot(r);
			enum order_claim cl = order_claim(slot);

			if (cl == ORDER_BUSY)
				continue;
			if (cl == ORDER_NEW)
				b->slots[b->nslots++] = slot;
		}
		TAILQ_REMOVE(&bt->queue, r, link);
		TAILQ_INSERT_TAIL(&b->reqs, r, link);
		b->n++;
		bytes += r->args.v[0].s.len +
			 (spec->size_arg >= 0 ? r->args.v[spec->size_arg].s.len :
						0);
	}
	bt->queued -= b->n;
	return 0;
}

static void batch_send(struct batch *b, struct pool_conn *pc)
{
	static const int fmts[BATCH_MAX_COLS] = {1, 1, 1, 1, 1, 1, 1, 1,
						  1, 1, 1, 1, 1, 1, 1, 1};
	struct batcher *bt = b->bt;
	const struct batch_spec *spec = bt->spec;
	const char *vals[BATCH_MAX_COLS];
	int lens[BATCH_MAX_COLS];
	struct request *r;
	const char *stmt = spec->stmt;
	const struct pgval_col *cols = spec->cols;
	int ncols = spec->ncols;
	bool ext = false;

	if (batch_take(b) < 0) {
		pool_release(pc);
		batch_free(b);
		return;		/* the next batch tries again */
	}
	batch_arm(bt);
	if (b->n == 0) {
		pool_release(pc);
		batch_free(b);
		return;
	}
	/* every column only when a request of the batch has a field that
	 * only some messages have */
	if (spec->stmt_ext) {
		TAILQ_FOREACH(r, &b->reqs, link)
			if ((ext = spec->is_ext(r)))
				break;
	}
	if (ext) {
		stmt = spec->stmt_ext;
		cols = spec->cols_ext;
		ncols = spec->ncols_ext;
	} else if (spec->key_arg >= 0) {
		/* the key column only when a request of the batch has one */
		bool keys = false;

		TAILQ_FOREACH(r, &b->reqs, link)
			if ((keys = r->args.v[spec->key_arg].present))
				break;
		if (keys)
			stmt = spec->stmt_keys;
		else
			ncols--;
	}
	if (pgval_encode_arrays(cols, ncols, &b->reqs, b->n, &b->buf, vals,
			   lens) < 0) {
		pool_release(pc);
		batch_fail(&b->reqs, E_INTERNAL, "out of memory");
		batch_free(b);
		return;
	}
	TAILQ_FOREACH(r, &b->reqs, link) {
		query_state(r)->owner = b;
		request_watch(r, batch_expire_running);
	}
	b->pc = pc;
	/* the whole batch within one answer's bound: a batch over it is
	 * retried request by request, each within its own */
	pool_set_result_limit(pc, request_max_output());
	if (pool_exec(pc, stmt, NULL, ncols, vals, lens, fmts, 1,
		      batch_on_result, b) < 0) {
		b->pc = NULL;
		pool_release(pc);
		batch_fail(&b->reqs, E_UNAVAILABLE,
			   "database unavailable (cannot send the query)");
		batch_free(b);
		batch_flush(bt);
	}
}

/* Fails the queued requests whose wait for a connection has passed the
 * pool timeout (the oldest first). */
static void batch_fail_due(struct batcher *bt)
{
	usec_t now = clock_now(), limit = pool_wait_timeout();
	struct request *r;

	while ((r = TAILQ_FIRST(&bt->queue)) && r->started + limit <= now) {
		TAILQ_REMOVE(&bt->queue, r, link);
		bt->queued--;
		request_error(r, E_TIMEOUT,
			      "no database connection became free within the "
			      "pool timeout");
	}
}

static void batch_on_acquire(void *arg, struct pool_conn *pc,
			     enum pool_status st, const char *msg)
{
	struct batch *b = arg;
	struct batcher *bt = b->bt;

	bt->acquiring = false;
	if (st == POOL_TIMEOUT) {
		/* The batch waited the whole pool timeout: the requests queued
		 * as long as it fail; younger ones keep their own deadline and
		 * wait for a connection in a batch of their own. */
		batch_free(b);
		batch_fail_due(bt);
		batch_arm(bt);
		batch_flush(bt);
		return;
	}
	if (st != POOL_OK) {
		/* the database is down (or convd stops): everything queued
		 * shares the fate, at once */
		struct request_queue q;

		batch_take_all(bt, &q);
		batch_free(b);
		batch_fail(&q, query_error_for(st), msg);
		return;
	}
	batch_send(b, pc);
}

/* Whether a queued request could go in a batch now (ordered: one whose
 * conversation has no batch in flight). */
static bool batch_sendable(const struct batcher *bt)
{
	const struct request *r;

	if (!bt->spec->slot)
		return !TAILQ_EMPTY(&bt->queue);
	TAILQ_FOREACH(r, &bt->queue, link)
		if (!order_busy(bt->spec->slot(r)))
			return true;
	return false;
}

/* Starts a batch if requests are queued and a batch slot is free; while
 * one batch waits for a connection, requests queued meanwhile join it
 * rather than start batches (and pool waiters) of their own. */
static void batch_flush(struct batcher *bt)
{
	while (bt->queued > 0 && bt->batches < bt->spec->max_batches &&
	       !bt->acquiring && batch_sendable(bt)) {
		struct batch *b = calloc(1, sizeof(*b));

		if (!b) {
			struct request_queue q;

			batch_take_all(bt, &q);
			batch_fail(&q, E_INTERNAL, "out of memory");
			return;
		}
		b->bt = bt;
		TAILQ_INIT(&b->reqs);
		bt->batches++;
		switch (pool_acquire_then(&b->waiter, batch_on_acquire, b)) {
		case POOL_ACQ_READY:
			break;		/* sent: the next batch, if any */
		case POOL_ACQ_QUEUED:
			/* requests queued meanwhile join this batch */
			bt->acquiring = true;
			return;
		case POOL_ACQ_FAILED:
			return;		/* batch_on_acquire failed the queue */
		}
	}
}

/*
 * Requests wait in the batcher while its batches are all in flight: they
 * get the same deadline as the pool's own queue (started + [pool]
 * timeout), and `timeout` when it passes, like any request that found no
 * connection.  The queue is FIFO, so the head is always due first.
 */
static void batch_arm(struct batcher *bt)
{
	struct request *first = TAILQ_FIRST(&bt->queue);

	if (!bt->timer_set)
		return;
	if (!first) {
		evtimer_del(&bt->timer);
		return;
	}
	if (loop_arm_usec(&bt->timer,
			  first->started + pool_wait_timeout() - clock_now(),
			  "batch queue timer") < 0)
		return;	/* logged; the queue still moves as batches end,
			 * and each request ends by its own deadline */
}

static void batch_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct batcher *bt = arg;

	(void)fd;
	(void)what;
	batch_fail_due(bt);
	batch_arm(bt);
}

/* ---- deadlines (request_timeout) ----------------------------------------------- */

/* A queued request's deadline passed: it leaves the queue. */
static void batch_expire_queued(struct request *r)
{
	struct batcher *bt = query_state(r)->owner;

	TAILQ_REMOVE(&bt->queue, r, link);
	bt->queued--;
	batch_arm(bt);
	request_error(r, E_TIMEOUT, "%s", batch_why_deadline);
}

/*
 * A request of a running batch reached its deadline: the batch's query
 * is cancelled and its connection dropped, and every request of the batch
 * is answered `timeout` (one statement: they share its fate; a batch ends
 * at the deadline of its oldest request).  An ordered retry's running
 * request is given up the same way.
 */
static void batch_expire_running(struct request *r)
{
	struct batch *b = query_state(r)->owner;
	struct batcher *bt = b->bt;
	struct request_queue q;

	if (b->pc)
		pool_abandon(b->pc);
	b->pc = NULL;
	TAILQ_INIT(&q);
	TAILQ_CONCAT(&q, &b->reqs, link);
	if (b->cur) {
		struct request *cur = b->cur;

		b->cur = NULL;
		query_cancel(cur);
		TAILQ_INSERT_HEAD(&q, cur, link);
	}
	batch_free(b);
	batch_fail(&q, E_TIMEOUT, batch_why_deadline);
	batch_flush(bt);
}

/* ---- the batcher ---------------------------------------------------------------- */

static void batch_enqueue(struct batcher *bt, struct request *r)
{
	bool was_empty = TAILQ_EMPTY(&bt->queue);

	query_state(r)->owner = bt;
	request_watch(r, batch_expire_queued);
	TAILQ_INSERT_TAIL(&bt->queue, r, link);
	bt->queued++;
	batch_flush(bt);
	if (!TAILQ_EMPTY(&bt->queue) &&
	    (was_empty || !evtimer_pending(&bt->timer, NULL)))
		batch_arm(bt);
}

/* The request handler of every batched method. */
static void batch_handle(struct request *r)
{
	struct batcher *bt = &batchers[r->spec->id];

	if (!bt->timer_set) {
		request_error(r, E_INTERNAL, "no batcher (convd is starting "
					     "or stopping)");
		return;
	}
	batch_enqueue(bt, r);
}

void batch_register(enum method_id m, const struct batch_spec *spec)
{
	if ((unsigned)m >= METHOD_COUNT_)
		return;
	batchers[m].spec = spec;
	TAILQ_INIT(&batchers[m].queue);
	request_register(m, batch_handle);
}

int batch_setup(struct event_base *base)
{
	for (int m = 0; m < METHOD_COUNT_; m++) {
		struct batcher *bt = &batchers[m];

		if (!bt->spec || bt->timer_set)
			continue;
		if (evtimer_assign(&bt->timer, base, batch_on_timer, bt) < 0)
			return -1;
		bt->timer_set = true;
	}
	return 0;
}

void batch_cleanup(void)
{
	for (int m = 0; m < METHOD_COUNT_; m++) {
		struct batcher *bt = &batchers[m];
		struct request_queue q;

		if (!bt->spec)
			continue;
		batch_take_all(bt, &q);
		if (bt->timer_set)
			evtimer_del(&bt->timer);
		bt->timer_set = false;
		batch_fail(&q, E_UNAVAILABLE, "convd is shutting down");
	}
}
