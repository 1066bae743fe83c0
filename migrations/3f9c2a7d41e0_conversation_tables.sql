-- revision: 3f9c2a7d41e0
-- message: create the conversation tables
-- created: 2026-11-24T07:05:00Z
--
-- The two tables of the seed, with `platform`, timestamps as timestamptz
-- (UTC) and every column NOT NULL.  Legacy databases (tables made from the
-- old README SQL, or altered by Alembic revision 001) are adopted by
-- `convctl db setup` into exactly this revision's schema.

-- +up
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
    CONSTRAINT simple_conversation_history_pkey PRIMARY KEY (id)
);

-- +down
DROP TABLE simple_conversation_history;
DROP TABLE user_thread_table;
