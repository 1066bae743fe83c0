/*
 * convctl_prom.c - `convctl stats --prometheus` on prom.c's formatter.
 */
#include <stdlib.h>

#include "buf.h"
#include "convctl.h"
#include "convctl_prom.h"
#include "prom.h"

/* stats --prometheus: the same text as convd's GET /metrics (prom.h). */
int convctl_prom_print(FILE *f, const msgpack_object *map)
{
	struct buf out = { 0 };
	int rc = EXIT_SUCCESS;

	if (prom_format(&out, map) < 0)
		rc = convctl_nomem();
	else if (out.len)
		fwrite(out.p, 1, out.len, f);
	buf_free(&out);
	return rc;
}
