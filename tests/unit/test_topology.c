/*
 * test_topology.c - the signs read from SQLSTATEs and server messages.
 */
#include "tap.h"
#include "topology.h"

int main(void)
{
	ok(topology_wants_primary("read-write"), "read-write wants a primary");
	ok(topology_wants_primary("primary"), "primary wants a primary");
	ok(!topology_wants_primary("any"), "any does not");
	ok(!topology_wants_primary("prefer-standby"), "prefer-standby does not");
	ok(!topology_wants_primary(NULL), "unset does not");

	ok(topology_read_only_error("25006"), "25006 is read-only");
	ok(!topology_read_only_error("25P02"), "25P02 is not");
	ok(!topology_read_only_error(NULL), "no SQLSTATE is not");

	ok(topology_pooler_error("26000"), "26000: statement missing");
	ok(topology_pooler_error("42P05"), "42P05: statement already there");
	ok(!topology_pooler_error("42P01"), "42P01 is not a pooler's doing");

	ok(topology_server_full("FATAL:  sorry, too many clients already\n"),
	   "max_connections reached");
	ok(topology_server_full("connection to server at \"127.0.0.1\", port "
				"5432 failed: FATAL:  remaining connection "
				"slots are reserved for non-replication "
				"superuser connections"),
	   "only reserved slots left");
	ok(topology_server_full("FATAL:  too many connections for role \"x\""),
	   "a role's CONNECTION LIMIT");
	ok(topology_server_full("ERROR:  no more connections allowed "
				"(max_client_conn)"),
	   "PgBouncer's max_client_conn");
	ok(!topology_server_full("FATAL:  password authentication failed"),
	   "a bad password is not");
	ok(!topology_server_full(NULL), "no message is not");

	ok(topology_not_replicated("canceling wait for synchronous replication "
				   "due to user request"),
	   "a cancelled sync-rep wait");
	ok(topology_not_replicated("canceling the wait for synchronous "
				   "replication and terminating connection due "
				   "to administrator command"),
	   "a sync-rep wait ended by shutdown");
	ok(!topology_not_replicated("canceling statement due to statement "
				    "timeout"),
	   "a plain statement timeout is not");
	return tap_done();
}
