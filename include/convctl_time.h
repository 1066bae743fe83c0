/*
 * convctl_time.h - convctl's times: microseconds since the epoch to ISO
 * 8601 UTC text and back (pure; tests/unit/test_convctl_time.c).
 */
#ifndef CONVD_CONVCTL_TIME_H
#define CONVD_CONVCTL_TIME_H

#include <stddef.h>

#include "common.h"

/*
 * ISO 8601 UTC with 3 or 6 decimals (digits): 2026-11-24T06:52:58.123Z.
 * A time outside the years 0000..9999 is written "@USEC".
 */
void convctl_time_format(char *buf, size_t len, int64_t usec, int digits);

/*
 * ISO 8601 / RFC 3339 date and time -> microseconds since the epoch:
 * YYYY-MM-DD, 'T' (or 't' or a space), hh:mm:ss, an optional fraction
 * (digits beyond microseconds are dropped), and Z, +hh:mm, -hh:mm, +hhmm
 * or +hh; without a zone the time is UTC.  False when s is not such a
 * time (or names a day that does not exist).
 */
CONVD_WUR bool convctl_time_parse(const char *s, int64_t *usec);

#endif
