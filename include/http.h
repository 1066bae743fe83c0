/*
 * http.h - the HTTP endpoint for operators, served by libevent's evhttp on
 * convd's loop ([http] listen; off by default):
 *
 *   GET /metrics  the Prometheus text exposition of the stats (prom.h)
 *   GET /healthz  200 while the loop runs
 *   GET /readyz   200 when the database and the schema are usable
 *                 (health_check, the judgement of the health method),
 *                 else 503 with the reason
 *
 * Every answer is built in memory from state convd already has: nothing
 * waits on the database or the network.
 */
#ifndef CONVD_HTTP_H
#define CONVD_HTTP_H

#include <event2/event.h>

#include "common.h"
#include "config.h"

/* Starts listening if [http] listen is set (a no-op otherwise). */
CONVD_WUR int http_setup(struct event_base *base,
			 const struct config *cfg);
/* Shutting down: /readyz answers 503 from now on. */
void http_stopping(void);
void http_cleanup(void);

#endif
