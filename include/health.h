/*
 * health.h - whether convd can serve: the one readiness check behind the
 * `health` method, the systemd STATUS= line (and anything else that asks,
 * such as an HTTP /readyz).
 */
#ifndef CONVD_HEALTH_H
#define CONVD_HEALTH_H

#include "common.h"

struct health {
	bool ok;		/* ready to serve database requests */
	const char *database;	/* "up", "down", "stalled" or "failing" */
	const char *schema;	/* schema_check_state() */
	char message[320];	/* why not, or the schema's state */
};

void health_check(struct health *h);

#endif
