/*
 * consts.h - named constants that more than one module uses: table names,
 * SQLSTATE codes, advisory lock keys.  A value used by one module only
 * stays in that module; one used by two or more lives here.
 *
 * Append to the section a constant belongs to; keep one per line.
 */
#ifndef CONVD_CONSTS_H
#define CONVD_CONSTS_H

/* --- tables (schema.sql) */
#define CONVD_T_HISTORY "simple_conversation_history"
#define CONVD_T_THREADS "user_thread_table"
#define CONVD_T_STATE "conversation_state"

/* --- SQLSTATE codes (PostgreSQL Appendix A) */
#define SQLSTATE_QUERY_CANCELED "57014"
#define SQLSTATE_UNIQUE_VIOLATION "23505"
#define SQLSTATE_UNDEFINED_TABLE "42P01"
#define SQLSTATE_READ_ONLY_TRANSACTION "25006"
#define SQLSTATE_INVALID_SQL_STATEMENT_NAME "26000"
#define SQLSTATE_DUPLICATE_PREPARED_STATEMENT "42P05"
#define SQLSTATE_TOO_MANY_CONNECTIONS "53300"
#define SQLSTATE_LOCK_NOT_AVAILABLE "55P03"
#define SQLSTATE_UNDEFINED_COLUMN "42703"
/* prefixes: class 08 connection exception; 57P01..57P03 admin_shutdown,
 * crash_shutdown, cannot_connect_now */
#define SQLSTATE_CLASS_CONNECTION "08"
#define SQLSTATE_PREFIX_SHUTDOWN "57P"

/* --- advisory lock keys ("convd" then a number, as bigint) */
/* convctl db: one migration at a time. */
#define CONVD_LOCK_MIGRATE 0x636F6E7664000001LL
/* retention: one cleanup run across every convd on a database. */
#define CONVD_LOCK_RETENTION 6567004532868204132LL

#endif
