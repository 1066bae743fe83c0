/*
 * msgpage.h - get_messages (issue 18): one page of a conversation, back
 * from a message (before_id) or from the newest.
 */
#ifndef CONVD_MSGPAGE_H
#define CONVD_MSGPAGE_H

#include "request.h"

/* Runs a get_messages request to its answer. */
void msgpage_dispatch(struct request *r);

#endif
