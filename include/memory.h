/*
 * memory.h - the allocator's policy: freed memory stays in the heap for
 * reuse while the daemon is busy, and goes back to the kernel once it is
 * quiet.
 */
#ifndef CONVD_MEMORY_H
#define CONVD_MEMORY_H

#include <event2/event.h>
#include <msgpack.h>

#include "common.h"

/* Sets the allocator's thresholds and starts the quiet-time trim timer. */
CONVD_WUR int memory_setup(struct event_base *base);
void memory_cleanup(void);

/* Packs the "memory" map of the stats result: trims, heap_bytes,
 * heap_free_bytes. */
CONVD_WUR int memory_pack_stats(msgpack_packer *pk);

#endif
