"""AsyncConversationManager: the conversation manager for asyncio code
(aiohttp, FastAPI, the async LINE SDK).

The same methods, arguments, result shapes, errors and legacy flag as
ConversationManager, as coroutines:

    from convd_client import AsyncConversationManager

    async with AsyncConversationManager() as manager:
        await manager.add_message("U123", "anthropic", "user", "Hello")
        history = await manager.get_recent_conversations("U123", "anthropic")

Requests are pipelined: any number of tasks share a few connections
(``connections``, default 4), each carrying many requests at once, their
answers matched by msgid.  A connection convd closes (a restart) is
dropped at once; a call whose connection broke is sent again on a new one
when that is safe (reads, save_thread, add_message, which always carries
an idempotency key, import_message with one, and set_state without
expected_version), exactly as the blocking manager does.

One manager belongs to one event loop at a time; it is safe to use from
any number of tasks of that loop (not from other threads).
"""

import asyncio
import time

import msgpack

from ._core import (MAX_RESPONSE, WAIT_ERRNOS, ConvdConnectionError,
                    ConvdError, Retry, _Methods, check_response,
                    daemon_error, error_fields, new_unpacker, pack_request)

__all__ = ["AsyncConversationManager"]


class _Connection:
    """One pipelined connection: any number of requests in flight, a
    reader task that hands each answer to the future of its msgid."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.unpacker = new_unpacker()
        self.msgid = 0
        self.pending = {}        # msgid -> Future
        self.broken = None       # the ConvdConnectionError that ended it
        # Python < 3.10 allows one drain() at a time per stream.
        self.drain_lock = asyncio.Lock()
        self.task = asyncio.ensure_future(self._read_loop())

    def usable(self):
        return self.broken is None and not self.writer.is_closing()

    def load(self):
        return len(self.pending)

    async def call(self, method, params, timeout):
        if not self.usable():
            raise ConvdConnectionError(
                "closed", "connection closed before the request was sent",
                sent=False)
        msgid = self.msgid
        while True:  # the next msgid not in flight (after 2^32 wraps)
            msgid = msgid % 0xFFFFFFFF + 1
            if msgid not in self.pending:
                break
        self.msgid = msgid
        fut = asyncio.get_running_loop().create_future()
        self.pending[msgid] = fut
        try:
            try:
                # write() queues the whole request at once: requests of
                # different tasks never interleave.
                self.writer.write(pack_request(msgid, method, params))
                async with self.drain_lock:
                    await self.writer.drain()
            except (OSError, RuntimeError) as e:
                # fails every request in flight, this one included (it
                # may have gone out in part or whole)
                self._fail(ConvdConnectionError("closed", f"write: {e}"))
            # fut now ends with the answer or with the connection's end
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                # The connection stays usable: a late answer to this
                # msgid is dropped.
                raise ConvdConnectionError(
                    "timeout", f"no answer from convd within {timeout} s")
        finally:
            if self.pending.get(msgid) is fut:
                del self.pending[msgid]
            if not fut.done():
                fut.cancel()
            elif not fut.cancelled():
                fut.exception()  # retrieved: no "never retrieved" warning

    async def _read_loop(self):
        err = ConvdConnectionError(
            "closed", "convd closed the connection before answering")
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    self.unpacker.feed(data)
                except msgpack.BufferFull:
                    err = ConvdConnectionError(
                        "protocol",
                        f"response larger than {MAX_RESPONSE} bytes")
                    break
                for msg in self.unpacker:
                    self._dispatch(msg)
        except ConvdConnectionError as e:
            err = e
        except asyncio.CancelledError:
            err = ConvdConnectionError("closed", "the manager was closed")
        except (OSError, ValueError) as e:
            err = ConvdConnectionError("closed", f"read: {e}")
        finally:
            self._fail(err)

    def _dispatch(self, msg):
        msgid, error, result = check_response(msg)
        if msgid is None:
            if error is None:
                raise ConvdConnectionError(
                    "protocol", "a response without msgid or error")
            # about the connection as a whole (e.g. overloaded): convd
            # closes it
            raise ConvdConnectionError(*error_fields(error))
        fut = self.pending.get(msgid)
        if fut is None or fut.done():
            return  # the caller gave up on it (timeout, cancelled)
        if error is not None:
            fut.set_exception(daemon_error(error))
        else:
            fut.set_result(result)

    def _fail(self, err):
        """Ends the connection: every request in flight fails with err
        (sent: convd may have run it)."""
        if self.broken is None:
            self.broken = err
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConvdConnectionError(err.code,
                                                       err.message))
        try:
            self.writer.close()
        except RuntimeError:  # its loop is closed
            pass

    async def close(self):
        self.task.cancel()
        self._fail(ConvdConnectionError("closed", "the manager was closed"))
        try:
            await self.writer.wait_closed()
        except (OSError, RuntimeError):
            pass


class AsyncConversationManager(_Methods):
    """The conversation manager of the LINE bot for asyncio, backed by
    convd: ConversationManager's methods as coroutines.

    socket_path, timeout, legacy, platform, reconnect_timeout: as for
        ConversationManager (timeout bounds each attempt of a call).
    connections: how many connections the manager opens at most; requests
        are pipelined over them (a new one is opened while all are busy).

    Safe to use from any number of tasks of one event loop.  ``await
    manager.close()`` (or ``async with``) closes the connections; calls
    still running then fail.
    """

    def __init__(self, socket_path=None, *, timeout=30.0, legacy=False,
                 platform="line", connections=4, reconnect_timeout=5.0):
        super().__init__(socket_path, timeout, legacy, platform,
                         reconnect_timeout)
        self.connections = max(int(connections), 1)
        self._conns = []
        self._opening = None     # the task opening a connection, if any
        self._loop = None
        self._closed = False

    # ---------------------------------------------------------- plumbing

    def _bind_loop(self):
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # used from a new event loop (asyncio.run() again): the old
            # loop's connections cannot be used here
            for conn in self._conns:
                conn._fail(ConvdConnectionError("closed", "event loop "
                                                "changed"))
            self._conns = []
            self._opening = None
            self._loop = loop

    async def _open(self):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.reconnect_timeout or 0, 0)
        delay = 0.02
        while True:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(self.socket_path,
                                                 limit=1 << 20),
                    self.timeout)
                return _Connection(reader, writer)
            except asyncio.TimeoutError:
                raise ConvdConnectionError(
                    "timeout", f"{self.socket_path}: no connection within "
                    f"{self.timeout} s", sent=False)
            except OSError as e:
                if e.errno not in WAIT_ERRNOS or loop.time() >= deadline:
                    raise ConvdConnectionError(
                        "connect_failed", f"{self.socket_path}: "
                        f"{e.strerror or e}", sent=False)
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0)))
            delay = min(delay * 2, 0.25)

    def _start_open(self):
        task = asyncio.ensure_future(self._open())
        self._opening = task

        def done(t):
            if self._opening is t:
                self._opening = None
            if t.cancelled():
                return
            if t.exception() is None:
                conn = t.result()
                if self._closed or self._loop is not conn.task.get_loop():
                    conn._fail(ConvdConnectionError("closed", "the manager "
                                                    "was closed"))
                else:
                    self._conns.append(conn)
        task.add_done_callback(done)
        return task

    async def _connection(self):
        """The least busy usable connection; a new one is opened in the
        background while all are busy and fewer than `connections` exist,
        and waited for when there is none."""
        if self._closed:
            raise ConvdError("closed", "the manager was closed")
        self._bind_loop()
        self._conns = [c for c in self._conns if c.usable()]
        if self._conns:
            best = min(self._conns, key=_Connection.load)
            if best.load() and self._opening is None and \
                    len(self._conns) < self.connections:
                self._start_open()
            return best
        opening = self._opening or self._start_open()
        # shielded: one caller giving up does not stop the others' connect
        return await asyncio.shield(opening)

    async def _request(self, method, params):
        """Sends one request and returns its result, sending it again on
        a new connection after a break as the Retry policy allows (as the
        blocking manager does)."""
        retry = Retry(method, params, self.reconnect_timeout, time.monotonic)
        while True:
            conn = await self._connection()
            try:
                return await conn.call(method, params, self.timeout)
            except ConvdConnectionError as e:
                delay = retry.after(e)
            if delay:
                await asyncio.sleep(delay)

    async def _run(self, c):
        try:
            return c.done(await self._request(c.method, c.params))
        except Exception as e:  # noqa: BLE001 - legacy: the original's way
            return c.failed(self.legacy, e)

    def _execute(self, c):
        if c.method is None:
            return _value(c.value)
        return self._run(c)

    async def close(self):
        """Closes the connections; the manager cannot be used after."""
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            self._opening = None
        conns, self._conns = self._conns, []
        for conn in conns:
            await conn.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def export_history(self, user_id, model_provider=None,
                             platform=None, *, conversation_id=None):
        """An async generator of the user's whole history, oldest first,
        as ConversationManager.export_history() yields it."""
        pager = self._export_pager(user_id, model_provider, platform,
                                   conversation_id)
        while True:
            rows = await self._execute(pager.call())
            if not pager.advance(rows):
                return
            for row in rows:
                yield row

    async def iter_messages(self, user_id, model_provider,
                            conversation_id=None, platform=None,
                            page_size=None):
        """An async generator of the conversation's messages, newest
        first, as ConversationManager.iter_messages() yields them."""
        pager = self._message_pager(user_id, model_provider,
                                    conversation_id, platform, page_size)
        while not pager.done:
            for row in pager.advance(await self._execute(pager.call())):
                yield row

    async def iter_conversations(self, user_id, model_provider=None,
                                 platform=None, page_size=None):
        """An async generator of every conversation of the user, as
        ConversationManager.iter_conversations() yields them."""
        pager = self._conversation_pager(user_id, model_provider, platform,
                                         page_size)
        while not pager.done:
            for c in pager.advance(await self._execute(pager.call())):
                yield c


async def _value(v):
    return v
