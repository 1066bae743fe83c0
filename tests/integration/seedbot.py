#!/usr/bin/python3
"""The system convd replaces, for the adoption tests (test_adopt.py): its
tables and its data written the ways it wrote them, with the real
SQLAlchemy and Alembic from Debian (python3-sqlalchemy 1.4,
python3-alembic 1.8, python3-psycopg2).  See /work/shared/seed/ORIGIN.md.

    seedbot.py schema URL DIR SHAPE    readme | 001 | user
    seedbot.py write URL SHAPE USER WAY:N[,WAY:N...]

`schema` makes the tables: from the README's SQL (run through
SQLAlchemy), then for 001 the seed's Alembic revision '001' ("add platform
support", which only alters existing tables), and for `user` also a
revision of the user's own after it (a column, an index, and a seed index
renamed), each applied by `alembic upgrade` with an env.py in DIR.

`write` stores N messages of USER the way WAY, for each WAY:N in turn (run
it with TZ set, as the bot ran):
  utcnow  the ORM model's default, datetime.utcnow (naive UTC)
  now     created_at=datetime.now() (naive local time of TZ)
  server  raw SQL without created_at: the column default CURRENT_TIMESTAMP
          (the wall clock of the session's TimeZone)
  aware   created_at=datetime.now(timezone.utc) into the timestamp column
          (psycopg2 sends it with its offset; PostgreSQL stores it in the
          session's TimeZone)
  old     created_at=datetime.now() - 40 days (history from long ago)
and prints one JSON line per message: content and the instant it was
written, [t0, t1] in seconds since the epoch (taken around the commit;
old: 40 days earlier).
"""

import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone

from alembic import command
from alembic.config import Config
from sqlalchemy import Column, DateTime, Integer, String, Text, create_engine
from sqlalchemy import text
from sqlalchemy.orm import Session, declarative_base

# The README's SQL (before platform existed).
README_SQL = """
CREATE TABLE user_thread_table (
    user_id VARCHAR(255) PRIMARY KEY,
    thread_id VARCHAR(255) NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE simple_conversation_history (
    id SERIAL PRIMARY KEY,
    user_id VARCHAR(255) NOT NULL,
    model_provider VARCHAR(50) NOT NULL,
    role VARCHAR(20) NOT NULL,
    content TEXT NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_user_model_created
    ON simple_conversation_history (user_id, model_provider, created_at DESC);
"""

ENV_PY = '''
from alembic import context
from sqlalchemy import engine_from_config, pool

config = context.config
engine = engine_from_config(config.get_section(config.config_ini_section),
                            prefix="sqlalchemy.", poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
'''

# The seed's only revision (alembic/versions/001_add_platform_support.py).
REV_001 = '''"""add platform support

Revision ID: 001
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("user_thread_table",
                  sa.Column("platform", sa.String(50), nullable=False,
                            server_default="line"))
    op.drop_constraint("user_thread_table_pkey", "user_thread_table",
                       type_="primary")
    op.create_primary_key("user_thread_table_pkey", "user_thread_table",
                          ["user_id", "platform"])
    op.add_column("simple_conversation_history",
                  sa.Column("platform", sa.String(50), nullable=False,
                            server_default="line"))
    op.create_index("idx_user_platform", "simple_conversation_history",
                    ["user_id", "platform"])
    op.create_index("idx_user_platform_provider",
                    "simple_conversation_history",
                    ["user_id", "platform", "model_provider"])
    op.create_index("idx_created_at", "simple_conversation_history",
                    ["created_at"])


def downgrade():
    op.drop_index("idx_created_at", "simple_conversation_history")
    op.drop_index("idx_user_platform_provider", "simple_conversation_history")
    op.drop_index("idx_user_platform", "simple_conversation_history")
    op.drop_column("simple_conversation_history", "platform")
    op.drop_constraint("user_thread_table_pkey", "user_thread_table",
                       type_="primary")
    op.create_primary_key("user_thread_table_pkey", "user_thread_table",
                          ["user_id"])
    op.drop_column("user_thread_table", "platform")
'''

# A user's own revision after it (`db.sh migrate -m "..."`, then edited).
USER_REV = "e4f1c2d3b5a6"
REV_USER = f'''"""sentiment and a report index

Revision ID: {USER_REV}
Revises: 001
"""
from alembic import op
import sqlalchemy as sa

revision = "{USER_REV}"
down_revision = "001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("simple_conversation_history",
                  sa.Column("sentiment", sa.Integer(), nullable=True))
    op.create_index("my_report_idx", "simple_conversation_history",
                    ["user_id", "created_at"])
    op.execute("ALTER INDEX idx_created_at RENAME TO history_by_time")
    op.create_table("bot_feedback",
                    sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("message_id", sa.Integer(), nullable=False),
                    sa.Column("score", sa.Integer(), nullable=False))


def downgrade():
    op.drop_table("bot_feedback")
    op.execute("ALTER INDEX history_by_time RENAME TO idx_created_at")
    op.drop_index("my_report_idx", "simple_conversation_history")
    op.drop_column("simple_conversation_history", "sentiment")
'''


def models(platform):
    """The seed's model of the history table (src/models/database.py)."""
    base = declarative_base()

    class SimpleConversationHistory(base):
        __tablename__ = "simple_conversation_history"
        id = Column(Integer, primary_key=True)
        user_id = Column(String(255), nullable=False)
        if platform:
            platform_ = Column("platform", String(50), nullable=False,
                               default="line")
        model_provider = Column(String(50), nullable=False)
        role = Column(String(20), nullable=False)
        content = Column(Text, nullable=False)
        created_at = Column(DateTime, default=datetime.utcnow)

    return SimpleConversationHistory


def schema(url, directory, shape):
    engine = create_engine(url, future=True)
    with engine.begin() as conn:
        conn.execute(text(README_SQL))
    engine.dispose()
    if shape == "readme":
        return
    versions = os.path.join(directory, "alembic", "versions")
    os.makedirs(versions, exist_ok=True)
    with open(os.path.join(directory, "alembic", "env.py"), "w") as f:
        f.write(ENV_PY)
    with open(os.path.join(versions, "001_add_platform_support.py"),
              "w") as f:
        f.write(REV_001)
    if shape == "user":
        with open(os.path.join(versions, f"{USER_REV}_sentiment.py"),
                  "w") as f:
            f.write(REV_USER)
    cfg = Config()
    cfg.set_main_option("script_location",
                        os.path.join(directory, "alembic"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def write(url, shape, user, spec):
    model = models(shape != "readme")
    engine = create_engine(url, future=True)
    out = []
    for way, n in (w.split(":") for w in spec.split(",")):
        write_way(engine, model, way, user, int(n), out)
    engine.dispose()
    for o in out:
        print(json.dumps(o))


def write_way(engine, model, way, user, n, out):
    for i in range(n):
        content = f"{way} {i} of {user}"
        t0 = time.time()
        with Session(engine) as session:
            if way == "server":
                cols = "user_id, model_provider, role, content"
                vals = ":u, 'anthropic', 'user', :c"
                session.execute(text(
                    f"INSERT INTO simple_conversation_history ({cols})"
                    f" VALUES ({vals})"), {"u": user, "c": content})
            else:
                row = model(user_id=user, model_provider="anthropic",
                            role="user", content=content)
                if way == "now":
                    row.created_at = datetime.now()
                elif way == "aware":
                    row.created_at = datetime.now(timezone.utc)
                elif way == "old":
                    row.created_at = datetime.now() - timedelta(days=40)
                session.add(row)
            session.commit()
        t1 = time.time()
        if way == "old":
            t0 -= 40 * 86400
            t1 -= 40 * 86400
        out.append({"content": content, "t0": t0, "t1": t1})
        time.sleep(0.002)           # distinct, ordered instants


def main():
    if sys.argv[1] == "schema":
        schema(*sys.argv[2:5])
    elif sys.argv[1] == "write":
        write(*sys.argv[2:6])
    else:
        sys.exit(f"usage: {sys.argv[0]} schema|write ...")


if __name__ == "__main__":
    main()
