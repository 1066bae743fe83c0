/*
 * topology.c - reading the server's answers for signs of its shape.
 */
#include <string.h>

#include "topology.h"

bool topology_wants_primary(const char *tsa)
{
	return tsa && (strcmp(tsa, "read-write") == 0 ||
		       strcmp(tsa, "primary") == 0);
}

bool topology_read_only_error(const char *sqlstate)
{
	return sqlstate && strcmp(sqlstate, "25006") == 0;
}

bool topology_pooler_error(const char *sqlstate)
{
	return sqlstate && (strcmp(sqlstate, "26000") == 0 ||
			    strcmp(sqlstate, "42P05") == 0);
}

bool topology_server_full(const char *msg)
{
	static const char *const full[] = {
		"too many clients already",
		"remaining connection slots are reserved",
		"too many connections for",
		"no more connections allowed",
	};

	if (!msg)
		return false;
	for (size_t i = 0; i < sizeof(full) / sizeof(full[0]); i++)
		if (strstr(msg, full[i]))
			return true;
	return false;
}

bool topology_not_replicated(const char *m)
{
	return m && (strncmp(m, "canceling wait for synchronous replication",
			     42) == 0 ||
		     strncmp(m, "canceling the wait for synchronous "
				"replication", 46) == 0);
}
