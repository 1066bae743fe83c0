/*
 * errbuf.h - the err/errlen convention: a function that fails writes why
 * into its caller's buffer (char *err, size_t errlen), one sentence, no
 * newline.
 */
#ifndef CONVD_ERRBUF_H
#define CONVD_ERRBUF_H

#include "common.h"

/* Formats into err[0..len) (truncated; nothing when err is NULL or len 0). */
void errbuf_set(char *err, size_t len, const char *fmt, ...) CONVD_PRINTF(3, 4);

#endif
