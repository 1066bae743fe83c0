/*
 * convctl_time.c - ISO 8601 times for convctl's output and its import.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "convctl_time.h"

/* ISO 8601 UTC with 3 or 6 decimals: 2026-11-24T06:52:58.123Z. */
void convctl_time_format(char *buf, size_t len, int64_t usec, int digits)
{
	int64_t sec = usec / 1000000, frac = usec % 1000000;
	time_t t;
	struct tm tm;

	if (frac < 0) {
		frac += 1000000;
		sec--;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 8099) {
		snprintf(buf, len, "@%" PRId64, usec);
		return;
	}
	if (digits == 3)
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(frac / 1000));
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	/* H. Hinnant's algorithm: days since 1970-01-01, proleptic Gregorian */
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char **p, const char *end, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (*p >= end || **p < '0' || **p > '9')
			return false;
		*v = *v * 10 + (**p - '0');
		(*p)++;
	}
	return true;
}

/*
 * ISO 8601 / RFC 3339 date and time -> microseconds since the epoch:
 * YYYY-MM-DD, 'T' (or 't' or a space), hh:mm:ss, an optional fraction
 * (digits beyond microseconds are dropped), and Z, +hh:mm, -hh:mm, +hhmm
 * or +hh; without a zone the time is UTC.
 */
bool convctl_time_parse(const char *s, int64_t *usec)
{
	const char *p = s, *end = s + strlen(s);
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, scale = 100000, days;
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
				     30, 31 };

	if (!digits(&p, end, 4, &y) || p >= end || *p++ != '-' ||
	    !digits(&p, end, 2, &mo) || p >= end || *p++ != '-' ||
	    !digits(&p, end, 2, &d) || p >= end ||
	    (*p != 'T' && *p != 't' && *p != ' '))
		return false;
	p++;
	if (!digits(&p, end, 2, &h) || p >= end || *p++ != ':' ||
	    !digits(&p, end, 2, &mi) || p >= end || *p++ != ':' ||
	    !digits(&p, end, 2, &sec))
		return false;
	if (p < end && (*p == '.' || *p == ',')) {
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return false;
		for (; p < end && *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (p < end && (*p == 'Z' || *p == 'z')) {
		p++;
	} else if (p < end && (*p == '+' || *p == '-')) {
		sign = *p++ == '-' ? -1 : 1;
		if (!digits(&p, end, 2, &oh))
			return false;
		if (p < end && *p == ':')
			p++;
		if (p < end && !digits(&p, end, 2, &om))
			return false;
		if (oh > 23 || om > 59)
			return false;
	}
	if (p != end || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 ||
	    sec > 59)
		return false;
	if (d > mdays[mo - 1] + (mo == 2 && (y % 4 == 0 && (y % 100 != 0 ||
							       y % 400 == 0))))
		return false;
	days = days_from_civil(y, (unsigned)mo, (unsigned)d);
	*usec = ((days * 24 + h) * 60 + mi) * 60 + sec;
	*usec -= (int64_t)sign * (oh * 3600 + om * 60);
	*usec = *usec * 1000000 + frac;
	return true;
}

