-- revision: 9e4f0a6b3c18
-- parents: 7c3d9e1a2b45
-- message: message search
-- transactional: no
-- created: 2026-12-03T15:00:00Z
--
-- Retrieval (issue 18): the indexes of search_messages and of
-- get_context's system messages.
--
-- The index simple_conversation_history_search_idx is GIN over (user_id,
-- content) with pg_trgm's trigram operator class for content and
-- btree_gin's for user_id.  search_messages asks for a user's messages
-- whose text contains the query (ILIKE '%query%'); the index finds them
-- from the user's entries and the query's trigrams together, so a search
-- costs that user's matches, never other users' (a trigram index of
-- content alone reads every user's matches of a common word).  A query
-- of one or two characters has no trigram: the user's entries still
-- narrow it to the user's own messages.  pg_trgm makes trigrams of CJK
-- characters only where the database's LC_CTYPE says they are letters
-- (C.UTF-8, zh_TW.UTF-8, en_US.UTF-8: yes; C: no).  Full-text search
-- was measured and not taken: PostgreSQL's parsers have no Chinese word
-- breaking, so a Chinese phrase inside a sentence is not found.
-- Measured on 1M messages (BENCHMARKS.md, bench/search_index.py): what it
-- costs in space and in write speed is in the README.
--
-- The index simple_conversation_history_system_idx holds the system and
-- developer messages of each conversation, for get_context's include_system (the
-- system prompt is usually a conversation's oldest message: without it,
-- finding it reads the whole conversation).  Partial: it holds those
-- messages only.
--
-- Both are built CONCURRENTLY (writers are not blocked); on the
-- partitioned layout `convctl db` builds them partition by partition
-- and attaches them.  pg_trgm and btree_gin come with PostgreSQL
-- (postgresql-contrib) and are trusted extensions (PostgreSQL 13+): the
-- owner of the database, or a role with CREATE on it, may create them.
-- Otherwise a superuser runs `CREATE EXTENSION pg_trgm; CREATE EXTENSION
-- btree_gin;` in the database first.  If building an index fails (the
-- revision is then marked dirty), drop the invalid index before running
-- it again.  Downgrading drops the indexes and keeps the extensions
-- (something else may use them).

-- +up
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE INDEX CONCURRENTLY IF NOT EXISTS simple_conversation_history_search_idx
    ON simple_conversation_history
    USING gin (user_id, content gin_trgm_ops);

CREATE INDEX CONCURRENTLY IF NOT EXISTS simple_conversation_history_system_idx
    ON simple_conversation_history
    (user_id, platform, model_provider, conversation_id, created_at DESC, id DESC)
    WHERE role IN ('system', 'developer');

-- +down
DROP INDEX CONCURRENTLY IF EXISTS simple_conversation_history_system_idx;

DROP INDEX CONCURRENTLY IF EXISTS simple_conversation_history_search_idx;
