/*
 * topology.c - reading the server's answers for signs of its shape.
 */
#include <string.h>

#include "consts.h"
#include "topology.h"

bool topology_wants_primary(const char *tsa)
{
	return tsa && (strcmp(tsa, "read-write") == 0 ||
		       strcmp(tsa, "primary") == 0);
}

bool topology_read_only_error(const char *sqlstate)
{
	return sqlstate && strcmp(sqlstate, SQLSTATE_READ_ONLY_TRANSACTION) == 0;
}

bool topology_pooler_error(const char *sqlstate)
{
	return sqlstate &&
	       (strcmp(sqlstate, SQLSTATE_INVALID_SQL_STATEMENT_NAME) == 0 ||
		strcmp(sqlstate, SQLSTATE_DUPLICATE_PREPARED_STATEMENT) == 0);
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
	/* the start of the message, in both wordings servers use */
	static const char old_text[] =
		"canceling wait for synchronous replication";
	static const char new_text[] =
		"canceling the wait for synchronous replication";

	return m && (strncmp(m, old_text, sizeof(old_text) - 1) == 0 ||
		     strncmp(m, new_text, sizeof(new_text) - 1) == 0);
}
