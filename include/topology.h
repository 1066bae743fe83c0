/*
 * topology.h - what the server's answers say about the database's shape:
 * a primary that became read-only, a server that is full, a pooler that
 * shares one server session among many clients.
 *
 * Pure functions of SQLSTATEs and messages (no state, no I/O): the pool
 * decides what to do with them.
 */
#ifndef CONVD_TOPOLOGY_H
#define CONVD_TOPOLOGY_H

#include "common.h"

/* Asked of a connection when convd must be on a primary: true ('t') when
 * the server is a standby or will not write (hot standby, a primary made
 * read-only, default_transaction_read_only); then, on a primary, the
 * timeline it writes on (0 on a standby).  A promoted standby writes on a
 * newer timeline than the primary it replaced: of two writable servers
 * of one cluster (the old one's Patroni frozen), the one with the older
 * timeline is stale. */
#define TOPOLOGY_CHECK_SQL                                           \
	"SELECT pg_catalog.pg_is_in_recovery() OR "                  \
	"pg_catalog.current_setting('transaction_read_only')::bool, " \
	"CASE WHEN pg_catalog.pg_is_in_recovery() THEN 0 ELSE "      \
	"('x' || substr(pg_catalog.pg_walfile_name("                 \
	"pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END"

/* target_session_attrs that require a writable server (read-write,
 * primary). */
bool topology_wants_primary(const char *target_session_attrs);

/* 25006 read_only_sql_transaction: the server no longer writes (a
 * demoted primary, a promoted standby's old peer). */
bool topology_read_only_error(const char *sqlstate);

/* 26000 invalid_sql_statement_name / 42P05 duplicate_prepared_statement:
 * named statements met a server session that is not the one they were
 * prepared on, i.e. a transaction-mode pooler. */
bool topology_pooler_error(const char *sqlstate);

/*
 * A connection refused because the server (or a pooler) has no free
 * connection slot: 53300 too_many_connections ("sorry, too many clients
 * already", "remaining connection slots are reserved ...", "too many
 * connections for role/database") or PgBouncer's "no more connections
 * allowed".  libpq gives no SQLSTATE for a failed connect, so this reads
 * the server's message (English, as servers send it with lc_messages C).
 */
bool topology_server_full(const char *msg);

/* The warning a server gives when a commit's wait for its synchronous
 * standby was cancelled (statement_timeout, pg_cancel_backend) or ended
 * by a shutdown: the transaction committed locally and may not be on any
 * standby. */
bool topology_not_replicated(const char *primary_message);

#endif
