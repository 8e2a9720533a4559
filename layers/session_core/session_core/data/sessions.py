"""Sessions in DynamoDB (pk = "SESSION#<sessionId>", sk = "META"; see table.py).

Every write is a single conditional request, so concurrent writers never lose
each other's changes and no read-modify-write window exists.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from .. import errors
from ..domain import ACTIVE, ENDED, Session
from ..platform.observability import logger
from .table import (
    LANGUAGE_COUNT_PREFIX,
    LIVE_SHARDS,
    META,
    ConditionFailed,
    broadcast_key,
    live_key,
    live_partition,
    query_partition,
    request,
    session_key,
)

__all__ = ["LiveSession", "SessionAlreadyEnded", "SessionIdTaken", "State", "WrittenState", "claim_broadcast", "create",
           "end_by_service", "finish_teardown", "forget_live", "from_item", "get", "live_sessions", "owner_of",
           "read", "update", "written_states"]

# A session is listed for the sweep this long after it expires: long enough for a sweep to tear it down.
LIVE_LISTING_GRACE_SECONDS = 3 * 3600


# Each attribute of a session item, with the Python type of its field: the one table both to_item (writing)
# and from_item (reading) use. Numbers are written as DynamoDB strings, read back by their field's type.
_FIELDS: dict[str, type] = {
    "sessionId": str, "speakerId": str, "sourceLanguage": str, "qualityTier": str, "status": str,
    "partialResultsEnabled": bool, "minStabilityThreshold": float, "maxBufferTimeout": float, "listenerCount": int,
    "createdAt": int, "updatedAt": int, "expiresAt": int, "version": int, "endedAt": int, "resumedAt": int,
    "access": str, "joinKey": str, "bufferedChunks": int, "muted": bool, "speakerConnectionId": str,
    "speakerDisconnectedAt": int, "teardownCompletedAt": int}
_TAGS = {str: "S", bool: "BOOL", int: "N", float: "N"}


def _attribute(kind: type, value: object) -> dict:
    return {"N": str(value)} if _TAGS[kind] == "N" else {_TAGS[kind]: value}


def _value(kind: type, attribute: dict) -> object:
    return kind(attribute[_TAGS[kind]])


def to_item(session: Session) -> dict:
    """The session as created: its API fields that have a value. The internal ones (the buffer's count, mute,
    the speaker's connection, the counts by language) are written by the updates that change them."""
    return {**session_key(session.sessionId),
            **{name: _attribute(_FIELDS[name], value) for name, value in session.api_fields().items()
               if value is not None}}


def from_item(item: dict) -> Session:
    # The item is this service's own writing, so it is read field by field, without a validating model (pydantic
    # would cost a third of a cold start to every function that reads a session).
    fields = {name: _value(kind, item[name]) for name, kind in _FIELDS.items() if name in item}
    fields["languageCounts"] = {name[len(LANGUAGE_COUNT_PREFIX):]: int(value["N"]) for name, value in item.items()
                                if name.startswith(LANGUAGE_COUNT_PREFIX) and "N" in value}
    return Session(**fields)


def why_refused(session: dict | None, now: int, *, caller_id: str | None = None,
                not_owner: type[errors.ServiceError] = errors.Forbidden) -> errors.ServiceError | None:
    """Why a write conditioned on a live (and, given `caller_id`, the caller's own) session failed, told from
    the session item DynamoDB returned with the failure: missing or expired (TTL deletes lazily), someone
    else's, or ended. None: none of these, so the write's own further condition failed."""
    if session is None or int(session["expiresAt"]["N"]) <= now:
        return errors.SessionNotFound()
    if caller_id is not None and session["speakerId"]["S"] != caller_id:
        return not_owner()
    if session["status"]["S"] == ENDED:
        return SessionAlreadyEnded(session)
    return None


class SessionAlreadyEnded(errors.SessionEnded):
    """SESSION_ENDED, carrying the ended session as the failed write returned it: callers that
    act on an ended session (restarting its teardown) need no second read, nor the right to one."""

    def __init__(self, item: dict) -> None:
        super().__init__()
        self.item = item

    @property
    def session(self) -> Session:
        # Built on demand: a refusal is told from a few of the item's attributes.
        return from_item(self.item)


class SessionIdTaken(Exception):
    """The candidate session ID is already in use."""


def create(session: Session) -> None:
    try:
        request("put_item", Item=to_item(session), ConditionExpression="attribute_not_exists(pk)")
    except ConditionFailed:
        raise SessionIdTaken(session.sessionId) from None
    # Listed for the sweep (usecases/sweep.py) after the session exists: a listing without its session is
    # only a wasted read, a session without a listing one the sweep cannot end.
    request("put_item", Item={**live_key(session.sessionId), "sessionId": {"S": session.sessionId},
                              "createdAt": {"N": str(session.createdAt)},
                              "expiresAt": {"N": str(session.expiresAt + LIVE_LISTING_GRACE_SECONDS)}})


class LiveSession(NamedTuple):
    """A listed session: enough to name its teardown even once TTL has deleted its item."""

    sessionId: str
    createdAt: int


def live_sessions():
    """Every session listed for the sweep (created since the listing existed, not yet torn down)."""
    for shard in range(LIVE_SHARDS):
        for page in query_partition(live_partition(shard)):
            for item in page.get("Items", []):
                yield LiveSession(item["sessionId"]["S"], int(item["createdAt"]["N"]))


def forget_live(session_id: str) -> None:
    request("delete_item", Key=live_key(session_id))


def read(session_id: str) -> Session | None:
    """The session as stored (strongly consistent), expired or not; None once TTL deleted it."""
    item = request("get_item", Key=session_key(session_id), ConsistentRead=True).get("Item")
    return from_item(item) if item else None


def end_by_service(session_id: str, now: int) -> bool:
    """Ends a session nobody ended (it expired, or its legacy speaker's socket is gone); False if it had
    ended already or is gone."""
    try:
        request("update_item", Key=session_key(session_id),
                UpdateExpression="SET #status = :ended, endedAt = :now, updatedAt = :now ADD version :one",
                ConditionExpression="attribute_exists(pk) AND #status <> :ended",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":ended": {"S": ENDED}, ":now": {"N": str(now)}, ":one": {"N": "1"}})
    except ConditionFailed:
        return False
    return True


def get(session_id: str, now: int, *, consistent: bool = False) -> Session:
    """`consistent`: a strongly consistent read (twice the read cost), for a decision that must see the
    last write, such as a pause or resume just before."""
    item = request("get_item", Key=session_key(session_id), ConsistentRead=consistent).get("Item")
    # TTL deletes lazily, so an expired item may still be there.
    if item is None or int(item["expiresAt"]["N"]) <= now:
        raise errors.SessionNotFound()
    return from_item(item)


def owner_of(session_id: str) -> str | None:
    """The session's speaker (its creator), or None if there is no such session."""
    item = request("get_item", Key=session_key(session_id), ProjectionExpression="speakerId").get("Item")
    return item["speakerId"]["S"] if item else None


def update(session_id: str, caller_id: str, changes: dict[str, str | bool], now: int,
           expected_version: int | None = None) -> Session:
    """Applies `changes` if the caller owns the live, not-ended session.

    Raises SessionNotFound, Forbidden, SessionAlreadyEnded or VersionConflict,
    decided from the item DynamoDB returns when the condition fails.
    """
    values = {f":{name}": {"BOOL": value} if isinstance(value, bool) else {"S": value}
              for name, value in changes.items()}
    sets = [f"#{name} = :{name}" for name in changes]
    if changes.get("status") == ENDED:
        sets.append("endedAt = :now")
    elif changes.get("status") == ACTIVE:
        # Paused audio is forwarded relative to this moment (see usecases/audio.py).
        sets.append("resumedAt = :now")
    condition = "attribute_exists(pk) AND speakerId = :caller AND #status <> :ended AND expiresAt > :now"
    if expected_version is not None:
        condition += " AND version = :expected"
        values[":expected"] = {"N": str(expected_version)}
    values |= {":caller": {"S": caller_id}, ":ended": {"S": ENDED}, ":now": {"N": str(now)},
               ":one": {"N": "1"}}
    names = {f"#{name}": name for name in changes} | {"#status": "status"}
    try:
        result = request(
            "update_item",
            Key=session_key(session_id),
            UpdateExpression=f"SET {', '.join([*sets, 'updatedAt = :now'])} ADD version :one",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ConditionFailed as failed:
        raise _update_refusal(failed.item, caller_id, now, expected_version) from None
    return from_item(result["Attributes"])


def _update_refusal(item: dict | None, caller_id: str, now: int, expected_version: int | None) -> errors.ServiceError:
    refusal = why_refused(item, now, caller_id=caller_id)
    if refusal is not None:
        return refusal
    if expected_version is not None and int(item["version"]["N"]) != expected_version:
        return errors.VersionConflict()
    # Unreachable unless the item changed shape; still answer something true.
    return errors.VersionConflict("The session changed while it was being updated; retry.")


def finish_teardown(session_id: str) -> tuple[int, int, str] | None:
    """Marks the session's teardown complete: (createdAt, endedAt, speakerId), or None if the session record
    is gone."""
    now = int(time.time())
    try:
        item = request("update_item", Key=session_key(session_id), UpdateExpression="SET teardownCompletedAt = :now",
                       ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues={":now": {"N": str(now)}},
                       ReturnValues="ALL_NEW")["Attributes"]
    except ConditionFailed:
        logger.warning("session record gone before teardown finished")
        return None
    return int(item["createdAt"]["N"]), int(item.get("endedAt", {"N": str(now)})["N"]), item["speakerId"]["S"]


class State(NamedTuple):
    """What a session's sockets are told of it: a change of any of these is broadcast."""

    status: str
    listenerCount: int
    muted: bool
    speakerConnected: bool = False
    languages: tuple[tuple[str, int], ...] = ()  # listeners by language, sorted (comparable)


class WrittenState(NamedTuple):
    """One write of a session item, as the table's stream carries it."""

    sessionId: str
    state: State  # after the write
    before: State | None  # before it; None for a new item
    languages: dict[str, int]  # listeners by language after the write
    version: int
    expiresAt: int
    sequence: str  # the stream record's SequenceNumber: what a failed record is reported by
    speaker: str = ""  # the speaker's connection ID after the write; "" if none is connected
    speakerDisconnectedAt: int | None = None  # when the speaker's last connection closed, while none is open


def written_states(records: list[dict]):
    """Each session item write in a batch of the table's stream, in order (WrittenState). Other items'
    writes are skipped."""
    for record in records:
        change = record.get("dynamodb") or {}
        new, old = change.get("NewImage"), change.get("OldImage")
        # Session items only: the stream carries every write to the table.
        if not new or new.get("sk", {}).get("S") != META or "S" not in new.get("sessionId", {}):
            continue
        speaker = new.get("speakerConnectionId", {}).get("S", "")
        left = new.get("speakerDisconnectedAt", {}).get("N")
        yield WrittenState(new["sessionId"]["S"], _state(new), _state(old) if old else None, _languages(new),
                           int(new.get("version", {"N": "0"})["N"]), int(new.get("expiresAt", {"N": "0"})["N"]),
                           str(change.get("SequenceNumber", "")), speaker,
                           int(left) if left and not speaker else None)


def _state(image: dict) -> State:
    return State(image.get("status", {}).get("S"), _listener_count(image), _muted(image),
                 "S" in image.get("speakerConnectionId", {}), tuple(sorted(_languages(image).items())))


def claim_broadcast(session_id: str, version: int, expires_at: int) -> bool:
    """Records that the sockets are being told `version` of the session; False if a newer version was told
    already (a retried, bisected batch), so this one must not be. The same version again is True: a retry
    of a batch that failed while telling it. Written before the posts, so a failure after it is retried."""
    try:
        request("update_item", Key=broadcast_key(session_id),
                UpdateExpression="SET postedVersion = :version, expiresAt = :expires",
                ConditionExpression="attribute_not_exists(postedVersion) OR postedVersion <= :version",
                ExpressionAttributeValues={":version": {"N": str(version)}, ":expires": {"N": str(expires_at)}})
    except ConditionFailed:
        return False
    return True


def _listener_count(image: dict) -> int:
    return int(image.get("listenerCount", {"N": "0"})["N"])


def _languages(image: dict) -> dict[str, int]:
    source = image.get("sourceLanguage", {}).get("S", "")
    shares: dict[str, int] = {}
    for name, value in image.items():
        if name.startswith(LANGUAGE_COUNT_PREFIX) and int(value.get("N", "0")) > 0:
            code = name[len(LANGUAGE_COUNT_PREFIX):] or source
            shares[code] = shares.get(code, 0) + int(value["N"])
    return shares


def _muted(image: dict) -> bool:
    return image.get("muted", {"BOOL": False}).get("BOOL", False)
