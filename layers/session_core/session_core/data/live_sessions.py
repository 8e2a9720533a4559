"""The sessions each user holds, for the per-user cap: one item per user (pk = "USER#<sub>",
sk = "SESSIONS"; see table.py). `live` maps each session ID the user holds to that session's expiresAt;
`version` counts the writes that changed the map. docs/architecture.md ("Live sessions per user") has
the reasoning:

- claim: reads the item (strongly consistent), keeps the entries that have not expired, and, under the
  cap, writes the map back with the new entry, on condition that the version is still the one it read.
  Two creates racing for the last place both read the same version and only one write matches it; the
  other reads again and finds the cap reached. An expired session drops out at the next claim, with
  no event needed (TTL deletes the session item up to days late, and an expiry runs no code).
- release: removes the session's entry, only if it is there. Idempotent: a repeated end, a retried
  DELETE and the teardown's last step each release the same session, and it frees one place.
"""

from __future__ import annotations

import random
import time

from .. import errors
from ..platform.observability import logger
from .table import ConditionFailed, request, user_sessions_key

# Racing claims of one user: each lost round means another claim or release of that user won it.
MAX_ATTEMPTS = 8


def claim(user_id: str, session_id: str, expires_at: int, now: int, cap: int) -> None:
    """Counts the session against the user's cap; SessionLimitReached if the user holds `cap` live ones."""
    key = user_sessions_key(user_id)
    for attempt in range(MAX_ATTEMPTS):
        item = request("get_item", Key=key, ConsistentRead=True).get("Item")
        held = item.get("live", {}).get("M", {}) if item else {}
        live = {sid: value for sid, value in held.items() if int(value["N"]) > now}
        if len(live) >= cap:
            raise errors.SessionLimitReached(
                f"You hold {cap} live sessions, the most one user may; end one to create another.")
        live[session_id] = {"N": str(expires_at)}
        if item is None:
            condition, values = "attribute_not_exists(pk)", {}
        else:
            condition, values = "version = :read", {":read": item["version"]}
        try:
            request("update_item", Key=key, UpdateExpression="SET live = :live ADD version :one",
                    ConditionExpression=condition,
                    ExpressionAttributeValues={":live": {"M": live}, ":one": {"N": "1"}, **values})
            return
        except ConditionFailed:
            time.sleep(random.uniform(0, 0.005 * 2 ** attempt))  # full jitter: the racers spread out
    logger.warning("live-session claim kept losing races")
    raise errors.ServiceUnavailable()


def release(user_id: str, session_id: str) -> bool:
    """Frees the session's place; False if it held none (released already, or created before the cap)."""
    try:
        request("update_item", Key=user_sessions_key(user_id), UpdateExpression="REMOVE live.#id ADD version :one",
                ConditionExpression="attribute_exists(live.#id)", ExpressionAttributeNames={"#id": session_id},
                ExpressionAttributeValues={":one": {"N": "1"}})
    except ConditionFailed:
        return False
    return True
