/*
 * jsonmp.h - JSON text to MessagePack, for what people type at convctl
 * (`convctl state set USER PROVIDER JSON`; pure, tests/unit/test_jsonmp.c).
 *
 * Objects become maps (keys strs, in their order), arrays arrays, strings
 * strs (escapes decoded, \u surrogate pairs joined; lone surrogates and
 * invalid UTF-8 refused), integers that fit int64 ints, other numbers
 * float64, true/false/null themselves.  Nesting is bounded.
 */
#ifndef CONVD_JSONMP_H
#define CONVD_JSONMP_H

#include <msgpack.h>

#include "common.h"

#define JSONMP_MAX_DEPTH 64

/* Packs the one JSON value of s[0..len) (white space around it allowed)
 * into pk; -1 with "what at byte N" in err for anything else. */
CONVD_WUR int jsonmp_pack(const char *s, size_t len, msgpack_packer *pk,
			  char *err, size_t errlen);

#endif
