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
    "list_conversations", "get_state", "get_context", "get_messages",
    "search_messages",
})
# Writes that are safe to send again when they carry an idempotency key:
# convd stores nothing for the second one and answers as for the first.
_KEYED = frozenset({"add_message", "import_message"})
# set_state is safe to send again only when it is unconditional (it puts
# the same state again).  With expected_version it is not: if the first
# attempt ran, the second finds the version it made and fails with
# `conflict`, so a lost answer would turn a success into a conflict.

# Optional fields of a message (add_message, import_message), sent and
# returned under these names; a row carries a key only when it is set.
MESSAGE_FIELDS = ("conversation_id", "tool_call_id", "name", "model",
                  "tokens", "metadata")

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
    ``conflict``, ``not_found``, ``internal``) or, for a
    ConvdConnectionError, one of ``connect_failed``, ``closed``,
    ``timeout``, ``protocol``.  ``message`` is for people.
    ``conflict`` raises ConflictError and ``not_found`` NotFoundError,
    both ConvdErrors.
    """

    def __init__(self, code, message):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ConflictError(ConvdError):
    """set_state's expected_version did not match (code ``conflict``):
    another writer changed the state first.  Read it again (get_state)
    and decide anew; the message names the current version."""


class NotFoundError(ConvdError):
    """There is nothing of that user to act on (code ``not_found``):
    delete_message of an id that is not the user's."""


_ERROR_CLASSES = {"conflict": ConflictError, "not_found": NotFoundError}


def daemon_error(error):
    """The exception for an error object convd answered a request with:
    ConflictError, NotFoundError or ConvdError, by its code."""
    code, message = error_fields(error)
    return _ERROR_CLASSES.get(code, ConvdError)(code, message)


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
    once does: reads, save_thread, add_message / import_message with an
    idempotency key, and set_state without expected_version."""
    return method in _RETRY_AFTER_SEND or (
        method in _KEYED and params.get("idempotency_key") is not None) or (
        method == "set_state" and params.get("expected_version") is None)


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
    # strict_map_key off: structured content and metadata come back as
    # they were sent, whatever their maps' keys (ints too).  timestamp=0:
    # a timestamp inside content stays a msgpack.Timestamp (exact to the
    # nanosecond, and packed back as the same extension on import);
    # iso() / iso_z() turn the rows' own times into text.
    return msgpack.Unpacker(raw=False, timestamp=0, strict_map_key=False,
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
    if isinstance(t, msgpack.Timestamp):
        t = t.to_datetime()
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


def message_row(r, with_id=True):
    """A message as the manager returns it: role, content (text, or the
    list / dict it was stored as, bytes as bytes), created_at (ISO text,
    UTC, as get_recent_conversations always gave it), model_provider, the
    id (not in get_recent_conversations' rows, the seed's shape), and each
    of MESSAGE_FIELDS (and idempotency_key, with with_id) only when the
    message has it."""
    out = {"id": r["id"]} if with_id else {}
    out.update(role=r["role"], content=r["content"],
               created_at=iso(r["created_at"]), model_provider=r["provider"])
    extra = MESSAGE_FIELDS + ("idempotency_key",) if with_id \
        else MESSAGE_FIELDS
    for k in extra:
        if r.get(k) is not None:
            out[k] = r[k]
    return out


def conversation_entry(c):
    """One entry of list_conversations: conversation_id None for the
    default conversation, times as ISO text, metadata None when none."""
    return {"model_provider": c["provider"],
            "conversation_id": c.get("conversation_id"),
            "message_count": c["message_count"],
            "first_message_at": iso(c.get("first_message_at")),
            "last_message_at": iso(c.get("last_message_at")),
            "metadata": c.get("metadata")}


def state_result(res):
    """get_state's answer: {state, version, updated_at (ISO text),
    metadata (the dict set with the state, or None)}, or None when there
    is no state."""
    if res is None:
        return None
    return {"state": res["state"], "version": res["version"],
            "updated_at": iso(res.get("updated_at")),
            "metadata": res.get("metadata")}


class ExportPager:
    """The paging of export_history(), shared by both managers: asks for
    pages by after_id until convd returns an empty page.  convd bounds a
    page by bytes as well as rows (max_output_bytes), so a page shorter
    than asked for is not the last one."""

    def __init__(self, user_id, provider, platform, conversation_id=None):
        self.user_id = user_id
        self.provider = provider
        self.platform = platform
        self.conversation_id = conversation_id
        self.after = 0

    def call(self):
        def row(r):
            out = {"id": r["id"], "user_id": self.user_id,
                   "platform": self.platform, "provider": r["provider"],
                   "role": r["role"], "content": r["content"],
                   "created_at": iso_z(r["created_at"])}
            for k in ("idempotency_key",) + MESSAGE_FIELDS:
                if r.get(k) is not None:
                    out[k] = r[k]
            return out

        def shape(rows):
            return [row(r) for r in rows]
        return _Call("export_history", dict(
            user_id=self.user_id, provider=self.provider,
            platform=self.platform, after_id=self.after, limit=EXPORT_PAGE,
            conversation_id=self.conversation_id),
            shape)

    def advance(self, rows):
        """Moves past a page; False once the history is exhausted."""
        if not rows:
            return False
        self.after = rows[-1]["id"]
        return True


class MessagePager:
    """The paging of iter_messages(), shared by both managers: get_messages
    pages by before_id, newest page first, until next_before_id is nil.
    Each page comes oldest first; the pager hands its messages newest
    first, so that the iteration runs back through the history."""

    def __init__(self, params):
        self.params = params
        self.before = None
        self.done = False

    def call(self):
        return _Call("get_messages", dict(self.params, before_id=self.before),
                     _messages_page)

    def advance(self, page):
        """The page's messages, newest first; moves to the next page."""
        self.before = page["next_before_id"]
        self.done = self.before is None
        return page["messages"][::-1]


class ConversationPager:
    """The paging of iter_conversations(): list_conversations by `after`
    until `next` is nil."""

    def __init__(self, params):
        self.params = params
        self.after = None
        self.done = False

    def call(self):
        return _Call("list_conversations", dict(self.params, after=self.after),
                     _conversations_page)

    def advance(self, page):
        self.after = page["next"]
        self.done = self.after is None
        return page["conversations"]


def _messages_page(res):
    return {"messages": [message_row(r) for r in res["messages"]],
            "next_before_id": res.get("next_before_id")}


def _conversations_page(res):
    return {"conversations": [conversation_entry(c)
                              for c in res["conversations"]],
            "next": res.get("next")}


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
                    platform=None, idempotency_key=None, *,
                    conversation_id=None, tool_call_id=None, name=None,
                    model=None, tokens=None, metadata=None):
        """Stores one message; True once it is committed.

        role: user, assistant, system, developer or tool.  content: text,
        or a list / dict of content parts (tool calls, images, thinking
        blocks...), stored as sent and given back exactly (bytes stay
        bytes).  idempotency_key (1..255 bytes, e.g. LINE's
        webhookEventId): a second add_message with the same key for the
        same user and platform stores nothing (and returns True too).
        Without one the client makes a fresh key for this call, so that
        sending it again after a broken connection cannot store it twice.
        conversation_id: a named conversation (None: the default one, the
        seed's history).  tool_call_id (a tool result's call), name,
        model (which model wrote it), tokens (the provider's count) and
        metadata (a dict, at most 64 KiB encoded) are stored with it."""
        return self._execute(_Call("add_message", dict(
            user_id=user_id, provider=model_provider, role=role,
            content=content, platform=self._platform(platform),
            idempotency_key=idempotency_key or new_key(),
            conversation_id=conversation_id, tool_call_id=tool_call_id,
            name=name, model=model, tokens=tokens, metadata=metadata),
            lambda res: True, False, "add conversation message"))

    def get_recent_conversations(self, user_id, model_provider, limit=10,
                                 platform=None, *, conversation_id=None):
        """The newest 2 x limit messages (limit counts turns), oldest
        first: [{'role', 'content', 'created_at' (ISO text, UTC),
        'model_provider'}], plus conversation_id, tool_call_id, name,
        model, tokens and metadata on the messages that have them."""
        what = f"get conversations for user {user_id}"
        if limit is not None and not isinstance(limit, bool) and \
                isinstance(limit, int) and limit < 1:
            return self._execute(_Call(None, value=[]))  # the original's LIMIT 0
        return self._execute(_Call("get_recent_conversations", dict(
            user_id=user_id, provider=model_provider, limit=limit,
            platform=self._platform(platform),
            conversation_id=conversation_id),
            lambda rows: [message_row(r, with_id=False) for r in rows],
            [], what))

    def clear_user_history(self, user_id, model_provider, platform=None, *,
                           conversation_id=None):
        """Deletes the user's history with model_provider (of the default
        conversation, or of conversation_id); True."""
        return self._execute(_Call("clear_user_history", dict(
            user_id=user_id, provider=model_provider,
            platform=self._platform(platform),
            conversation_id=conversation_id),
            lambda res: True, False,
            f"clear conversation history for user {user_id}"))

    def get_conversation_count(self, user_id, model_provider=None,
                               platform=None, *, conversation_id=None):
        """Messages stored for the user (with model_provider, or all), in
        the default conversation or in conversation_id."""
        return self._execute(_Call("get_conversation_count", dict(
            user_id=user_id, provider=model_provider,
            platform=self._platform(platform),
            conversation_id=conversation_id),
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
                       created_at, platform=None, idempotency_key=None, *,
                       conversation_id=None, tool_call_id=None, name=None,
                       model=None, tokens=None, metadata=None):
        """Stores a message with its original time (a datetime, naive
        meaning UTC, or ISO 8601 text): True if stored, False if it was
        already there (with idempotency_key: a message with that key;
        without: an equal message).  An admin method of convd.  Only a
        call with a key is sent again after a broken connection; False
        then may also mean that its first attempt stored it.  The other
        fields as for add_message, so that what export_history() yields
        can be imported whole."""
        return self._execute(_Call("import_message", dict(
            user_id=user_id, provider=model_provider, role=role,
            content=content, created_at=usec(created_at),
            platform=self._platform(platform),
            idempotency_key=idempotency_key,
            conversation_id=conversation_id, tool_call_id=tool_call_id,
            name=name, model=model, tokens=tokens, metadata=metadata),
            lambda res: bool(res["imported"])))

    def _export_pager(self, user_id, model_provider, platform,
                      conversation_id=None):
        return ExportPager(user_id, model_provider, self._platform(platform),
                           conversation_id)

    # ------------------------------------------------ conversations (17)

    def list_conversations(self, user_id, model_provider=None, platform=None,
                           after=None, limit=None):
        """One page of the user's conversations, newest activity first:
        {'conversations': [{'model_provider', 'conversation_id' (None for
        the default conversation), 'message_count', 'first_message_at',
        'last_message_at' (ISO text, UTC), 'metadata' (of its state, or
        None)}], 'next': the cursor to pass as `after` for the next page,
        or None after the last}.  limit: 1..1000, default 100.
        iter_conversations() goes through every page."""
        return self._execute(_Call("list_conversations", dict(
            user_id=user_id, provider=model_provider,
            platform=self._platform(platform), after=after, limit=limit),
            _conversations_page))

    def _conversation_pager(self, user_id, model_provider, platform, limit):
        return ConversationPager(dict(
            user_id=user_id, provider=model_provider,
            platform=self._platform(platform), limit=limit))

    def delete_conversation(self, user_id, model_provider, conversation_id,
                            platform=None):
        """Deletes a named conversation: its messages and its state; the
        number of messages deleted.  (The default conversation is cleared
        with clear_user_history.)  Not sent again after a broken
        connection."""
        return self._execute(_Call("delete_conversation", dict(
            user_id=user_id, provider=model_provider,
            conversation_id=conversation_id,
            platform=self._platform(platform)),
            lambda res: res["deleted"]))

    def get_state(self, user_id, model_provider, conversation_id=None,
                  platform=None):
        """The conversation's provider state: {'state' (the dict set),
        'version' (1, 2, ...), 'updated_at' (ISO text, UTC), 'metadata'
        (the dict set_state set with it, or None)}, or None."""
        return self._execute(_Call("get_state", dict(
            user_id=user_id, provider=model_provider,
            conversation_id=conversation_id,
            platform=self._platform(platform)), state_result))

    def set_state(self, user_id, model_provider, state, conversation_id=None,
                  expected_version=None, metadata=None, platform=None):
        """Replaces the conversation's provider state (a dict, at most
        64 KiB encoded, e.g. {'conversation': 'conv_...',
        'previous_response_id': 'resp_...'}); returns its new version.

        expected_version: 0 sets it only if the conversation has no state
        yet, N only if its version is still N; otherwise ConflictError
        (another writer came first: get_state and decide again).  None:
        unconditional.  A conditional set_state is never sent again after
        its connection broke with the request out: that raises
        ConvdConnectionError (code 'closed', sent True) and get_state
        tells whether it ran (the version is expected_version + 1 and the
        state is yours).  An unconditional one is sent again."""
        return self._execute(_Call("set_state", dict(
            user_id=user_id, provider=model_provider, state=state,
            conversation_id=conversation_id,
            expected_version=expected_version, metadata=metadata,
            platform=self._platform(platform)),
            lambda res: res["version"]))

    # --------------------------------------------------- retrieval (18)

    def get_context(self, user_id, model_provider, max_tokens,
                    conversation_id=None, max_messages=None,
                    include_system=None, platform=None):
        """The newest messages whose tokens fit max_tokens, oldest first,
        tool calls kept whole with their results: {'messages': [rows with
        'id'], 'total_tokens': int, 'truncated': True when older messages
        were left out}.  include_system: the conversation's system and
        developer messages first, counted in the budget."""
        return self._execute(_Call("get_context", dict(
            user_id=user_id, provider=model_provider, max_tokens=max_tokens,
            conversation_id=conversation_id, max_messages=max_messages,
            include_system=include_system,
            platform=self._platform(platform)),
            lambda res: {"messages": [message_row(r)
                                      for r in res["messages"]],
                         "total_tokens": res["total_tokens"],
                         "truncated": res["truncated"]}))

    def get_messages(self, user_id, model_provider, conversation_id=None,
                     before_id=None, limit=None, platform=None):
        """One page of the conversation, going back: the newest `limit`
        (1..1000, default 100) messages older than before_id (None: the
        newest), oldest first: {'messages': [rows with 'id'],
        'next_before_id': the before_id of the next page, None after the
        oldest}.  iter_messages() goes through every page."""
        return self._execute(_Call("get_messages", dict(
            user_id=user_id, provider=model_provider,
            conversation_id=conversation_id, before_id=before_id,
            limit=limit, platform=self._platform(platform)),
            _messages_page))

    def _message_pager(self, user_id, model_provider, conversation_id,
                       platform, page_size):
        return MessagePager(dict(
            user_id=user_id, provider=model_provider,
            conversation_id=conversation_id, limit=page_size,
            platform=self._platform(platform)))

    def delete_message(self, user_id, message_id, platform=None):
        """Deletes one message of the user by id; True.  NotFoundError
        when the user has no message with that id.  Not sent again after
        a broken connection."""
        return self._execute(_Call("delete_message", dict(
            user_id=user_id, id=message_id,
            platform=self._platform(platform)), lambda res: True))

    def search_messages(self, user_id, query, model_provider=None,
                        conversation_id=None, platform=None, limit=None):
        """The user's messages containing query (1..256 bytes; Chinese and
        English alike), newest first, rows with 'id' (and
        'conversation_id' when not the default one); with one provider or
        all, one conversation or all.  limit: 1..100, default 20."""
        return self._execute(_Call("search_messages", dict(
            user_id=user_id, query=query, provider=model_provider,
            conversation_id=conversation_id,
            platform=self._platform(platform), limit=limit),
            lambda rows: [message_row(r) for r in rows]))

    def forget_user(self, user_id, platform=None):
        """Deletes everything convd holds about the user (an admin method):
        every message, thread, state and idempotency key, on `platform`
        or, when None, on every platform (not the manager's default
        platform).  Returns the counts: {'messages', 'threads', 'states',
        'idempotency_keys'}; a second call returns zeros.  Not sent again
        after a broken connection: call it again (it is idempotent; its
        counts then say what was left)."""
        return self._execute(_Call("forget_user", dict(
            user_id=user_id, platform=platform)))
