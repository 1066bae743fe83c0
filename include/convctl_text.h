/*
 * convctl_text.h - convctl's output for people: stored text shown safely
 * (control characters and invalid UTF-8 escaped, so that data cannot
 * drive the terminal) and a stats/health map as aligned "path  value"
 * lines.
 */
#ifndef CONVD_CONVCTL_TEXT_H
#define CONVD_CONVCTL_TEXT_H

#include <msgpack.h>
#include <stdio.h>

#include "convctl.h"

/*
 * Writes s[0..len) for people: valid UTF-8 passes through; control
 * characters (C0 except tab and newline, DEL, C1) and invalid bytes are
 * shown as \xNN or \u00NN.  A newline starts a new line indented by
 * `indent` spaces, or is shown as \n when indent is SIZE_MAX.
 */
void convctl_text_put(FILE *f, const char *s, size_t len, size_t indent);

/* convctl_text_put of a C string on one line. */
void convctl_text_cstr(FILE *f, const char *s);

/* Display width of s (code points; good enough for key names). */
size_t convctl_text_width(const char *s);

/*
 * A map (stats, health) flattened into aligned "path  value" lines, the
 * keys of nested maps and arrays joined by '.'.  Returns an exit status
 * (EXIT_FAILURE after printing "out of memory").
 */
CONVD_WUR int convctl_text_flat(FILE *f, const msgpack_object *map);

/* "deleted N WHATs", or {"deleted":N} with --json. */
void convctl_text_deleted(struct convctl_ctx *x, int64_t deleted,
			  const char *what);

#endif
