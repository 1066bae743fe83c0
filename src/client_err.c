/*
 * client_err.c - libconvclient's errors: the convc_error of a failed call, and
 * a connection that fails for good.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client_internal.h"

/* Copies at most size-1 bytes of s[0..len) (stopping at a NUL) without
 * cutting a UTF-8 sequence in two. */
void client_err_copy(char *dst, size_t size, const char *s, size_t len)
{
	const char *nul = memchr(s, '\0', len);
	size_t n;

	if (nul)
		len = (size_t)(nul - s);
	n = len;
	if (n > size - 1) {
		n = size - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void set_errv(struct convc_error *err, const char *code,
		     const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void set_errv(struct convc_error *err, const char *code,
		     const char *fmt, va_list ap)
{
	char buf[sizeof(err->message) + 64];
	int n;

	if (!err)
		return;
	client_err_copy(err->code, sizeof(err->code), code, strlen(code));
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		buf[0] = '\0';
	client_err_copy(err->message, sizeof(err->message), buf, strlen(buf));
}

/* The connection is unusable from now on. */
int client_err_conn(struct convc *c, struct convc_error *err, const char *code,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_errv(&c->broken_err, code, fmt, ap);
	va_end(ap);
	c->broken = true;
	if (err)
		*err = c->broken_err;
	return CONVC_ERR_CONN;
}

int client_err_fail(struct convc_error *err, int status, const char *code,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_errv(err, code, fmt, ap);
	va_end(ap);
	return status;
}

/* The error to report for a call on a connection that failed earlier. */
int client_err_broken(const struct convc *c, struct convc_error *err)
{
	return client_err_fail(err, CONVC_ERR_CONN, "closed",
			       "connection failed earlier (%s: %s)",
			       c->broken_err.code, c->broken_err.message);
}

/* Refuses a call that does I/O while a callback runs. */
int client_err_in_callback(struct convc_error *err, const char *what)
{
	return client_err_fail(
		err, CONVC_ERR_LOCAL, "invalid_argument",
		"%s cannot be called from a callback on the same "
		"connection",
		what);
}
