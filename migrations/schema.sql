-- convd's schema model: the schema the newest revision produces.
--
-- `convctl db diff` compares the live database with this file and
-- `convctl db migrate -m MSG --autogenerate` writes a revision from the
-- differences.  To change the schema, edit this file, then run
-- `convctl db migrate --autogenerate -m "what changed"`.
--
-- The file is loaded into a scratch schema inside a transaction that is
-- rolled back, so write plain DDL without schema names.

CREATE TABLE user_thread_table (
    user_id    varchar(255) NOT NULL,
    platform   varchar(50)  NOT NULL DEFAULT 'line',
    thread_id  varchar(255) NOT NULL,
    created_at timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT user_thread_table_pkey PRIMARY KEY (user_id, platform)
);

CREATE TABLE simple_conversation_history (
    id             bigserial    NOT NULL,
    user_id        varchar(255) NOT NULL,
    platform       varchar(50)  NOT NULL DEFAULT 'line',
    model_provider varchar(50)  NOT NULL,
    role           varchar(20)  NOT NULL,
    content        text         NOT NULL,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    idempotency_key varchar(255),
    conversation_id varchar(255) NOT NULL DEFAULT '',
    tool_call_id   varchar(255),
    name           varchar(255),
    model          varchar(255),
    tokens         integer,
    metadata       bytea,
    content_mp     bytea,
    CONSTRAINT simple_conversation_history_pkey PRIMARY KEY (id)
);

-- History look-ups of one conversation, the list of a user's
-- conversations, per-provider counts and statistics, and with the
-- (user_id, platform) prefix the per-user counts.
CREATE INDEX simple_conversation_history_conversation_idx
    ON simple_conversation_history
    (user_id, platform, model_provider, conversation_id, created_at DESC, id DESC);

-- The retention scan.
CREATE INDEX simple_conversation_history_created_at_idx
    ON simple_conversation_history (created_at);

-- Idempotency keys of add_message and import_message: one message per
-- (user_id, platform, key).
CREATE UNIQUE INDEX simple_conversation_history_idempotency_key_idx
    ON simple_conversation_history (user_id, platform, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The provider state of a conversation (set_state / get_state), with a
-- version for compare-and-set.
CREATE TABLE conversation_state (
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

-- Retrieval (issue 18, revision 9e4f0a6b3c18).  search_messages: the
-- user's entries and the text's trigrams in one GIN index (pg_trgm for
-- content, btree_gin for user_id; both trusted extensions of
-- postgresql-contrib).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE INDEX simple_conversation_history_search_idx
    ON simple_conversation_history
    USING gin (user_id, content gin_trgm_ops);

-- get_context's include_system: each conversation's system and developer
-- messages.
CREATE INDEX simple_conversation_history_system_idx
    ON simple_conversation_history
    (user_id, platform, model_provider, conversation_id, created_at DESC, id DESC)
    WHERE role IN ('system', 'developer');
