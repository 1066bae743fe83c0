/*
 * search.h - search_messages (issue 18): a user's messages that contain
 * a text, newest first, from the search index.
 */
#ifndef CONVD_SEARCH_H
#define CONVD_SEARCH_H

#include "request.h"

/* Runs a search_messages request to its answer. */
void search_dispatch(struct request *r);

#endif
