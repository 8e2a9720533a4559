"""Configuration from the function's environment (set by template.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Settings:
    table_name: str
    session_ttl_seconds: int
    stage: str


@cache
def settings() -> Settings:
    return Settings(
        table_name=os.environ["TABLE_NAME"],
        session_ttl_seconds=int(os.environ.get("SESSION_TTL_HOURS", "24")) * 3600,
        stage=os.environ.get("STAGE_NAME", "dev"),
    )
