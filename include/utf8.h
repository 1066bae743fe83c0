/*
 * utf8.h - UTF-8 decoding (pure): one sequence at a time, and a whole
 * string's validity.  Valid means RFC 3629: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 */
#ifndef CONVD_UTF8_H
#define CONVD_UTF8_H

#include "common.h"

/* *cp after utf8_next for a byte that starts no valid sequence. */
#define UTF8_INVALID UINT32_MAX

/*
 * Decodes the sequence that starts s[0..len) (len >= 1).  Returns its
 * length and the code point in *cp; for a byte that does not start a
 * valid sequence (a stray continuation byte, a bad lead byte, a sequence
 * cut short, overlong, a surrogate, above U+10FFFF) returns 1 with
 * *cp = UTF8_INVALID, so a caller can go on at the next byte.
 */
size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp);

/* s[0..len) is valid UTF-8 (NUL, U+0000, counts as valid). */
bool utf8_valid(const char *s, size_t len);

#endif
