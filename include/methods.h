/*
 * methods.h - dispatch of validated requests to their handlers.
 */
#ifndef CONVD_METHODS_H
#define CONVD_METHODS_H

#include "server.h"

struct methods_context {
	usec_t started_real;		/* for uptime */
	usec_t started_mono;
	const struct convd_config *cfg;
};

void methods_setup(const struct methods_context *ctx);
void methods_dispatch(struct request *r);

/* The result of the `stats` method (a map), also served by GET /metrics. */
CONVD_WUR int methods_pack_stats(msgpack_packer *pk);

#endif
