/*
 * tap.h - a tiny TAP producer for the C unit tests (automake's
 * tap-driver.sh counts every check).
 *
 *   ok(cond, "name %d", i);        one test point
 *   is_int(got, want, "name");     with the values printed on failure
 *   is_str(got, want, "name");
 *   return tap_done();             prints the plan, exit status
 */
#ifndef CONVD_TAP_H
#define CONVD_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int __attribute__((format(printf, 2, 3)))
ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

#define is_int(got, want, ...)                                           \
	do {                                                             \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		if (!ok(g_ == w_, __VA_ARGS__))                          \
			printf("#   got %lld, want %lld (%s:%d)\n", g_, w_, \
			       __FILE__, __LINE__);                      \
	} while (0)

#define is_str(got, want, ...)                                             \
	do {                                                               \
		const char *g_ = (got), *w_ = (want);                      \
		if (!ok(g_ && w_ && strcmp(g_, w_) == 0, __VA_ARGS__))     \
			printf("#   got \"%s\", want \"%s\" (%s:%d)\n",      \
			       g_ ? g_ : "(null)", w_ ? w_ : "(null)",     \
			       __FILE__, __LINE__);                        \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
