/*
 * context.h - get_context (issue 18): the newest messages of a
 * conversation that fit a token budget, tool exchanges whole.
 */
#ifndef CONVD_CONTEXT_H
#define CONVD_CONTEXT_H

#include "request.h"

/* Runs a get_context request to its answer. */
void context_dispatch(struct request *r);

#endif
