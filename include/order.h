/*
 * order.h - which conversations have writes in flight.
 *
 * Messages of one conversation (user_id, platform, provider) are stored
 * in the order convd received them: a batch of add_message rows takes a
 * conversation's requests only while no other batch of that conversation
 * is in flight, so ids (one sequence, taken in array order) and
 * created_at (the transaction's start, after the previous batch's
 * commit) follow arrival order.
 *
 * The set is a counting table indexed by a hash of the conversation:
 * two conversations that share a slot only wait for each other, which
 * costs a little batching and never the order.  Pure code, no state to
 * set up; one table per process.
 */
#ifndef CONVD_ORDER_H
#define CONVD_ORDER_H

#include "common.h"

#define ORDER_SLOTS (1u << 16)

/* The slot of a conversation. */
uint32_t order_slot(const struct strview *user_id,
		    const struct strview *platform,
		    const struct strview *provider);

/* Whether a write of the conversation in this slot is in flight. */
bool order_busy(uint32_t slot);

/*
 * Building a batch: order_begin() starts one, then order_claim() for each
 * write says whether it may join: ORDER_NEW (the slot was free and is now
 * held for the batch: order_release it when the batch ends),
 * ORDER_JOINED (the batch holds the slot already) or ORDER_BUSY (another
 * batch holds it: the write waits).
 */
enum order_claim { ORDER_BUSY, ORDER_NEW, ORDER_JOINED };
void order_begin(void);
enum order_claim order_claim(uint32_t slot);

/* One fewer write of the slot in flight (each ORDER_NEW claim holds the
 * slot once; a slot counts up to 65535 holds, and a claim beyond that is
 * ORDER_BUSY: the write waits). */
void order_release(uint32_t slot);

#endif
