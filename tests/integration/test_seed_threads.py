"""The thread methods on a database the seed made (issue 17: "the thread
methods keep working, on the same data as the seed's"; AUDIT 21).

The real Alembic makes revision 001 (seedbot.py, as in test_adopt.py),
thread rows for two platforms are written as the seed's save_thread wrote
them (an upsert on (user_id, platform), created_at a naive UTC time),
`convctl db setup` adopts the database, and get_thread (both platforms),
save_thread and delete_thread go through convd; the table is checked
afterwards.
"""

import convdtest
from test_adopt import Legacy

# The seed's save_thread: upsert on the key, created_at reset (ORIGIN.md).
SEED_SAVE = ("INSERT INTO user_thread_table (user_id, platform, thread_id,"
             " created_at) VALUES ({u}, {p}, {t},"
             " (now() AT TIME ZONE 'UTC')::timestamp)"
             " ON CONFLICT (user_id, platform) DO UPDATE SET"
             " thread_id = EXCLUDED.thread_id,"
             " created_at = EXCLUDED.created_at")


def seed_save(leg, user, platform, thread):
    q = convdtest.sql_literal
    leg.sql(SEED_SAVE.format(u=q(user), p=q(platform), t=q(thread)))


def threads(leg):
    return leg.sql("SELECT user_id, platform, thread_id FROM"
                   " user_thread_table ORDER BY 1, 2").splitlines()


def test_thread_methods_after_adoption(pg, tmp_path, convd_factory):
    leg = Legacy(pg, tmp_path, "001", "UTC")
    seed_save(leg, "Useed", "line", "thread_old")
    seed_save(leg, "Useed", "line", "thread_abc")      # the upsert
    seed_save(leg, "Useed", "slack", "thread_slack")
    seed_save(leg, "Uother", "line", "thread_other")
    assert threads(leg) == ["Uother|line|thread_other",
                            "Useed|line|thread_abc",
                            "Useed|slack|thread_slack"]

    r = leg.db("setup")
    assert r.returncode == 0, r.stdout + r.stderr
    assert threads(leg) == ["Uother|line|thread_other",
                            "Useed|line|thread_abc",
                            "Useed|slack|thread_slack"]

    d = leg.convd(convd_factory)
    with d.client() as c:
        assert c.call("get_thread", "Useed") == "thread_abc"
        assert c.call("get_thread", user_id="Useed",
                      platform="line") == "thread_abc"
        assert c.call("get_thread", user_id="Useed",
                      platform="slack") == "thread_slack"
        assert c.call("get_thread", user_id="Useed",
                      platform="discord") is None
        assert c.call("save_thread", "Useed", "thread_new") is True
        assert c.call("get_thread", "Useed") == "thread_new"
        assert c.call("get_thread", user_id="Useed",
                      platform="slack") == "thread_slack"
        assert c.call("save_thread", user_id="Unew", thread_id="t_n",
                      platform="slack") is True
        assert threads(leg) == ["Unew|slack|t_n",
                                "Uother|line|thread_other",
                                "Useed|line|thread_new",
                                "Useed|slack|thread_slack"]
        # save_thread resets created_at, as the seed's did
        age = leg.sql("SELECT (now() AT TIME ZONE 'UTC')::timestamp"
                      " - created_at < interval '1 hour' FROM"
                      " user_thread_table WHERE user_id = 'Useed' AND"
                      " platform = 'line'")
        assert age == "t"
        assert c.call("delete_thread", "Useed") == {"deleted": 1}
        assert c.call("get_thread", "Useed") is None
        assert c.call("get_thread", user_id="Useed",
                      platform="slack") == "thread_slack"
        assert c.call("delete_thread", user_id="Useed",
                      platform="slack") == {"deleted": 1}
        assert c.call("delete_thread", "Useed") == {"deleted": 0}
        # the state methods do not reach the thread table
        assert c.call("get_state", user_id="Uother",
                      provider="openai") is None
    assert threads(leg) == ["Unew|slack|t_n", "Uother|line|thread_other"]
