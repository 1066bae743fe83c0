/*
 * common.h - small definitions shared by every convd module.
 */
#ifndef CONVD_COMMON_H
#define CONVD_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A function whose status the caller must check. */
#define CONVD_WUR __attribute__((warn_unused_result))
#define CONVD_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CONVD_UNUSED __attribute__((unused))

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A string that points into someone else's buffer: not NUL-terminated. */
struct strview {
	const char *p;
	size_t len;
};

/* Microseconds since the Unix epoch (UTC). */
typedef int64_t usec_t;

#define USEC_PER_SEC 1000000LL

/* The value of a hexadecimal digit, or -1 if c is not one. */
static inline int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Default socket path used by convd and its clients. */
#define CONVD_DEFAULT_SOCKET "/run/convd/convd.sock"

#endif
