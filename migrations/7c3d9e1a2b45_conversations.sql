-- revision: 7c3d9e1a2b45
-- parents: 5a1e0c2f7b90
-- message: conversations
-- transactional: no
-- created: 2026-12-03T14:30:00Z
--
-- Conversations as LLM apps keep them (issue 17): many per user and
-- provider (conversation_id, '' for the default conversation that holds
-- the seed's history), structured content (content_mp: the msgpack bytes
-- as sent; content keeps its text), tool calls (tool_call_id, name), the
-- model, token counts and metadata; the provider state of a conversation
-- (conversation_state, versioned).
--
-- Online, with writers running:
--  - the columns are added in one ALTER TABLE with constant defaults (no
--    table rewrite: PostgreSQL 11+ keeps the default in the catalog);
--    its ACCESS EXCLUSIVE lock is held for a catalog update only, and is
--    waited for 2 s at a time (writers never queue longer behind it),
--    for 60 s in all;
--  - the history index gains conversation_id: the new one is built
--    CONCURRENTLY before the old one is dropped CONCURRENTLY, so reads
--    always have one and writes maintain at most two for the duration.
--    On the partitioned layout `convctl db` builds each partition's index
--    concurrently and attaches it (PostgreSQL refuses CONCURRENTLY on a
--    partitioned table).
-- If building an index fails (the revision is then marked dirty), drop
-- the invalid index before running it again.
--
-- Downgrading loses what only this revision can hold: the conversations
-- other than the default (their messages stay, in the default one), the
-- structured content (its text stays in content), the new fields and
-- the states.  It needs --allow-destructive.

-- +up
DO $$
BEGIN
    FOR attempt IN 1..30 LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '2s', true);
            ALTER TABLE simple_conversation_history
                ADD COLUMN IF NOT EXISTS conversation_id varchar(255) NOT NULL DEFAULT '',
                ADD COLUMN IF NOT EXISTS tool_call_id varchar(255),
                ADD COLUMN IF NOT EXISTS name varchar(255),
                ADD COLUMN IF NOT EXISTS model varchar(255),
                ADD COLUMN IF NOT EXISTS tokens integer,
                ADD COLUMN IF NOT EXISTS metadata bytea,
                ADD COLUMN IF NOT EXISTS content_mp bytea;
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            IF attempt = 30 THEN
                RAISE;
            END IF;
            PERFORM pg_sleep(0.1);
        END;
    END LOOP;
END
$$;

CREATE TABLE IF NOT EXISTS conversation_state (
    user_id         varchar(255) NOT NULL,
    platform        varchar(50)  NOT NULL DEFAULT 'line',
    model_provider  varchar(50)  NOT NULL,
    conversation_id varchar(255) NOT NULL DEFAULT '',
    state           bytea        NOT NULL,
    version         bigint       NOT NULL,
    metadata        bytea,
    updated_at      timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT conversation_state_pkey
        PRIMARY KEY (user_id, platform, model_provider, conversation_id)
);

CREATE INDEX CONCURRENTLY IF NOT EXISTS simple_conversation_history_conversation_idx
    ON simple_conversation_history
    (user_id, platform, model_provider, conversation_id, created_at DESC, id DESC);

DROP INDEX CONCURRENTLY IF EXISTS simple_conversation_history_recent_idx;

-- +down
CREATE INDEX CONCURRENTLY IF NOT EXISTS simple_conversation_history_recent_idx
    ON simple_conversation_history
    (user_id, platform, model_provider, created_at DESC, id DESC);

DROP INDEX CONCURRENTLY IF EXISTS simple_conversation_history_conversation_idx;

DROP TABLE IF EXISTS conversation_state;

ALTER TABLE simple_conversation_history
    DROP COLUMN IF EXISTS content_mp,
    DROP COLUMN IF EXISTS metadata,
    DROP COLUMN IF EXISTS tokens,
    DROP COLUMN IF EXISTS model,
    DROP COLUMN IF EXISTS name,
    DROP COLUMN IF EXISTS tool_call_id,
    DROP COLUMN IF EXISTS conversation_id;
