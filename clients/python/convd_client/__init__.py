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
- It reconnects by itself and retries safely: a connection closed by a
  convd restart is noticed and replaced, a call waits up to
  ``reconnect_timeout`` seconds for convd to come back, and every
  add_message carries an idempotency key, so that sending it again after
  a broken connection never stores it twice.

Beyond the seed: named conversations (``conversation_id`` on the history
methods), structured content (lists and dicts, bytes kept byte for byte),
tool calls (roles ``developer`` and ``tool``, ``tool_call_id``), ``name``,
``model``, ``tokens`` and ``metadata`` on messages; list_conversations,
delete_conversation, get_state / set_state (provider state such as a
Responses API ``previous_response_id``, with ``expected_version`` and
ConflictError), get_context (a token-budget window that keeps tool calls
with their results), get_messages / iter_messages, delete_message
(NotFoundError), search_messages and forget_user.  See README.md.

AsyncConversationManager (convd_client.aio) has the same methods for
asyncio code.
"""

import os
import select
import socket
import threading
import time

import msgpack

from ._core import (DEFAULT_SOCKET, MAX_RESPONSE, WAIT_ERRNOS,
                    ConflictError, ConvdConnectionError, ConvdError,
                    NotFoundError, Retry, _Methods, check_response,
                    daemon_error, error_fields, new_unpacker, pack_request)
from .aio import AsyncConversationManager

__all__ = [
    "ConversationManager",
    "ORMConversationManager",
    "AsyncConversationManager",
    "ConvdError",
    "ConvdConnectionError",
    "ConflictError",
    "NotFoundError",
    "get_conversation_manager",
    "get_thread_id_by_user_id",
    "save_thread_id",
    "delete_thread_id",
    "query_thread",
    "save_thread",
    "delete_thread",
    "DEFAULT_SOCKET",
]

__version__ = "1.2.0"


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
        self.unpacker = new_unpacker()
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
        data = pack_request(self.msgid, method, params)
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
                    "protocol", f"response larger than {MAX_RESPONSE} bytes")

    def _answer(self, msg):
        msgid, error, result = check_response(msg)
        if msgid is None and error is not None:
            # about the connection as a whole (e.g. overloaded): convd
            # closes it
            raise ConvdConnectionError(*error_fields(error))
        if msgid != self.msgid:
            raise ConvdConnectionError(
                "protocol", f"response for msgid {msgid!r}, expected "
                f"{self.msgid}")
        if error is not None:
            raise daemon_error(error)
        return result


class ConversationManager(_Methods):
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
        ``connect_failed``, and for which a call whose connection broke is
        sent again (see README: retries).

    Thread-safe: share one manager between threads.  After os.fork() the
    child opens its own connections.
    """

    def __init__(self, socket_path=None, *, timeout=30.0, legacy=False,
                 platform="line", pool_size=8, reconnect_timeout=5.0):
        super().__init__(socket_path, timeout, legacy, platform,
                         reconnect_timeout)
        self.pool_size = pool_size
        self._idle = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False

    # ---------------------------------------------------------- plumbing

    def _connect(self, deadline):
        delay = 0.02
        while True:
            try:
                return _Connection(self.socket_path, self.timeout)
            except socket.timeout:
                raise ConvdConnectionError(
                    "timeout", f"{self.socket_path}: no connection within "
                    f"{self.timeout} s", sent=False)
            except OSError as e:
                if e.errno not in WAIT_ERRNOS or \
                        time.monotonic() >= deadline:
                    raise ConvdConnectionError(
                        "connect_failed", f"{self.socket_path}: "
                        f"{e.strerror or e}", sent=False)
            time.sleep(min(delay, max(deadline - time.monotonic(), 0)))
            delay = min(delay * 2, 0.25)

    def _checkout(self, deadline):
        """A connection: an idle one that is still good, or a new one
        (waiting for convd's socket until deadline)."""
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
        return self._connect(deadline)

    def _checkin(self, conn):
        with self._lock:
            if (not self._closed and self._pid == os.getpid() and
                    len(self._idle) < self.pool_size):
                self._idle.append(conn)
                return
        conn.close()

    def _request(self, method, params):
        """Sends one request and returns its result, sending it again on
        a new connection after a break as the Retry policy allows."""
        retry = Retry(method, params, self.reconnect_timeout, time.monotonic)
        while True:
            conn = self._checkout(retry.deadline)
            try:
                result = conn.call(method, params)
            except ConvdConnectionError as e:
                conn.close()
                time.sleep(retry.after(e))
                continue
            except ConvdError:
                self._checkin(conn)  # an error answer: still in sync
                raise
            except BaseException:
                conn.close()
                raise
            self._checkin(conn)
            return result

    def _execute(self, c):
        if c.method is None:
            return c.value
        try:
            return c.done(self._request(c.method, c.params))
        except Exception as e:  # noqa: BLE001 - legacy: the original's way
            return c.failed(self.legacy, e)

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

    def export_history(self, user_id, model_provider=None, platform=None,
                       *, conversation_id=None):
        """Yields the user's whole history, oldest first (id order), in
        the format of ``convctl export``: dicts with id, user_id, platform,
        provider, role, content and created_at (ISO 8601 UTC, 'Z'), plus
        idempotency_key, conversation_id, tool_call_id, name, model, tokens
        and metadata where the message has them.  Every conversation, or
        only conversation_id.  Any size: pages are asked by after_id until
        convd returns an empty one."""
        pager = self._export_pager(user_id, model_provider, platform,
                                   conversation_id)
        while True:
            rows = self._execute(pager.call())
            if not pager.advance(rows):
                return
            yield from rows

    def iter_messages(self, user_id, model_provider, conversation_id=None,
                      platform=None, page_size=None):
        """Yields the conversation's messages newest first, back to the
        oldest, whatever its length (get_messages page by page;
        page_size 1..1000, default convd's 100)."""
        pager = self._message_pager(user_id, model_provider,
                                    conversation_id, platform, page_size)
        while not pager.done:
            yield from pager.advance(self._execute(pager.call()))

    def iter_conversations(self, user_id, model_provider=None,
                           platform=None, page_size=None):
        """Yields every conversation of the user, newest activity first
        (list_conversations page by page)."""
        pager = self._conversation_pager(user_id, model_provider, platform,
                                         page_size)
        while not pager.done:
            yield from pager.advance(self._execute(pager.call()))


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


# The original's names of the thread helpers (ORIGIN.md).
query_thread = get_thread_id_by_user_id
save_thread = save_thread_id
delete_thread = delete_thread_id
