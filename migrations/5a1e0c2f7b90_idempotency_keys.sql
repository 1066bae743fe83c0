-- revision: 5a1e0c2f7b90
-- parents: b8e15d6c0a93
-- message: idempotency keys for add_message and import_message
-- transactional: no
-- created: 2026-12-03T11:40:00Z
--
-- A client may give add_message and import_message an idempotency key
-- (1..255 bytes, for example LINE's webhookEventId): a second call with
-- the same key for the same user and platform stores nothing and answers
-- the first call's {id, created_at}.  The key lives as long as its
-- message.  The column is nullable (no table rewrite); the unique index
-- is built CONCURRENTLY, so writers are not blocked while it is built,
-- and it holds only the rows that have a key.  If building the index
-- fails (the revision is then marked dirty), drop the invalid index
-- before running it again.

-- +up
ALTER TABLE simple_conversation_history
    ADD COLUMN IF NOT EXISTS idempotency_key varchar(255);

CREATE UNIQUE INDEX CONCURRENTLY simple_conversation_history_idempotency_key_idx
    ON simple_conversation_history (user_id, platform, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- +down
DROP INDEX CONCURRENTLY IF EXISTS simple_conversation_history_idempotency_key_idx;
ALTER TABLE simple_conversation_history DROP COLUMN IF EXISTS idempotency_key;
