/*
 * memory.h - the allocator's policy: freed memory stays in the heap for
 * reuse while the daemon is busy, and goes back to the kernel once it is
 * quiet.
 */
#ifndef CONVD_MEMORY_H
#define CONVD_MEMORY_H

#include <event2/event.h>

#include "common.h"

/* Sets the allocator's thresholds and starts the quiet-time trim timer. */
CONVD_WUR int memory_setup(struct event_base *base);
void memory_cleanup(void);

struct memory_stats {
	uint64_t trims;			/* free heap returned to the kernel */
	uint64_t heap_bytes;		/* the allocator's heap, free or not */
	uint64_t heap_free_bytes;
};

void memory_stats(struct memory_stats *out);

#endif
