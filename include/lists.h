/*
 * lists.h - <sys/queue.h> (LIST, TAILQ), safe to include with libevent's
 * headers in any order.
 *
 * libevent's event_struct.h and keyvalq_struct.h define TAILQ_ENTRY and
 * TAILQ_HEAD for themselves when <sys/queue.h> has not been included,
 * #undef them afterwards, and the first of them leaves a flag behind that
 * makes a later one #undef <sys/queue.h>'s own.  So this header takes
 * libevent's first and then <sys/queue.h>, once more if its macros are
 * gone.  Include it instead of <sys/queue.h>.
 */
#ifndef CONVD_LISTS_H
#define CONVD_LISTS_H

#include <event2/event_struct.h>

#ifndef TAILQ_ENTRY
#undef _SYS_QUEUE_H_
#endif
#include <sys/queue.h>

#endif
