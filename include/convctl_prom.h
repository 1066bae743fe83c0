/*
 * convctl_prom.h - `convctl stats --prometheus`: the stats map convd
 * sent, in the same text as convd's GET /metrics (prom.h).
 */
#ifndef CONVD_CONVCTL_PROM_H
#define CONVD_CONVCTL_PROM_H

#include <msgpack.h>
#include <stdio.h>

#include "common.h"

/* Writes the exposition of map to f.  Returns an exit status
 * (EXIT_FAILURE after printing "out of memory"). */
CONVD_WUR int convctl_prom_print(FILE *f, const msgpack_object *map);

#endif
