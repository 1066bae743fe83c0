"""convd_client: the LINE bot's conversation store, served by convd.

A drop-in replacement for the bot's SQLAlchemy data layer
(``src/services/conversation_manager_orm.py`` and the thread helpers of
``src/database``): the same class, method names, arguments, defaults and
return shapes, talking MessagePack-RPC to convd over its Unix socket
(convd-protocol(7)).  It needs nothing but the ``msgpack`` package.

    from convd_client import get_conversation_manager

    manager = get_conversation_manager()
    manager.add_message("U123", "anthropic", "user", "Hello")
    history = manager.get_recent_conversations("U123", "anthropic", limit=10)

What is better than the original:

- Errors are errors: a failure raises ConvdError with convd's error code
  and message (``invalid_params``, ``unavailable``, ``timeout``, ...) or
  ConvdConnectionError when convd cannot be reached, instead of a silent
  ``False``, ``[]`` or ``0``.  ``ConversationManager(legacy=True)`` brings
  the old behaviour back (the error is logged and the old default value
  returned) for code that depends on it.
- One manager serves any number of threads: each call borrows a connection
  from a small pool (one per concurrent call, at most ``pool_size`` kept
  idle), so there is no engine or pool per look-up.
- It reconnects by itself: a connection closed by a convd restart is
  noticed and replaced, and while the socket is missing (convd starting)
  a call waits up to ``reconnect_timeout`` seconds for it.
"""

import datetime
import errno
import logging
import os
import select
import socket
import threading
import time

import msgpack

__all__ = [
    "ConversationManager",
    "ORMConversationManager",
    "ConvdError",
    "ConvdConnectionError",
    "get_conversation_manager",
    "get_thread_id_by_user_id",
    "save_thread_id",
    "delete_thread_id",
    "DEFAULT_SOCKET",
]

__version__ = "1.0.0"

DEFAULT_SOCKET = "/run/convd/convd.sock"

logger = logging.getLogger(__name__)

# Methods that may be sent again when a connection breaks after the request
# went out: reads and idempotent writes.  add_message, import_message,
# clear_user_history, delete_thread and cleanup are never sent twice.
_RETRY_AFTER_SEND = frozenset({
    "ping", "stats", "health", "get_recent_conversations",
    "get_conversation_count", "get_user_statistics", "get_thread",
    "save_thread", "export_history",
})

# Largest response accepted (bytes of one message).
_MAX_RESPONSE = 256 << 20


class ConvdError(Exception):
    """convd answered with an error, or could not be talked to.

    ``code`` is convd's error code (convd-protocol(7): ``invalid_params``,
    ``unavailable``, ``timeout``, ``overloaded``, ``permission_denied``,
    ``result_too_large``, ``no_such_method``, ``invalid_request``,
    ``internal``) or, for a
    ConvdConnectionError, one of ``connect_failed``, ``closed``,
    ``timeout``, ``protocol``.  ``message`` is for people.
    """

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConvdConnectionError(ConvdError):
    """convd cannot be reached, or the connection failed mid-call."""

    def __init__(self, code, message, sent=True):
        super().__init__(code, message)
        # False when the request certainly never reached convd.
        self.sent = sent


def _iso(t):
    """A time as the original returned it: naive UTC, datetime.isoformat()."""
    if t is None:
        return None
    if isinstance(t, msgpack.Timestamp):
        t = t.to_datetime()
    return t.astimezone(datetime.timezone.utc).replace(tzinfo=None).isoformat()


def _iso_z(t):
    """A time as convctl export writes it: UTC, microseconds, 'Z'."""
    return t.astimezone(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def _usec(t):
    """A datetime (naive means UTC) or ISO 8601 text -> microseconds since
    the Unix epoch."""
    if isinstance(t, str):
        text = t.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        t = datetime.datetime.fromisoformat(text)
    if not isinstance(t, datetime.datetime):
        raise TypeError("created_at must be a datetime or ISO 8601 text")
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    delta = t - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds


class _Connection:
    """One socket to convd, used by one thread at a time, one call at a
    time."""

    def __init__(self, path, timeout):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
        except BaseException:
            self.sock.close()
            raise
        self.unpacker = msgpack.Unpacker(raw=False, timestamp=3,
                                         max_buffer_size=_MAX_RESPONSE)
        self.msgid = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reusable(self):
        """An idle connection has nothing to read: if it is readable,
        convd closed it (restart, idle timeout) or sent something
        unexpected, and it must not be used."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def call(self, method, params):
        self.msgid = self.msgid % 0xFFFFFFFF + 1
        data = msgpack.packb([0, self.msgid, method, [params]],
                             use_bin_type=True)
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise ConvdConnectionError(
                "timeout", "convd did not take the request in time")
        except OSError as e:
            # convd reads whole requests only: a request that could not
            # be written completely was not run.
            raise ConvdConnectionError("closed", f"write: {e}", sent=False)
        while True:
            for msg in self.unpacker:
                return self._answer(msg)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise ConvdConnectionError(
                    "timeout", f"no answer from convd within "
                    f"{self.sock.gettimeout()} s")
            except OSError as e:
                raise ConvdConnectionError("closed", f"read: {e}")
            if not chunk:
                raise ConvdConnectionError(
                    "closed", "convd closed the connection before answering")
            try:
                self.unpacker.feed(chunk)
            except msgpack.BufferFull:
                raise ConvdConnectionError(
                    "protocol", f"response larger than {_MAX_RESPONSE} bytes")

    def _answer(self, msg):
        if not (isinstance(msg, (list, tuple)) and len(msg) == 4 and
                msg[0] == 1):
            raise ConvdConnectionError(
                "protocol", "convd sent something that is not a response")
        _, msgid, error, result = msg
        if msgid is None and error is not None:
            # about the connection as a whole (e.g. overloaded): convd
            # closes it
            raise ConvdConnectionError(*_error_fields(error))
        if msgid != self.msgid:
            raise ConvdConnectionError(
                "protocol", f"response for msgid {msgid!r}, expected "
                f"{self.msgid}")
        if error is not None:
            raise ConvdError(*_error_fields(error))
        return result


def _error_fields(error):
    if isinstance(error, dict):
        return (str(error.get("code", "error")),
                str(error.get("message", "")))
    return "error", str(error)


class ConversationManager:
    """The conversation manager of the LINE bot, backed by convd.

    socket_path: convd's socket; default $CONVD_SOCKET, else
        /run/convd/convd.sock.
    timeout: seconds one call may take (sending, convd's work, the
        answer); None waits forever.
    legacy: True brings back the original's error handling: failures are
        logged and turned into False, [], 0 or {} (the thread helpers
        raised in the original, and still raise).
    platform: the default platform of every call ("line").
    pool_size: idle connections kept for reuse (calls running at the same
        time each have their own connection).
    reconnect_timeout: seconds a call waits for convd's socket to accept
        connections (during a restart) before failing with
        ``connect_failed``.

    Thread-safe: share one manager between threads.  After os.fork() the
    child opens its own connections.
    """

    def __init__(self, socket_path=None, *, timeout=30.0, legacy=False,
                 platform="line", pool_size=8, reconnect_timeout=5.0):
        self.socket_path = (socket_path or os.environ.get("CONVD_SOCKET")
                            or DEFAULT_SOCKET)
        self.timeout = timeout
        self.legacy = legacy
        self.platform = platform
        self.pool_size = pool_size
        self.reconnect_timeout = reconnect_timeout
        self._idle = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    # ---------------------------------------------------------- plumbing

    def _connect(self):
        deadline = time.monotonic() + max(self.reconnect_timeout or 0, 0)
        delay = 0.02
        while True:
            try:
                return _Connection(self.socket_path, self.timeout)
            except socket.timeout:
                raise ConvdConnectionError(
                    "timeout", f"{self.socket_path}: no connection within "
                    f"{self.timeout} s", sent=False)
            except OSError as e:
                waiting = e.errno in (errno.ENOENT, errno.ECONNREFUSED,
                                      errno.EAGAIN)
                if not waiting or time.monotonic() >= deadline:
                    raise ConvdConnectionError(
                        "connect_failed", f"{self.socket_path}: "
                        f"{e.strerror or e}", sent=False)
            time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, 0.25)

    def _checkout(self):
        """A connection: an idle one that is still good, or a new one."""
        with self._lock:
            if self._closed:
                raise ConvdError("closed", "the manager was closed")
            if self._pid != os.getpid():
                # forked: the idle sockets are the parent's
                stale, self._idle = self._idle, []
                self._pid = os.getpid()
                for conn in stale:
                    conn.close()
            while self._idle:
                conn = self._idle.pop()
                if conn.reusable():
                    return conn
                conn.close()
        return self._connect()

    def _checkin(self, conn):
        with self._lock:
            if (not self._closed and self._pid == os.getpid() and
                    len(self._idle) < self.pool_size):
                self._idle.append(conn)
                return
        conn.close()

    def call(self, method, **params):
        """Calls a convd method with named parameters (None values are
        left out) and returns its result as convd sent it; raises
        ConvdError.  A request is sent again on a new connection once if
        it never reached convd, or, for reads and idempotent writes, if
        the connection broke before the answer came."""
        params = {k: v for k, v in params.items() if v is not None}
        retried = False
        while True:
            conn = self._checkout()
            try:
                result = conn.call(method, params)
            except ConvdConnectionError as e:
                conn.close()
                if not retried and (not e.sent or (
                        e.code == "closed" and
                        method in _RETRY_AFTER_SEND)):
                    retried = True
                    continue
                raise
            except ConvdError:
                self._checkin(conn)  # an error answer: still in sync
                raise
            except BaseException:
                conn.close()
                raise
            self._checkin(conn)
            return result

    def close(self):
        """Closes the idle connections; the manager cannot be used after."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _run(self, default, what, fn, *args):
        if not self.legacy:
            return fn(*args)
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - the original's behaviour
            logger.error("Failed to %s: %s", what, e)
            return default

    # ------------------------------------------------- the seed's methods

    def add_message(self, user_id, model_provider, role, content,
                    platform=None):
        """Stores one message; True once it is committed."""
        def run():
            self.call("add_message", user_id=user_id,
                      provider=model_provider, role=role, content=content,
                      platform=platform or self.platform)
            return True
        return self._run(False, "add conversation message", run)

    def get_recent_conversations(self, user_id, model_provider, limit=10,
                                 platform=None):
        """The newest 2 x limit messages (limit counts turns), oldest
        first: [{'role', 'content', 'created_at' (ISO text, UTC),
        'model_provider'}]."""
        def run():
            if limit is not None and not isinstance(limit, bool) and \
                    isinstance(limit, int) and limit < 1:
                return []  # the original's LIMIT 0
            rows = self.call("get_recent_conversations", user_id=user_id,
                             provider=model_provider, limit=limit,
                             platform=platform or self.platform)
            return [{"role": r["role"], "content": r["content"],
                     "created_at": _iso(r["created_at"]),
                     "model_provider": r["provider"]} for r in rows]
        return self._run([], f"get conversations for user {user_id}", run)

    def clear_user_history(self, user_id, model_provider, platform=None):
        """Deletes the user's history with model_provider; True."""
        def run():
            self.call("clear_user_history", user_id=user_id,
                      provider=model_provider,
                      platform=platform or self.platform)
            return True
        return self._run(False, "clear conversation history for user "
                         f"{user_id}", run)

    def get_conversation_count(self, user_id, model_provider=None,
                               platform=None):
        """Messages stored for the user (with model_provider, or all)."""
        def run():
            return self.call("get_conversation_count", user_id=user_id,
                             provider=model_provider,
                             platform=platform or self.platform)
        return self._run(0, f"get conversation count for user {user_id}",
                         run)

    def get_user_statistics(self, user_id, platform=None):
        """{provider: {'message_count': int, 'last_activity': ISO text}}."""
        def run():
            res = self.call("get_user_statistics", user_id=user_id,
                            platform=platform or self.platform)
            return {name: {"message_count": p["message_count"],
                           "last_activity": _iso(p.get("last_message_at"))}
                    for name, p in res["providers"].items()}
        return self._run({}, "get user statistics", run)

    def cleanup_old_conversations(self, days_to_keep=30):
        """Deletes every message older than days_to_keep days, for all
        users; the number deleted.  An admin method of convd."""
        def run():
            return self.call("cleanup_old_conversations",
                             days_to_keep=days_to_keep)["deleted"]
        return self._run(0, "cleanup old conversations", run)

    # ------------------------------------------- the seed's thread helpers
    # (the original raised on errors here, so they raise in legacy mode too)

    def get_thread_id_by_user_id(self, user_id, platform=None):
        """The user's OpenAI Assistant thread id, or None."""
        return self.call("get_thread", user_id=user_id,
                         platform=platform or self.platform)

    def save_thread_id(self, user_id, thread_id, platform=None):
        """Saves (replaces) the user's thread id."""
        self.call("save_thread", user_id=user_id, thread_id=thread_id,
                  platform=platform or self.platform)

    def delete_thread_id(self, user_id, platform=None):
        """Forgets the user's thread id."""
        self.call("delete_thread", user_id=user_id,
                  platform=platform or self.platform)

    # ------------------------------------------------------------ extras

    def ping(self):
        """True when convd answers."""
        return self.call("ping") == "pong"

    def health(self):
        """convd's health map: {ok, database, schema, message}."""
        return self.call("health")

    def export_history(self, user_id, model_provider=None, platform=None):
        """Yields the user's whole history, oldest first (id order), in
        the format of ``convctl export``: dicts with id, user_id, platform,
        provider, role, content and created_at (ISO 8601 UTC, 'Z')."""
        platform = platform or self.platform
        after = 0
        while True:
            rows = self.call("export_history", user_id=user_id,
                             provider=model_provider, platform=platform,
                             after_id=after, limit=1000)
            for r in rows:
                yield {"id": r["id"], "user_id": user_id,
                       "platform": platform, "provider": r["provider"],
                       "role": r["role"], "content": r["content"],
                       "created_at": _iso_z(r["created_at"])}
            if len(rows) < 1000:
                return
            after = rows[-1]["id"]

    def import_message(self, user_id, model_provider, role, content,
                       created_at, platform=None):
        """Stores a message with its original time (a datetime, naive
        meaning UTC, or ISO 8601 text): True if stored, False if an equal
        message was already there.  An admin method of convd."""
        res = self.call("import_message", user_id=user_id,
                        provider=model_provider, role=role, content=content,
                        created_at=_usec(created_at),
                        platform=platform or self.platform)
        return res["imported"]


# The original's class name.
ORMConversationManager = ConversationManager

_default = None
_default_lock = threading.Lock()


def get_conversation_manager():
    """The process's shared manager (created on first use, with the
    defaults: $CONVD_SOCKET or /run/convd/convd.sock)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ConversationManager()
        return _default


def get_thread_id_by_user_id(user_id, platform="line"):
    """The user's thread id, or None (shared manager)."""
    return get_conversation_manager().get_thread_id_by_user_id(
        user_id, platform)


def save_thread_id(user_id, thread_id, platform="line"):
    """Saves the user's thread id (shared manager)."""
    return get_conversation_manager().save_thread_id(user_id, thread_id,
                                                     platform)


def delete_thread_id(user_id, platform="line"):
    """Forgets the user's thread id (shared manager)."""
    return get_conversation_manager().delete_thread_id(user_id, platform)
