"""DynamoDB transaction conflicts, which moto never raises.

As DynamoDB documents them: a TransactWriteItems touching an item that another
running transaction holds is cancelled (TransactionCanceledException, reason
TransactionConflict for that item), and a PutItem, UpdateItem or DeleteItem on
an item a running transaction holds fails with TransactionConflictException.
botocore retries neither. An item is held from the moment the transaction
reaches the endpoint until it is answered.

Not reproduced: BatchWriteItem items and TransactGetItems meeting a running
transaction (the product uses neither against one).
"""

from __future__ import annotations

import collections
import json
from typing import Any

Key = tuple[str, str]
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})


class TransactionConflicts:
    def __init__(self, key_schemas: dict[str, tuple[str, ...]]) -> None:
        self._schemas = key_schemas  # table name -> its key attribute names
        self._held: collections.Counter[Key] = collections.Counter()

    def admit(self, operation: str, payload: dict) -> tuple[dict | None, list[Key]]:
        """(the error body DynamoDB would answer, or None; the items to hold until the answer)."""
        if operation == "TransactWriteItems":
            keys = [self._key(kind, op) for entry in payload.get("TransactItems") or []
                    for kind, op in entry.items()]
            conflicts = [key is not None and self._held[key] > 0 for key in keys]
            if any(conflicts):
                return _cancelled(conflicts), []
            held = [key for key in keys if key is not None]
            self._held.update(held)
            return None, held
        if operation in _WRITES:
            key = self._key("Put" if operation == "PutItem" else "Key", payload)
            if key is not None and self._held[key] > 0:
                return {"__type": "com.amazonaws.dynamodb.v20120810#TransactionConflictException",
                        "message": "Transaction is ongoing for the item"}, []
        return None, []

    def release(self, keys: list[Key]) -> None:
        self._held.subtract(keys)
        for key in keys:
            if self._held[key] <= 0:
                del self._held[key]

    def _key(self, kind: str, op: Any) -> Key | None:
        if not isinstance(op, dict):
            return None
        table = str(op.get("TableName", "")).rsplit("/", 1)[-1]
        item = op.get("Item") if kind == "Put" else op.get("Key")
        schema = self._schemas.get(table)
        if not isinstance(item, dict) or not schema:
            return None
        try:
            return table, json.dumps([item[name] for name in schema], sort_keys=True)
        except KeyError:
            return None  # DynamoDB refuses it as a validation error before any conflict


def _cancelled(conflicts: list[bool]) -> dict:
    reasons = [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"} if conflict
               else {"Code": "None"} for conflict in conflicts]
    summary = ", ".join(r["Code"] for r in reasons)
    return {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons [{summary}]",
            "CancellationReasons": reasons}
