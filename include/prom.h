/*
 * prom.h - the Prometheus text exposition format (version 0.0.4) of a
 * `stats` result.
 *
 * One formatter for both ends: convd serves it on GET /metrics (http.c)
 * from its own stats map, and `convctl stats --prometheus` prints it from
 * the map it received, so the two are the same text.  The stats keys it
 * knows become named metrics (counters end in _total, microseconds become
 * seconds, timestamps Unix seconds, strings info metrics, the latency
 * buckets a histogram); any other leaf is kept as a generic gauge named
 * after its path, so fields added later still show.
 */
#ifndef CONVD_PROM_H
#define CONVD_PROM_H

#include <msgpack.h>

#include "buf.h"

/* The content type of the exposition, for HTTP. */
#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Appends the exposition of stats (a map) to out.  Returns -1 when out of
 * memory (out is then unusable), else 0. */
CONVD_WUR int prom_format(struct buf *out, const msgpack_object *stats);

#endif
