/*
 * order.c - which conversations have writes in flight (see order.h).
 */
#include <string.h>

#include "order.h"

static uint16_t order_counts[ORDER_SLOTS];
/* the batch being built (order_begin) and the slots it holds */
static uint32_t order_gen = 1;
static uint32_t order_claimed[ORDER_SLOTS];

/* FNV-1a over the three strings, each followed by a separator byte that
 * valid arguments cannot contain (NUL). */
static uint64_t fnv(uint64_t h, const struct strview *s)
{
	const unsigned char *p = (const unsigned char *)s->p;

	for (size_t i = 0; i < s->len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h * 0x100000001b3ULL;	/* the separator: a NUL byte */
}

uint32_t order_slot(const struct strview *user_id,
		    const struct strview *platform,
		    const struct strview *provider)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = fnv(h, user_id);
	h = fnv(h, platform);
	h = fnv(h, provider);
	return (uint32_t)((h ^ (h >> 32)) & (ORDER_SLOTS - 1));
}

bool order_busy(uint32_t slot)
{
	return order_counts[slot & (ORDER_SLOTS - 1)] > 0;
}

/* One more write of the slot in flight: at most 65535 (-1 beyond). */
static int order_hold(uint32_t slot)
{
	uint16_t *c = &order_counts[slot & (ORDER_SLOTS - 1)];

	if (*c == UINT16_MAX)
		return -1;
	(*c)++;
	return 0;
}

void order_release(uint32_t slot)
{
	uint16_t *c = &order_counts[slot & (ORDER_SLOTS - 1)];

	if (*c > 0)
		(*c)--;
}

void order_begin(void)
{
	if (++order_gen == 0) {	/* wrapped: forget every old claim */
		memset(order_claimed, 0, sizeof(order_claimed));
		order_gen = 1;
	}
}

enum order_claim order_claim(uint32_t slot)
{
	slot &= ORDER_SLOTS - 1;
	if (order_claimed[slot] == order_gen)
		return ORDER_JOINED;
	if (order_busy(slot) || order_hold(slot) < 0)
		return ORDER_BUSY;
	order_claimed[slot] = order_gen;
	return ORDER_NEW;
}
