#!/usr/bin/python3
"""The seed's approach, measured: SQLAlchemy ORM add_message, one session and
one commit per message, exactly as the Python data layer that convd replaces
did it (conversation_manager_orm.add_message), from N threads.

    seed_orm.py --url postgresql+psycopg2:///convd?host=/tmp/sock \
                --clients 32 --seconds 10 --size 400

Prints one line: "seed_orm add_message: N/s (T threads, S s)".
Uses Debian's python3-sqlalchemy (1.4, 2.0-style API) and python3-psycopg2.
"""

import argparse
import threading
import time
from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, String, Text, create_engine
from sqlalchemy.orm import declarative_base, sessionmaker

Base = declarative_base()


class SimpleConversationHistory(Base):
    """The seed's model (src/models/database.py), with `platform`."""
    __tablename__ = "simple_conversation_history"
    id = Column(Integer, primary_key=True)
    user_id = Column(String(255), nullable=False)
    platform = Column(String(50), nullable=False, default="line")
    model_provider = Column(String(50), nullable=False)
    role = Column(String(20), nullable=False)
    content = Column(Text, nullable=False)
    created_at = Column(DateTime, default=datetime.utcnow)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--size", type=int, default=400)
    a = ap.parse_args()

    # The seed's pool settings (ORM_GUIDE: pool_size=20, max_overflow=30,
    # pool_timeout=30, pool_recycle=3600, pool_pre_ping=True).
    engine = create_engine(a.url, pool_size=20, max_overflow=30,
                           pool_timeout=30, pool_recycle=3600,
                           pool_pre_ping=True, future=True)
    Session = sessionmaker(bind=engine, future=True)
    content = ("x" * a.size)
    counts = [0] * a.clients
    errors = []
    stop = time.time() + a.seconds

    def add_message(user_id, provider, role, text):
        # conversation_manager_orm.add_message: one session, one commit
        try:
            with Session() as session:
                session.add(SimpleConversationHistory(
                    user_id=user_id, model_provider=provider, role=role,
                    content=text, platform="line"))
                session.commit()
            return True
        except Exception as e:  # the seed swallowed errors into False
            errors.append(e)
            return False

    def worker(i):
        while time.time() < stop:
            if add_message(f"seed-user-{i}", "anthropic", "user", content):
                counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,))
               for i in range(a.clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - t0
    print(f"seed_orm add_message: {sum(counts) / took:.0f}/s "
          f"({a.clients} threads, {took:.1f} s, {len(errors)} errors)")


if __name__ == "__main__":
    main()
