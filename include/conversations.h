/*
 * conversations.h - issue 17's methods on conversations themselves:
 * list_conversations, delete_conversation, get_state, set_state
 * (convd-protocol(7) "CONVERSATIONS").
 *
 * convd.c hands conversations_statements to the pool with the store's,
 * registers conversations_list as list_conversations' handler (it checks
 * the cursor, then runs the query) and conversations_build for the other
 * three (query_register).
 */
#ifndef CONVD_CONVERSATIONS_H
#define CONVD_CONVERSATIONS_H

#include "common.h"
#include "pool.h"
#include "query.h"
#include "request.h"

extern const struct pool_statement conversations_statements[];
extern const size_t conversations_nstatements;

/* list_conversations: refuses a cursor convd did not make, else runs. */
void conversations_list(struct request *r);

/* delete_conversation, get_state, set_state (query.h's build). */
int conversations_build(const struct request *r, struct pgval_params *p,
			const struct query_def **def);

#endif
