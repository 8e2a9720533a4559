"""WebSocket connections of a session, stored beside it in the sessions table
(pk = "SESSION#<sessionId>", sk = "CONN#<connectionId>"; see table.py), so a
session's connections are one Query (paged by LastEvaluatedKey).

Joining and leaving are single-item writes, never transactions: DynamoDB
cancels concurrent transactions on one item, and a crowd joining one session
is exactly that (docs/architecture.md, "Listener count"). A join records the
connection first, then counts it on the session under the cap (undoing the
record if refused); a leave deletes the record and, only if it was there,
counts it off. The record is the guard: a connection removed twice
(disconnect racing a teardown or a 410) is counted off once.
"""

from __future__ import annotations

import hmac
import re
import time
from collections import Counter
from collections.abc import Callable

from .. import errors
from ..domain import ENDED, HYBRID, LINK, LISTENER, NATIVE, PUBLIC, REFERENCED, SPEAKER, Connection
from ..platform.observability import logger
from .sessions import why_refused
from .table import (
    CONNECTION_PREFIX,
    LANGUAGE_COUNT_PREFIX,
    LISTENING,
    LISTENING_INDEX,
    ConditionFailed,
    connection_key,
    delete_all,
    language_count,
    legacy_key,
    listening_key,
    query_index,
    query_items,
    request,
    session_key,
    session_partition,
)

# API Gateway closes every connection after 2 hours; the record outlives it a little.
CONNECTION_TTL_SECONDS = 2 * 3600 + 600
# What a live session's join condition adds to "exists, not ended, not expired".
_LIVE = "attribute_exists(pk) AND #status <> :ended AND expiresAt > :now"
# An anonymous listener's further condition: a public session (or one stored before access existed), or the
# link session's key. Compared by DynamoDB inside the one conditional write that also decides existence, so
# a missing key, a wrong key and a missing session cost the same requests and get the same 403.
_KEY_OR_PUBLIC = "(#access = :public OR attribute_not_exists(#access) OR joinKey = :key)"
# What a join key looks like (usecases/sessions.py makes them); anything else is no key at all.
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{16,128}")
_NO_KEY = "!"  # outside the key alphabet: equals no stored key


def _connection_item(session_id: str, connection_id: str, role: str, user_id: str, target_language: str,
                     now: int, dialect: str, delivery: str = "") -> dict:
    # Only a listener is in the listening index (sparse): a speaker is sent no audio.
    listening = {LISTENING: listening_key(session_id, target_language, referenced_delivery(dialect, delivery))} \
        if role == LISTENER else {}
    return {
        **listening,
        **connection_key(session_id, connection_id),
        "connectionId": {"S": connection_id},
        "sessionId": {"S": session_id},
        "role": {"S": role},
        "userId": {"S": user_id},
        "targetLanguage": {"S": target_language},
        "dialect": {"S": dialect},
        "connectedAt": {"N": str(now)},
        "expiresAt": {"N": str(now + CONNECTION_TTL_SECONDS)},
    }


def _join_session(session_id: str, now: int, update: str, condition: str, values: dict, *,
                  speaker_id: str | None = None, names: dict | None = None,
                  otherwise: Callable[[dict], errors.ServiceError] = lambda _: errors.SessionFull(), **more) -> dict:
    """The join's conditional write to the live session; its refusal told from the session item (`otherwise`:
    the refusal of a live session, the join's own further condition having failed)."""
    try:
        return request("update_item", Key=session_key(session_id), UpdateExpression=update,
                       ConditionExpression=f"{_LIVE} AND {condition}",
                       ExpressionAttributeNames={"#status": "status", **(names or {})},
                       ExpressionAttributeValues={":ended": {"S": ENDED}, ":now": {"N": str(now)}, **values},
                       ReturnValuesOnConditionCheckFailure="ALL_OLD", **more)
    except ConditionFailed as failed:
        refusal = why_refused(failed.item, now, caller_id=speaker_id, not_owner=errors.NotSessionOwner)
        raise refusal or otherwise(failed.item) from None


def add_listener(session_id: str, connection_id: str, user_id: str, target_language: str, max_listeners: int,
                 dialect: str, join_key: str | None = None, delivery: str = "") -> dict | None:
    """Records and counts the listener (in all and by language); the session item as it now is, or None if
    this connection had joined already (a retried $connect). `join_key`: None joins by the ID alone (a
    signed-in listener); a string (empty: none given) must be a link session's key."""
    now = int(time.time())
    condition, values, names = "listenerCount < :cap", {":one": {"N": "1"}, ":cap": {"N": str(max_listeners)}}, {}
    otherwise = lambda _: errors.SessionFull()
    if join_key is not None:
        given = join_key if _KEY_SHAPE.fullmatch(join_key) else None
        condition += f" AND {_KEY_OR_PUBLIC}"
        values |= {":public": {"S": PUBLIC}, ":key": {"S": given or _NO_KEY}}
        names = {"#access": "access"}
        otherwise = lambda item: _key_refusal(item, given)
    try:
        request("put_item", ConditionExpression="attribute_not_exists(pk)",
                Item=_connection_item(session_id, connection_id, LISTENER, user_id, target_language, now, dialect,
                                          delivery))
    except ConditionFailed:
        return None
    try:
        return _join_session(session_id, now, "ADD listenerCount :one, #language :one", condition, values,
                             names={"#language": language_count(target_language), **names}, otherwise=otherwise,
                             ReturnValues="ALL_NEW")["Attributes"]
    except errors.ServiceError:
        _undo_join(session_id, connection_id)
        raise


def _key_refusal(session: dict, given: str | None) -> errors.ServiceError:
    """Why a live session refused an anonymous listener: its key (for the log only: the caller gets 403
    whatever the reason), else the cap."""
    stored = session.get("joinKey", {}).get("S")
    if session.get("access", {}).get("S") != LINK or stored is None:
        return errors.SessionFull()
    if given is None:
        return errors.JoinKeyMissing()
    # Constant time: how long a comparison takes must not tell how much of a guessed key was right.
    if not hmac.compare_digest(stored.encode(), given.encode()):
        return errors.JoinKeyWrong()
    return errors.SessionFull()


def _undo_join(session_id: str, connection_id: str) -> None:
    """Drops the record of a join that was not counted (refused or failed)."""
    try:
        forget(session_id, connection_id)
    except errors.ServiceUnavailable:
        # Left behind uncounted: a later removal would count it off once too often (floored at 0).
        logger.warning("uncounted connection record left behind")


def add_speaker(session_id: str, connection_id: str, user_id: str, dialect: str) -> tuple[str | None, dict]:
    """Makes this connection the session's speaker: the connection it replaces (or None) and the session item."""
    now = int(time.time())
    # Recorded first, as a listener is: the teardown finds sockets by their records, so a session that named
    # this connection before its record existed could be torn down without closing it.
    request("put_item", Item=_connection_item(session_id, connection_id, SPEAKER, user_id, "", now, dialect))
    try:
        # A speaker back after leaving is no longer "disconnected" (docs/protocols.md, "Live states").
        item = _join_session(session_id, now, "SET speakerConnectionId = :conn REMOVE speakerDisconnectedAt",
                             "speakerId = :user",
                             {":conn": {"S": connection_id}, ":user": {"S": user_id}}, speaker_id=user_id,
                             ReturnValues="ALL_OLD")["Attributes"]
    except errors.ServiceError:
        _undo_join(session_id, connection_id)
        raise
    previous = item.pop("speakerConnectionId", {}).get("S")
    return (previous if previous != connection_id else None), item


def remove(session_id: str, connection_id: str, role: str) -> bool:
    """Deletes the connection record and counts a listener off; False if it was already gone. A speaker's:
    True only if it was still the session's speaker (no newer connection of the speaker took over)."""
    if role != LISTENER:
        forget(session_id, connection_id)
        return release_speaker(session_id, connection_id)
    record = _forget(session_id, connection_id)
    if record is None:
        return False
    _update_session_if(session_id, UpdateExpression="ADD listenerCount :minus, #language :minus",
                       ConditionExpression="attribute_exists(pk) AND listenerCount > :zero",
                       ExpressionAttributeNames={"#language": language_count(record["targetLanguage"]["S"])},
                       ExpressionAttributeValues={":minus": {"N": "-1"}, ":zero": {"N": "0"}})
    return True


def release_speaker(session_id: str, connection_id: str) -> bool:
    """Clears the session's speaker, unless a newer speaker connection took over already (then False); when,
    so that listeners can tell a speaker who left from one who never came."""
    try:
        request("update_item", Key=session_key(session_id),
                UpdateExpression="REMOVE speakerConnectionId SET speakerDisconnectedAt = :now",
                ConditionExpression="speakerConnectionId = :conn",
                ExpressionAttributeValues={":conn": {"S": connection_id}, ":now": {"N": str(int(time.time()))}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ConditionFailed as failed:
        # Released already (a broadcast found it gone) or nobody's: still this connection's to end.
        return "speakerConnectionId" not in (failed.item or {})
    return True


def referenced_delivery(dialect: str, delivery: str = "") -> bool:
    """Whether a listener is sent referenced chunks rather than inline ones: as it chose at connect (`delivery`),
    or else as its dialect's client plays audio (the hybrid listener client: stored chunks by URL)."""
    return delivery == REFERENCED if delivery else dialect == HYBRID


def switch_language(session_id: str, connection_id: str, language: str, dialect: str, delivery: str = "") -> None:
    """Moves a listener to another language: its record, then the session's counts by language.
    Raises SessionNotFound if this listener's record is gone (its session ended)."""
    try:
        old = request("update_item", Key=connection_key(session_id, connection_id),
                      # The index key moves with the language: the next chunk of the new language reaches it.
                      UpdateExpression="SET targetLanguage = :language, #listening = :listening",
                      ConditionExpression="attribute_exists(pk) AND #role = :listener",
                      ExpressionAttributeNames={"#role": "role", "#listening": LISTENING},
                      ExpressionAttributeValues={":language": {"S": language}, ":listener": {"S": LISTENER},
                                                 ":listening": listening_key(session_id, language,
                                                                             referenced_delivery(dialect, delivery))},
                      ReturnValues="UPDATED_OLD")["Attributes"]["targetLanguage"]["S"]
    except ConditionFailed:
        raise errors.SessionNotFound("This connection is no longer part of a session.") from None
    if old != language:
        _update_session_if(session_id, UpdateExpression="ADD #old :minus, #new :one",
                           ConditionExpression="attribute_exists(pk)",
                           ExpressionAttributeNames={"#old": language_count(old), "#new": language_count(language)},
                           ExpressionAttributeValues={":minus": {"N": "-1"}, ":one": {"N": "1"}})


# Teardown drops records one by one and then counts them off the session in one write.
def forget(session_id: str, connection_id: str) -> bool:
    """Deletes a connection record without touching the session; True if it existed."""
    return _forget(session_id, connection_id) is not None


def _forget(session_id: str, connection_id: str) -> dict | None:
    return request("delete_item", Key=connection_key(session_id, connection_id), ReturnValues="ALL_OLD").get("Attributes")


def release_listeners(session_id: str, count: int) -> None:
    """Takes `count` forgotten listeners off the ended session's listenerCount (unless the session is
    gone: TTL). A join that recorded its connection and was then refused because the session ended
    was never counted; if the teardown forgot its record, the count would go below zero: stop at 0."""
    if not _update_session_if(session_id, UpdateExpression="ADD listenerCount :minus",
                              ConditionExpression="attribute_exists(pk) AND listenerCount >= :count",
                              ExpressionAttributeValues={":minus": {"N": str(-count)}, ":count": {"N": str(count)}}):
        _update_session_if(session_id, UpdateExpression="SET listenerCount = :zero",
                           ConditionExpression="attribute_exists(pk) AND listenerCount < :count",
                           ExpressionAttributeValues={":zero": {"N": "0"}, ":count": {"N": str(count)}})


def _update_session_if(session_id: str, **update) -> bool:
    """One conditional write to the session item; a failed condition (False) means there is nothing to do."""
    try:
        request("update_item", Key=session_key(session_id), **update)
    except ConditionFailed:
        return False
    return True


def drop(session_id: str, connections: list[Connection]) -> None:
    """Deletes these connections' records, 25 a request (BatchWriteItem), counting nothing: a crowd of gone
    sockets (the 2-hour limit) is too many for a write pair each. The caller recounts."""
    delete_all([connection_key(session_id, connection.connectionId) for connection in connections])


def remove_gone(session_id: str, connections: list[Connection], each=map) -> int:
    """Deletes these connections' records (`each` maps the deletes, a thread pool's map runs them at once) and
    counts off the listeners among them that were still there, by language too, in one write: exact, since each
    record guards its own count (a $disconnect racing this finds it gone, or this finds its record gone). If the
    count is already lower than that (it drifted), it is recounted from the records instead. The listeners
    counted off."""
    removed = [record for record in each(lambda c: _forget(session_id, c.connectionId), connections) if record]
    languages = Counter(record.get("targetLanguage", {"S": ""})["S"] for record in removed
                        if record["role"]["S"] == LISTENER)
    total = sum(languages.values())
    if total:
        names = {f"#l{i}": language_count(code) for i, code in enumerate(languages)}
        values = {f":l{i}": {"N": str(-n)} for i, n in enumerate(languages.values())}
        adds = ", ".join(f"#l{i} :l{i}" for i in range(len(languages)))
        if not _update_session_if(session_id, UpdateExpression=f"ADD listenerCount :minus, {adds}",
                                  ConditionExpression="attribute_exists(pk) AND listenerCount >= :total",
                                  ExpressionAttributeNames=names,
                                  ExpressionAttributeValues={":minus": {"N": str(-total)}, ":total": {"N": str(total)},
                                                             **values}):
            recount(session_id)
    return total


def recount(session_id: str) -> int | None:
    """Sets the session's listenerCount and listeners_<code> to what its listener records say: the records
    are the truth, the counts a cache that a retried ADD, a function killed between its two writes or a lost
    $disconnect can leave wrong. The new count, or None when there is nothing to do (no such session, ended)
    or the counts moved meanwhile (a join or leave between the read and the write: the next recount heals).
    A join between its two writes (record put, count not yet added) is counted here and again by its ADD:
    one too many until the next recount."""
    item = request("get_item", Key=session_key(session_id), ConsistentRead=True).get("Item")
    if not item or item.get("status", {}).get("S") == ENDED:
        return None
    languages: Counter[str] = Counter()
    for page in query_items(session_partition(session_id), CONNECTION_PREFIX, ConsistentRead=True,
                            ProjectionExpression="#role, targetLanguage", ExpressionAttributeNames={"#role": "role"}):
        languages.update(i.get("targetLanguage", {"S": ""})["S"] for i in page.get("Items", [])
                         if i["role"]["S"] == LISTENER)
    seen = {name: int(value["N"]) for name, value in item.items()
            if (name == "listenerCount" or name.startswith(LANGUAGE_COUNT_PREFIX)) and "N" in value}
    wanted = {name: 0 for name in seen} | {language_count(code): n for code, n in languages.items()}
    wanted["listenerCount"] = sum(languages.values())
    if all(seen.get(name) == n for name, n in wanted.items()):
        return wanted["listenerCount"]
    names, values, sets, conditions = {"#status": "status"}, {":ended": {"S": ENDED}}, [], ["#status <> :ended"]
    for i, (name, n) in enumerate(sorted(wanted.items())):
        names[f"#c{i}"] = name
        values[f":new{i}"] = {"N": str(n)}
        sets.append(f"#c{i} = :new{i}")
        if name in seen:
            values[f":old{i}"] = {"N": str(seen[name])}
            conditions.append(f"#c{i} = :old{i}")
        else:
            conditions.append(f"attribute_not_exists(#c{i})")
    if not _update_session_if(session_id, UpdateExpression="SET " + ", ".join(sets),
                              ConditionExpression=" AND ".join(conditions), ExpressionAttributeNames=names,
                              ExpressionAttributeValues=values):
        return None
    logger.info("listener count healed", extra={"was": seen.get("listenerCount"), "now": wanted["listenerCount"]})
    return wanted["listenerCount"]


_LISTED = {"ProjectionExpression": "connectionId, #role, connectedAt, dialect", "ExpressionAttributeNames": {"#role": "role"}}


def from_item(item: dict) -> Connection:
    """A connection item (whole, or projected as _LISTED projects it) as every caller reads it."""
    return Connection(item["connectionId"]["S"], item["role"]["S"], int(item.get("connectedAt", {"N": "0"})["N"]),
                      item.get("dialect", {"S": NATIVE})["S"])


def pages(session_id: str, limit: int = 100):
    """The session's connections, a page at a time (lists of Connection)."""
    for page in query_items(session_partition(session_id), CONNECTION_PREFIX, Limit=limit, **_LISTED):
        yield [from_item(i) for i in page.get("Items", [])]


def listeners(session_id: str, language: str, limit: int = 1000, referenced: bool = False):
    """The listeners of one language ("": those who asked for the original), a page at a time, as pages() lists
    them; from the listening index, so the other languages' listeners are not read (nor, `referenced`, those sent
    inline chunks, or the other way round)."""
    for page in query_index(LISTENING_INDEX, LISTENING, listening_key(session_id, language, referenced), Limit=limit,
                            **_LISTED):
        yield [from_item(i) for i in page.get("Items", [])]


def listed(session_id: str, connection_id: str) -> dict | None:
    """One connection of the session as pages() lists it; None if its record is gone."""
    item = request("get_item", Key=connection_key(session_id, connection_id), ConsistentRead=True, **_LISTED).get("Item")
    return from_item(item) if item else None


# A legacy connection created its session after $connect, so the
# authorizer context does not name it: a pointer item does.
def link_legacy(connection_id: str, session_id: str) -> None:
    now = int(time.time())
    try:
        request("put_item", Item={**legacy_key(connection_id), "sessionId": {"S": session_id},
                                  "expiresAt": {"N": str(now + CONNECTION_TTL_SECONDS)}},
                ConditionExpression="attribute_not_exists(pk)")
    except ConditionFailed:
        raise errors.AlreadyInSession() from None


def legacy_session_of(connection_id: str) -> str | None:
    item = request("get_item", Key=legacy_key(connection_id), ConsistentRead=True).get("Item")
    return item["sessionId"]["S"] if item else None


def unlink_legacy(connection_id: str) -> None:
    request("delete_item", Key=legacy_key(connection_id))
