"""What the blocking and the asyncio manager share: the errors, the time
conversions, the retry policy, and the methods themselves.

Each public method of _Methods describes its convd request as a _Call and
hands it to the manager's _execute(), which runs it: the blocking manager
returns the result, the asyncio manager returns a coroutine.  So the
methods, their arguments, defaults, result shapes and errors are written
once and are the same in both managers.
"""

import datetime
import errno
import logging
import os
import uuid

import msgpack

DEFAULT_SOCKET = "/run/convd/convd.sock"

logger = logging.getLogger("convd_client")

# Largest response accepted (bytes of one message).
MAX_RESPONSE = 256 << 20

# Methods that may be sent again after a connection broke once the request
# was out (convd may have run it): reads and idempotent writes.
_RETRY_AFTER_SEND = frozenset({
    "ping", "stats", "health", "get_recent_conversations",
    "get_conversation_count", "get_user_statistics", "get_thread",
    "save_thread", "export_history",
})
# Writes that are safe to send again when they carry an idempotency key:
# convd stores nothing for the second one and answers as for the first.
_KEYED = frozenset({"add_message", "import_message"})

# Errors of connect() that mean "convd is not there yet" (restarting):
# waited for, up to reconnect_timeout.
WAIT_ERRNOS = (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN)

# Largest page asked of export_history (convd's bound for `limit`).
EXPORT_PAGE = 1000


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


def error_fields(error):
    """(code, message) of a MessagePack-RPC error object."""
    if isinstance(error, dict):
        return (str(error.get("code", "error")),
                str(error.get("message", "")))
    return "error", str(error)


def new_key():
    """A fresh idempotency key: 32 random hex digits (uuid4)."""
    return uuid.uuid4().hex


def retry_safe(method, params):
    """True when the request may be sent again after the connection broke
    with the request out, i.e. when running it twice does what running it
    once does: reads, save_thread, and add_message / import_message with
    an idempotency key."""
    return method in _RETRY_AFTER_SEND or (
        method in _KEYED and params.get("idempotency_key") is not None)


class Retry:
    """The retry policy of one call, for both managers.  A call whose
    connection broke ("closed": not a timeout, not a protocol error) is
    sent again on a new connection if the request never reached convd or
    if running it twice is safe (retry_safe): always once, then for as
    long as reconnect_timeout seconds after the first break last.
    `deadline` bounds the wait for convd's socket when (re)connecting."""

    def __init__(self, method, params, reconnect_timeout, clock):
        self.safe = retry_safe(method, params)
        self.reconnect = max(reconnect_timeout or 0, 0)
        self.clock = clock
        self.deadline = clock() + self.reconnect
        self.broken = 0

    def after(self, err):
        """Called with the ConvdConnectionError of a failed attempt:
        raises it when the call is not sent again, else returns the
        seconds to wait before the next attempt."""
        if err.code != "closed" or (err.sent and not self.safe):
            raise err
        now = self.clock()
        if self.broken == 0:
            self.deadline = now + self.reconnect
        elif now >= self.deadline:
            raise err
        self.broken += 1
        # convd accepting and dropping connections (shutting down): no spin
        return 0 if self.broken == 1 else min(0.01 * 2 ** self.broken, 0.25)


def new_unpacker():
    return msgpack.Unpacker(raw=False, timestamp=3,
                            max_buffer_size=MAX_RESPONSE)


def pack_request(msgid, method, params):
    return msgpack.packb([0, msgid, method, [params]], use_bin_type=True)


def check_response(msg):
    """(msgid, error, result) of a response; ConvdConnectionError for
    anything else."""
    if not (isinstance(msg, (list, tuple)) and len(msg) == 4 and
            msg[0] == 1):
        raise ConvdConnectionError(
            "protocol", "convd sent something that is not a response")
    return msg[1], msg[2], msg[3]


def iso(t):
    """A time as the original returned it: naive UTC, datetime.isoformat()."""
    if t is None:
        return None
    if isinstance(t, msgpack.Timestamp):
        t = t.to_datetime()
    return t.astimezone(datetime.timezone.utc).replace(tzinfo=None).isoformat()


def iso_z(t):
    """A time as convctl export writes it: UTC, microseconds, 'Z'."""
    return t.astimezone(datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def usec(t):
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


# In legacy mode a failed call returns its _Call's `legacy` value; this one
# means "raise anyway" (the thread helpers, the extras).
RAISE = object()


class _Call:
    """One manager method's work: the convd request (method, params with
    the None values left out), how its result is shaped, and what legacy
    mode returns (and logs, `what`) when it fails.  method None: no
    request, the result is `value`."""

    __slots__ = ("method", "params", "shape", "legacy", "what", "value")

    def __init__(self, method, params=None, shape=None, legacy=RAISE,
                 what=None, value=None):
        self.method = method
        self.params = {k: v for k, v in (params or {}).items()
                       if v is not None}
        self.shape = shape
        self.legacy = legacy
        self.what = what or method
        self.value = value

    def done(self, result):
        """The method's result, from convd's."""
        return self.shape(result) if self.shape else result

    def failed(self, legacy, err):
        """The call failed with err: raises it, or in legacy mode (when
        the method has a legacy value) logs it and returns that value."""
        if not legacy or self.legacy is RAISE:
            raise err
        logger.error("Failed to %s: %s", self.what, err)
        return self.legacy


class ExportPager:
    """The paging of export_history(), shared by both managers: asks for
    pages by after_id until convd returns an empty page.  convd bounds a
    page by bytes as well as rows (max_output_bytes), so a page shorter
    than asked for is not the last one."""

    def __init__(self, user_id, provider, platform):
        self.user_id = user_id
        self.provider = provider
        self.platform = platform
        self.after = 0

    def call(self):
        def row(r):
            out = {"id": r["id"], "user_id": self.user_id,
                   "platform": self.platform, "provider": r["provider"],
                   "role": r["role"], "content": r["content"],
                   "created_at": iso_z(r["created_at"])}
            if r.get("idempotency_key") is not None:
                out["idempotency_key"] = r["idempotency_key"]
            return out

        def shape(rows):
            return [row(r) for r in rows]
        return _Call("export_history", dict(
            user_id=self.user_id, provider=self.provider,
            platform=self.platform, after_id=self.after, limit=EXPORT_PAGE),
            shape)

    def advance(self, rows):
        """Moves past a page; False once the history is exhausted."""
        if not rows:
            return False
        self.after = rows[-1]["id"]
        return True


class _Methods:
    """The methods of both managers (see the module's docs), and their
    common settings; a subclass provides _execute(_Call)."""

    def __init__(self, socket_path, timeout, legacy, platform,
                 reconnect_timeout):
        self.socket_path = (socket_path or os.environ.get("CONVD_SOCKET")
                            or DEFAULT_SOCKET)
        self.timeout = timeout
        self.legacy = legacy
        self.platform = platform
        self.reconnect_timeout = reconnect_timeout

    def _platform(self, platform):
        return platform or self.platform

    # ------------------------------------------------- the seed's methods

    def add_message(self, user_id, model_provider, role, content,
                    platform=None, idempotency_key=None):
        """Stores one message; True once it is committed.

        idempotency_key (1..255 bytes, e.g. LINE's webhookEventId): a
        second add_message with the same key for the same user and
        platform stores nothing (and returns True too).  Without one the
        client makes a fresh key for this call, so that sending it again
        after a broken connection cannot store it twice."""
        return self._execute(_Call("add_message", dict(
            user_id=user_id, provider=model_provider, role=role,
            content=content, platform=self._platform(platform),
            idempotency_key=idempotency_key or new_key()),
            lambda res: True, False, "add conversation message"))

    def get_recent_conversations(self, user_id, model_provider, limit=10,
                                 platform=None):
        """The newest 2 x limit messages (limit counts turns), oldest
        first: [{'role', 'content', 'created_at' (ISO text, UTC),
        'model_provider'}]."""
        what = f"get conversations for user {user_id}"
        if limit is not None and not isinstance(limit, bool) and \
                isinstance(limit, int) and limit < 1:
            return self._execute(_Call(None, value=[]))  # the original's LIMIT 0
        return self._execute(_Call("get_recent_conversations", dict(
            user_id=user_id, provider=model_provider, limit=limit,
            platform=self._platform(platform)),
            lambda rows: [{"role": r["role"], "content": r["content"],
                           "created_at": iso(r["created_at"]),
                           "model_provider": r["provider"]} for r in rows],
            [], what))

    def clear_user_history(self, user_id, model_provider, platform=None):
        """Deletes the user's history with model_provider; True."""
        return self._execute(_Call("clear_user_history", dict(
            user_id=user_id, provider=model_provider,
            platform=self._platform(platform)),
            lambda res: True, False,
            f"clear conversation history for user {user_id}"))

    def get_conversation_count(self, user_id, model_provider=None,
                               platform=None):
        """Messages stored for the user (with model_provider, or all)."""
        return self._execute(_Call("get_conversation_count", dict(
            user_id=user_id, provider=model_provider,
            platform=self._platform(platform)),
            None, 0, f"get conversation count for user {user_id}"))

    def get_user_statistics(self, user_id, platform=None):
        """{provider: {'message_count': int, 'last_activity': ISO text}}."""
        return self._execute(_Call("get_user_statistics", dict(
            user_id=user_id, platform=self._platform(platform)),
            lambda res: {name: {"message_count": p["message_count"],
                                "last_activity": iso(p.get("last_message_at"))}
                         for name, p in res["providers"].items()},
            {}, "get user statistics"))

    def cleanup_old_conversations(self, days_to_keep=30):
        """Deletes every message older than days_to_keep days, for all
        users; the number deleted.  An admin method of convd."""
        return self._execute(_Call(
            "cleanup_old_conversations", dict(days_to_keep=days_to_keep),
            lambda res: res["deleted"], 0, "cleanup old conversations"))

    # ------------------------------------------- the seed's thread helpers
    # (the original raised on errors here, so they raise in legacy mode too)

    def get_thread_id_by_user_id(self, user_id, platform=None):
        """The user's OpenAI Assistant thread id, or None."""
        return self._execute(_Call("get_thread", dict(
            user_id=user_id, platform=self._platform(platform))))

    def save_thread_id(self, user_id, thread_id, platform=None):
        """Saves (replaces) the user's thread id."""
        return self._execute(_Call("save_thread", dict(
            user_id=user_id, thread_id=thread_id,
            platform=self._platform(platform)), lambda res: None))

    def delete_thread_id(self, user_id, platform=None):
        """Forgets the user's thread id."""
        return self._execute(_Call("delete_thread", dict(
            user_id=user_id, platform=self._platform(platform)),
            lambda res: None))

    # The original's own names for them (ORIGIN.md).
    query_thread = get_thread_id_by_user_id
    save_thread = save_thread_id
    delete_thread = delete_thread_id

    # ------------------------------------------------------------ extras

    def call(self, method, **params):
        """Calls a convd method with named parameters (None values are
        left out) and returns its result as convd sent it; raises
        ConvdError.  Sent as given: no idempotency key is added."""
        return self._execute(_Call(method, params))

    def ping(self):
        """True when convd answers."""
        return self._execute(_Call("ping", shape=lambda res: res == "pong"))

    def health(self):
        """convd's health map: {ok, database, schema, message}."""
        return self._execute(_Call("health"))

    def import_message(self, user_id, model_provider, role, content,
                       created_at, platform=None, idempotency_key=None):
        """Stores a message with its original time (a datetime, naive
        meaning UTC, or ISO 8601 text): True if stored, False if it was
        already there (with idempotency_key: a message with that key;
        without: an equal message).  An admin method of convd.  Only a
        call with a key is sent again after a broken connection; False
        then may also mean that its first attempt stored it."""
        return self._execute(_Call("import_message", dict(
            user_id=user_id, provider=model_provider, role=role,
            content=content, created_at=usec(created_at),
            platform=self._platform(platform),
            idempotency_key=idempotency_key),
            lambda res: bool(res["imported"])))

    def _export_pager(self, user_id, model_provider, platform):
        return ExportPager(user_id, model_provider, self._platform(platform))
