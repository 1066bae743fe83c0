-- revision: b8e15d6c0a93
-- parents: 3f9c2a7d41e0
-- message: indexes for history look-ups and the retention scan
-- created: 2026-11-24T07:05:00Z
--
-- recent_idx serves the history query (WHERE user_id, platform,
-- model_provider ORDER BY created_at DESC, id DESC LIMIT n), the
-- per-provider counts and statistics, and with its (user_id, platform)
-- prefix the per-user counts.  created_at_idx serves the retention scan
-- (DELETE ... WHERE created_at < cutoff, in batches).  Threads are looked
-- up by their primary key.

-- +up
CREATE INDEX simple_conversation_history_recent_idx
    ON simple_conversation_history
    (user_id, platform, model_provider, created_at DESC, id DESC);

CREATE INDEX simple_conversation_history_created_at_idx
    ON simple_conversation_history (created_at);

-- +down
DROP INDEX simple_conversation_history_created_at_idx;
DROP INDEX simple_conversation_history_recent_idx;
