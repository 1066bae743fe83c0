/*
 * config_internal.h - what the files of the config module share
 * (src/config.c: the table; config_value.c: values; config_parse.c: the
 * INI parser; config_doc.c: the generated documents).  The API is
 * config.h.
 */
#ifndef CONVD_CONFIG_INTERNAL_H
#define CONVD_CONFIG_INTERNAL_H

#include "config.h"

#define CONFIG_MAX_LINE 4096		/* bytes per line, without "\n" */
#define CONFIG_WHY 256			/* reason buffers */

/* size units (1024-based, as the K, M and G suffixes) */
#define CONFIG_KIB ((int64_t)1024)
#define CONFIG_MIB (CONFIG_KIB * 1024)
#define CONFIG_GIB (CONFIG_MIB * 1024)

/* A blank inside a line: space, tab, CR, VT, FF. */
bool config_is_space(char c);

/* name is one of the table's sections. */
bool config_section_known(const char *name);

/* The documentation of a section ("" for an unknown one). */
const char *config_section_doc(const char *name);

/* A deep copy, so that a file that fails half-way changes nothing;
 * -1 when out of memory (dst then holds nothing). */
CONVD_WUR int config_copy(struct config *dst,
			  const struct config *src);

#endif
