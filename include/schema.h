/*
 * schema.h - what convd's code needs from the database schema.
 *
 * `convctl db` records every applied revision in SCHEMA_HISTORY_TABLE
 * (in the first schema of the search_path, normally public):
 *
 *   revision    text PRIMARY KEY     revision id
 *   parents     text[] NOT NULL      its parent revisions
 *   message     text NOT NULL
 *   checksum    text NOT NULL        SHA-256 (hex) of the SQL that runs
 *   kind        text NOT NULL        'applied', 'stamped' or 'adopted'
 *   applied_at  timestamptz NOT NULL
 *   applied_by  text NOT NULL        "dbrole (osuser@host)"
 *   duration_ms bigint NOT NULL
 *   dirty       boolean NOT NULL     true while a non-transactional
 *                                    revision is running or after it failed
 *   note        text                 error of a failed run, adoption note
 *
 * The daemon checks at start-up that SCHEMA_REQUIRED_REVISION is applied
 * and that nothing is dirty (SCHEMA_CHECK_QUERY, $1 = the revision); an
 * undefined-table error (SQLSTATE 42P01) means the database was never set
 * up.  In every failing case the fix is `convctl db setup` (or
 * `convctl db upgrade`), and for a dirty revision `convctl db status`.
 */
#ifndef CONVD_SCHEMA_H
#define CONVD_SCHEMA_H

#define SCHEMA_HISTORY_TABLE "convd_schema_history"

/* The newest revision convd's queries rely on (migrations/). */
#define SCHEMA_REQUIRED_REVISION "7c3d9e1a2b45"

/*
 * One row: applied (bigint, 1 when $1 is applied and clean), dirty
 * (bigint, how many revisions are marked dirty) and mismatch (text: the
 * number of rows of SCHEMA_VERIFY_QUERY, a newline, and the first of
 * them), in one round trip.
 */
#define SCHEMA_CHECK_QUERY                                              \
	"SELECT count(*) FILTER (WHERE revision = $1 AND NOT dirty),"   \
	" count(*) FILTER (WHERE dirty),"                               \
	" (SELECT count(*) || E'\\n' || coalesce(min(m), '') FROM ("    \
	SCHEMA_VERIFY_QUERY ") v(m))"                                   \
	" FROM " SCHEMA_HISTORY_TABLE

/*
 * The partitioned history layout (dbpart.h, `convctl db partition`): the
 * history table is partitioned, its primary key is (id, created_at), and
 * idempotency keys are unique through the key table, which the trigger
 * convd_history_key_insert fills, instead of a unique index.
 */
#define SCHEMA_PARTITIONED                                                 \
	"coalesce((SELECT relkind = 'p' FROM pg_class WHERE oid ="        \
	" to_regclass('simple_conversation_history')), false)"
#define SCHEMA_KEYS_UNIQUE                                                 \
	"(to_regclass('simple_conversation_history_idempotency_key_idx')"  \
	" IS NOT NULL OR (" SCHEMA_PARTITIONED " AND EXISTS (SELECT 1 FROM" \
	" pg_index i WHERE i.indrelid ="                                   \
	" to_regclass('simple_conversation_history_keys') AND i.indisprimary" \
	" AND (SELECT array_agg(a.attname::text ORDER BY u.o) FROM"        \
	" unnest(i.indkey) WITH ORDINALITY u(n, o) JOIN pg_attribute a ON"  \
	" a.attrelid = i.indrelid AND a.attnum = u.n) ="                   \
	" '{user_id,platform,idempotency_key}'::text[])"                    \
	" AND EXISTS (SELECT 1 FROM pg_trigger WHERE"                      \
	" tgrelid = to_regclass('simple_conversation_history') AND tgname ="\
	" 'convd_history_key_insert' AND tgenabled <> 'D')))"

/*
 * What the code relies on, beyond the revision being recorded: the live
 * columns, types and keys, each with the revision that promises it.  Only
 * the promises of recorded (clean) revisions are checked, so that a
 * history that says more than the tables hold (`convctl db stamp` on
 * tables that were never converted, a column altered by hand) is refused
 * instead of serving wrong ids or shifted times.  One row per difference:
 * a sentence.  No parameters; run with convd's search_path, like its
 * queries.  A revision that adds a column the code reads adds a line here.
 */
#define SCHEMA_VERIFY_QUERY                                                  \
	"WITH e(t, c, typs, want, rev) AS (VALUES"                           \
	" ('simple_conversation_history', 'id', '{int8}', 'bigint',"          \
	"  '3f9c2a7d41e0'),"                                                 \
	" ('simple_conversation_history', 'user_id', '{varchar,text}',"       \
	"  'character varying', '3f9c2a7d41e0'),"                            \
	" ('simple_conversation_history', 'platform', '{varchar,text}',"      \
	"  'character varying', '3f9c2a7d41e0'),"                            \
	" ('simple_conversation_history', 'model_provider', '{varchar,text}',"\
	"  'character varying', '3f9c2a7d41e0'),"                            \
	" ('simple_conversation_history', 'role', '{varchar,text}',"          \
	"  'character varying', '3f9c2a7d41e0'),"                            \
	" ('simple_conversation_history', 'content', '{text,varchar}',"       \
	"  'text', '3f9c2a7d41e0'),"                                         \
	" ('simple_conversation_history', 'created_at', '{timestamptz}',"     \
	"  'timestamp with time zone', '3f9c2a7d41e0'),"                     \
	" ('user_thread_table', 'user_id', '{varchar,text}',"                 \
	"  'character varying', '3f9c2a7d41e0'),"                            \
	" ('user_thread_table', 'platform', '{varchar,text}',"                \
	"  'character varying', '3f9c2a7d41e0'),"                            \
	" ('user_thread_table', 'thread_id', '{varchar,text}',"               \
	"  'character varying', '3f9c2a7d41e0'),"                            \
	" ('user_thread_table', 'created_at', '{timestamptz}',"               \
	"  'timestamp with time zone', '3f9c2a7d41e0'),"                     \
	" ('simple_conversation_history', 'conversation_id',"                 \
	"  '{varchar,text}', 'character varying', '7c3d9e1a2b45'),"          \
	" ('conversation_state', 'user_id', '{varchar,text}',"                \
	"  'character varying', '7c3d9e1a2b45'),"                            \
	" ('conversation_state', 'platform', '{varchar,text}',"               \
	"  'character varying', '7c3d9e1a2b45'),"                            \
	" ('conversation_state', 'model_provider', '{varchar,text}',"         \
	"  'character varying', '7c3d9e1a2b45'),"                            \
	" ('conversation_state', 'conversation_id', '{varchar,text}',"        \
	"  'character varying', '7c3d9e1a2b45'),"                            \
	" ('conversation_state', 'state', '{bytea}', 'bytea',"                \
	"  '7c3d9e1a2b45'),"                                                 \
	" ('conversation_state', 'version', '{int8}', 'bigint',"              \
	"  '7c3d9e1a2b45'),"                                                 \
	" ('conversation_state', 'updated_at', '{timestamptz}',"              \
	"  'timestamp with time zone', '7c3d9e1a2b45')),"                    \
	/* columns that may be NULL: their type only */                      \
	" o(t, c, typs, want, rev) AS (VALUES"                               \
	" ('simple_conversation_history', 'tool_call_id', '{varchar,text}',"  \
	"  'character varying', '7c3d9e1a2b45'),"                            \
	" ('simple_conversation_history', 'name', '{varchar,text}',"          \
	"  'character varying', '7c3d9e1a2b45'),"                            \
	" ('simple_conversation_history', 'model', '{varchar,text}',"         \
	"  'character varying', '7c3d9e1a2b45'),"                            \
	" ('simple_conversation_history', 'tokens', '{int4,int8}',"           \
	"  'integer', '7c3d9e1a2b45'),"                                      \
	" ('simple_conversation_history', 'metadata', '{bytea}', 'bytea',"    \
	"  '7c3d9e1a2b45'),"                                                 \
	" ('simple_conversation_history', 'content_mp', '{bytea}', 'bytea',"  \
	"  '7c3d9e1a2b45'),"                                                 \
	" ('conversation_state', 'metadata', '{bytea}', 'bytea',"             \
	"  '7c3d9e1a2b45')),"                                                \
	" k(t, cols, rev) AS (VALUES"                                        \
	" ('simple_conversation_history', '{id}'::text[], '3f9c2a7d41e0'),"   \
	" ('user_thread_table', '{user_id,platform}'::text[],"                \
	"  '3f9c2a7d41e0'),"                                                 \
	" ('conversation_state',"                                            \
	"  '{user_id,platform,model_provider,conversation_id}'::text[],"     \
	"  '7c3d9e1a2b45')),"                                                \
	" h AS (SELECT revision FROM " SCHEMA_HISTORY_TABLE " WHERE NOT dirty)" \
	" SELECT format('%s.%s is %s, but revision %s promises %s', e.t, e.c," \
	"  coalesce(format_type(a.atttypid, a.atttypmod) || CASE WHEN"        \
	"  a.attnotnull THEN ' NOT NULL' ELSE ' NULL' END, 'missing'), e.rev," \
	"  e.want || ' NOT NULL')"                                           \
	" FROM e JOIN h ON h.revision = e.rev"                               \
	" LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(e.t)"          \
	"  AND a.attname = e.c AND a.attnum > 0 AND NOT a.attisdropped"       \
	" LEFT JOIN pg_type ty ON ty.oid = a.atttypid"                       \
	" WHERE a.attname IS NULL OR NOT a.attnotnull"                       \
	"  OR ty.typname <> ALL (e.typs::name[])"                             \
	" UNION ALL"                                                         \
	" SELECT format('%s.%s is %s, but revision %s promises %s', o.t, o.c," \
	"  coalesce(format_type(a.atttypid, a.atttypmod), 'missing'), o.rev," \
	"  o.want)"                                                          \
	" FROM o JOIN h ON h.revision = o.rev"                               \
	" LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(o.t)"          \
	"  AND a.attname = o.c AND a.attnum > 0 AND NOT a.attisdropped"       \
	" LEFT JOIN pg_type ty ON ty.oid = a.atttypid"                       \
	" WHERE a.attname IS NULL OR ty.typname <> ALL (o.typs::name[])"      \
	" UNION ALL"                                                         \
	" SELECT format('%s has %s, but revision %s promises the primary key"\
	" (%s)', k.t, coalesce('the primary key (' || array_to_string(pk.cols,"\
	"  ', ') || ')', 'no primary key'), k.rev,"                          \
	"  array_to_string(k.cols, ', '))"                                   \
	" FROM k JOIN h ON h.revision = k.rev"                               \
	" LEFT JOIN LATERAL (SELECT array_agg(a.attname::text ORDER BY u.o)"  \
	"  AS cols FROM pg_index i, unnest(i.indkey) WITH ORDINALITY u(n, o),"\
	"  pg_attribute a WHERE i.indrelid = to_regclass(k.t)"               \
	"  AND i.indisprimary AND a.attrelid = i.indrelid AND a.attnum = u.n)"\
	"  pk ON true"                                                       \
	" WHERE to_regclass(k.t) IS NOT NULL AND pk.cols IS DISTINCT FROM k.cols" \
	/* the partitioned layout's key has the partition key too */         \
	"  AND NOT (k.t = 'simple_conversation_history'"                     \
	"  AND pk.cols = '{id,created_at}'::text[] AND " SCHEMA_PARTITIONED ")" \
	" UNION ALL"                                                         \
	" SELECT format('the sequence %s of simple_conversation_history.id is"\
	" %s, but revision %s promises bigint ids', s.seqrelid::regclass,"    \
	"  format_type(s.seqtypid, NULL), h.revision)"                       \
	" FROM h, pg_sequence s WHERE h.revision = '3f9c2a7d41e0'"            \
	"  AND s.seqrelid = CASE WHEN"                                       \
	"  to_regclass('simple_conversation_history') IS NOT NULL THEN"       \
	"  pg_get_serial_sequence('simple_conversation_history', 'id')"       \
	"  ::regclass END"                                                   \
	"  AND s.seqtypid <> 'int8'::regtype"                                 \
	" UNION ALL"                                                         \
	" SELECT format('simple_conversation_history.idempotency_key is %s,"  \
	" but revision %s promises character varying NULL with the unique"    \
	" index simple_conversation_history_idempotency_key_idx',"            \
	"  coalesce(format_type(a.atttypid, a.atttypmod), 'missing') || CASE" \
	"  WHEN NOT " SCHEMA_KEYS_UNIQUE " THEN ', without its unique index'"  \
	"  ELSE '' END, h.revision)"                                         \
	" FROM h LEFT JOIN pg_attribute a ON a.attrelid ="                    \
	"  to_regclass('simple_conversation_history')"                       \
	"  AND a.attname = 'idempotency_key' AND a.attnum > 0"                \
	"  AND NOT a.attisdropped"                                           \
	" LEFT JOIN pg_type ty ON ty.oid = a.atttypid"                       \
	" WHERE h.revision = '5a1e0c2f7b90' AND (a.attname IS NULL"          \
	"  OR ty.typname NOT IN ('varchar', 'text')"                         \
	"  OR NOT " SCHEMA_KEYS_UNIQUE ")"

/* The command that brings a database to what convd needs. */
#define SCHEMA_FIX_COMMAND "convctl db upgrade"

#endif
