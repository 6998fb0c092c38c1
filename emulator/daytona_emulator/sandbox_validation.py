"""Input checks of `POST /sandbox` and `GET /sandbox`, with Daytona's messages and order.

class-validator on `CreateSandboxDto` (the fields used with a snapshot) and on the list query;
the service's own rules (snapshot lookup, resources, regions) stay with the routes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from daytona_emulator.errors import bad_request

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 200


@dataclass(frozen=True)
class CreateSandboxRequest:
    snapshot: str
    name: str | None
    user: str | None
    env: dict[str, str]
    labels: dict[str, str]
    public: bool
    network_block_all: bool | None
    network_allow_list: str | None
    target: str | None
    auto_stop_interval: int | None
    auto_archive_interval: int | None
    auto_delete_interval: int | None
    volume_ids: list[str]
    has_resources: bool
    has_build_info: bool


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_map_messages(prop: str, value: object) -> list[str]:
    if not isinstance(value, dict):
        return [f"{prop} must be an object"]
    if not all(isinstance(item, str) for item in value.values()):
        return [f"each value in {prop} must be a string"]
    return []


def _dto_messages(body: dict[str, Any]) -> list[str]:
    """class-validator on `CreateSandboxDto`, in its property order (the fields used here)."""
    messages: list[str] = []
    for prop in ("name", "snapshot", "user"):
        if body.get(prop) is not None and not isinstance(body[prop], str):
            messages.append(f"{prop} must be a string")
    for prop in ("env", "labels"):
        if body.get(prop) is not None:
            messages.extend(_string_map_messages(prop, body[prop]))
    for prop in ("public", "networkBlockAll"):
        if body.get(prop) is not None and not isinstance(body[prop], bool):
            messages.append(f"{prop} must be a boolean value")
    for prop in ("networkAllowList", "target"):
        if body.get(prop) is not None and not isinstance(body[prop], str):
            messages.append(f"{prop} must be a string")
    for prop in ("cpu", "gpu", "memory", "disk"):
        if body.get(prop) is not None and not _is_int(body[prop]):
            messages.append(f"{prop} must be an integer number")
    for prop in ("autoStopInterval", "autoArchiveInterval", "autoDeleteInterval"):
        if body.get(prop) is not None and not _is_int(body[prop]):
            messages.append(f"{prop} must be an integer number")
    for prop in ("autoStopInterval", "autoArchiveInterval"):
        if _is_int(body.get(prop)) and body[prop] < 0:
            messages.append(f"{prop} must not be less than 0")
    volumes = body.get("volumes")
    if volumes is not None:
        if not isinstance(volumes, list):
            messages.append("volumes must be an array")
        elif not all(isinstance(v, dict) and isinstance(v.get("volumeId"), str) for v in volumes):
            messages.append("volumes.volumeId must be a string")
    return messages


def parse_create_sandbox(body: object) -> CreateSandboxRequest:
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    messages = _dto_messages(fields)
    if messages:
        raise bad_request(", ".join(messages))
    return CreateSandboxRequest(
        snapshot=(fields.get("snapshot") or "").strip(),
        name=fields.get("name") or None,
        user=fields.get("user") or None,
        env=dict(fields.get("env") or {}),
        labels=dict(fields.get("labels") or {}),
        public=bool(fields.get("public")),
        network_block_all=fields.get("networkBlockAll"),
        network_allow_list=fields.get("networkAllowList"),
        target=(fields.get("target") or "").strip() or None,
        auto_stop_interval=fields.get("autoStopInterval"),
        auto_archive_interval=fields.get("autoArchiveInterval"),
        auto_delete_interval=fields.get("autoDeleteInterval"),
        volume_ids=[v["volumeId"] for v in fields.get("volumes") or []],
        # The controller tests truthiness: `cpu: 0` is not "specifying resources".
        has_resources=any(fields.get(prop) for prop in ("cpu", "gpu", "memory", "disk")),
        has_build_info=fields.get("buildInfo") is not None,
    )


def list_messages(params: dict[str, list[str]]) -> list[str]:
    messages: list[str] = []
    if "limit" in params:
        raw = params["limit"][-1]
        if not raw.strip().isdigit():
            messages.append("limit must be an integer number")
        elif int(raw) < 1:
            messages.append("limit must not be less than 1")
        elif int(raw) > MAX_LIST_LIMIT:
            messages.append(f"limit must not be greater than {MAX_LIST_LIMIT}")
    if "cursor" in params and not params["cursor"][-1].isdigit():
        messages.append("cursor is invalid")
    if "labels" in params:
        try:
            labels = json.loads(params["labels"][-1])
        except json.JSONDecodeError:
            labels = None
        if not isinstance(labels, dict):
            messages.append("labels must be a JSON object")
    return messages


def values(params: dict[str, list[str]], name: str) -> set[str]:
    """Repeated parameters and comma-separated lists alike (clients send either)."""
    return {part for raw in params.get(name, []) for part in raw.split(",") if part}
