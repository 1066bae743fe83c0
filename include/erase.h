/*
 * erase.h - delete_message and forget_user (issue 18): one message of a
 * user, or everything convd holds about a user.
 */
#ifndef CONVD_ERASE_H
#define CONVD_ERASE_H

#include "request.h"

/* Runs a delete_message request to its answer. */
void erase_delete_message(struct request *r);

/* Runs a forget_user request to its answer (admin). */
void erase_forget_user(struct request *r);

#endif
