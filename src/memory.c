/*
 * memory.c - the allocator's policy.
 *
 * A request cycle allocates and frees the same few hundred kilobytes over
 * and over: libpq's result blocks for a batch, the arrays of its
 * parameters, the staging of the answers.  With glibc's defaults the top
 * of the heap is handed back to the kernel (brk) as soon as 128 KB or so
 * are free there, and blocks over a similar size get a fresh mmap each
 * time; either way the next request faults every page back in, zero
 * filled.  Measured on get_recent_conversations under load: 1.5 minor page
 * faults per request, and a quarter of convd's CPU.
 *
 * So convd keeps up to MEMORY_KEEP bytes of free heap, serves only blocks
 * of MEMORY_MMAP_MIN or more with mmap (those are rare: a request or batch
 * of several megabytes), and gives the free heap back with malloc_trim()
 * once the daemon has been quiet for a whole TRIM_EVERY period (no request
 * of a method that uses the database: a monitor polling stats, health or
 * ping does not count as work): an idle convd holds no more than it
 * needs, a busy one does not breathe.
 */
#include <stdbool.h>

#include "autoconfig.h"
#if defined(HAVE_MALLOPT) || defined(HAVE_MALLOC_TRIM) || \
	defined(HAVE_MALLINFO2)
#include <malloc.h>
#endif

#include <event2/event_struct.h>

#include "clock.h"
#include "log.h"
#include "loop.h"
#include "memory.h"
#include "request.h"
#include "stats.h"
#include "validate.h"

#define MEMORY_KEEP (16 << 20)
/* glibc takes at most 512 KiB on 32-bit systems */
#define MEMORY_MMAP_MIN (sizeof(void *) > 4 ? 4 << 20 : 512 << 10)
#define TRIM_EVERY_USEC (5 * USEC_PER_SEC)

static struct {
	struct event timer;
	bool timer_set;
	uint64_t seen;		/* work counted at the last tick */
	bool trimmed;		/* since the last work */
	uint64_t trims;
} mem;

/* Requests of the methods that use the database, so far. */
static uint64_t memory_work(void)
{
	uint64_t n = 0;

	for (int m = 0; m < METHOD_COUNT_; m++)
		if (method_table[m].needs_db)
			n += stats_requests((enum method_id)m);
	return n;
}

static void memory_on_timer(evutil_socket_t fd, short what, void *arg)
{
	uint64_t seen = memory_work();

	(void)fd;
	(void)what;
	(void)arg;
	if (seen != mem.seen || request_inflight() > 0) {
		mem.seen = seen;
		mem.trimmed = false;
		return;
	}
	if (mem.trimmed)
		return;
	mem.trimmed = true;
#ifdef HAVE_MALLOC_TRIM
	mem.trims++;
	{
		/* not inside log_debug(): its arguments are not evaluated
		 * below the debug level */
		int released = malloc_trim(0);

		log_debug("memory: quiet, free heap %s to the kernel",
			  released ? "returned" : "already returned");
	}
#endif
}

int memory_setup(struct event_base *base)
{
#ifdef HAVE_MALLOPT
	/* setting either also stops glibc's own threshold adjustment */
	if (!mallopt(M_TRIM_THRESHOLD, MEMORY_KEEP) ||
	    !mallopt(M_MMAP_THRESHOLD, MEMORY_MMAP_MIN))
		log_warn("memory: cannot set the allocator's thresholds");
#endif
	mem.seen = memory_work();
	mem.trimmed = false;
	mem.trims = 0;
	if (event_assign(&mem.timer, base, -1, EV_PERSIST, memory_on_timer,
			 NULL) < 0)
		return -1;
	mem.timer_set = true;
	return loop_arm_usec(&mem.timer, TRIM_EVERY_USEC, "memory trim timer");
}

void memory_stats(struct memory_stats *out)
{
	out->trims = mem.trims;
	out->heap_bytes = 0;
	out->heap_free_bytes = 0;
#ifdef HAVE_MALLINFO2
	{
		struct mallinfo2 mi = mallinfo2();

		out->heap_bytes = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
		out->heap_free_bytes = (uint64_t)mi.fordblks;
	}
#endif
}

void memory_cleanup(void)
{
	if (mem.timer_set)
		event_del(&mem.timer);
	mem.timer_set = false;
}
