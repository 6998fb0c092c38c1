"""Input checks of `POST /snapshots` and `GET /snapshots`, with Daytona's messages and order.

Daytona validates with class-validator: every failed constraint of every property becomes one
message, properties in DTO declaration order, and Nest joins them with ", " into one 400. The
business rules that follow (spec §6 steps 2-11) stop at the first failure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from daytona_emulator.config import Limits
from daytona_emulator.daytona_images import IMAGE_NAME_REGEX, image_name_error
from daytona_emulator.errors import ApiError, bad_request, not_found
from daytona_emulator.wire import js_number, js_str

# IsSafeDisplayString: markup, URLs and control characters are refused in display names.
UNSAFE_DISPLAY = re.compile(
    r"<[^>]*>|[a-z][a-z0-9+.\-]*://|www\.|data:|javascript:|[\x00-\x1f\x7f]", re.IGNORECASE
)
GPU_TYPES = ("H100", "H200", "B200", "B300", "RTX-PRO-6000", "RTX-4090", "RTX-5090", "MI355X")
SANDBOX_CLASSES = ("linux-vm", "container", "windows")
SORT_FIELDS = ("name", "state", "lastUsedAt", "createdAt")
SORT_ORDERS = ("asc", "desc")
MAX_PAGE_LIMIT = 200
PER_SANDBOX_LIMIT_MESSAGE = (
    "Need higher resource limits per-sandbox? Contact us at support@daytona.io "
    "and let us know about your use case."
)


@dataclass(frozen=True)
class CreateSnapshotRequest:
    name: str
    image_name: str | None
    entrypoint: list[str] | None
    cpu: float | None
    gpu: float | None
    gpu_type: str | None
    memory: float | None
    disk: float | None
    dockerfile_content: str | None
    context_hashes: list[str]
    region_id: str | None
    sandbox_class: str | None


@dataclass(frozen=True)
class ListQuery:
    page: int
    limit: int
    name: str | None
    sort: str
    order: str
    source_sandbox_id: str | None


def display_name_messages(prop: str, value: object) -> list[str]:
    """`@IsString() @IsSafeDisplayString()`: a string without markup, URLs or control
    characters (names that Daytona shows to other users)."""
    if not isinstance(value, str):
        return [f"{prop} must be a string"]
    if UNSAFE_DISPLAY.search(value):
        return [f"{prop} must not contain HTML tags, URLs, or control characters"]
    return []


def _enum_message(prop: str, values: tuple[str, ...]) -> str:
    return f"{prop} must be one of the following values: {', '.join(values)}"


def _number_messages(prop: str, value: object, minimum: float, maximum: float | None) -> list[str]:
    number = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    )
    messages: list[str] = []
    if not math.isfinite(number):
        messages.append(f"{prop} must be a number conforming to the specified constraints")
    # class-validator's Min/Max are false for non-numbers too (NaN compares false), so a string
    # collects their messages as well.
    if not number >= minimum:
        messages.append(f"{prop} must not be less than {js_str(minimum)}")
    if maximum is not None and not number <= maximum:
        messages.append(f"{prop} must not be greater than {js_str(maximum)}")
    return messages


def _dto_messages(body: dict[str, Any]) -> list[str]:
    """Step 1: class-validator on `CreateSnapshotDto`, in its property order."""
    messages: list[str] = []
    messages.extend(display_name_messages("name", body.get("name")))
    image_name = body.get("imageName")
    if image_name is not None and not isinstance(image_name, str):
        messages.append("imageName must be a string")
    entrypoint = body.get("entrypoint")
    if entrypoint is not None:
        if not isinstance(entrypoint, list):
            messages.append("entrypoint must be an array")
            if not isinstance(entrypoint, str):
                messages.append("each value in entrypoint must be a string")
        elif not all(isinstance(item, str) for item in entrypoint):
            messages.append("each value in entrypoint must be a string")
    for prop, maximum in (("cpu", None), ("gpu", 1.0)):
        if body.get(prop) is not None:
            messages.extend(_number_messages(prop, body[prop], 0, maximum))
    gpu_type = body.get("gpuType")
    if gpu_type is not None:
        values = gpu_type if isinstance(gpu_type, list) else [gpu_type]
        if not values or any(value not in GPU_TYPES for value in values):
            messages.append(_enum_message("gpuType", GPU_TYPES))
    for prop in ("memory", "disk"):
        if body.get(prop) is not None:
            messages.extend(_number_messages(prop, body[prop], 0, None))
    build_info = body.get("buildInfo")
    if build_info is not None:
        if not isinstance(build_info, dict):
            messages.append("buildInfo must be an object")
        else:
            content = build_info.get("dockerfileContent")
            if not isinstance(content, str):
                messages.append("buildInfo.dockerfileContent must be a string")
            if content is None or content == "":
                messages.append("buildInfo.dockerfileContent should not be empty")
            hashes = build_info.get("contextHashes")
            if hashes is not None and (
                not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes)
            ):
                messages.append("each value in buildInfo.contextHashes must be a string")
    region_id = body.get("regionId")
    if region_id is not None and not isinstance(region_id, str):
        messages.append("regionId must be a string")
    sandbox_class = body.get("sandboxClass")
    if sandbox_class is not None and sandbox_class not in SANDBOX_CLASSES:
        messages.append(_enum_message("sandboxClass", SANDBOX_CLASSES))
    return messages


def _clean_entrypoint(entrypoint: list[str] | None) -> list[str] | None:
    """Empty strings are dropped; an all-empty list means "unset" (processEntrypoint)."""
    if not entrypoint:
        return None
    kept = [part for part in entrypoint if part and part.strip()]
    return kept or None


def parse_create_snapshot(body: object, regions: tuple[str, ...]) -> CreateSnapshotRequest:
    """Steps 1-6 of spec §6: everything that does not depend on the organization's usage."""
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    messages = _dto_messages(fields)
    if messages:
        raise bad_request(", ".join(messages))
    build_info = fields.get("buildInfo")
    image_name = fields.get("imageName")
    entrypoint = fields.get("entrypoint")
    # Step 2, the controller: a snapshot is either pulled or built, never both.
    if build_info is not None:
        if image_name:
            raise bad_request("Cannot specify an image name when using a build info entry")
        if entrypoint:
            raise bad_request("Cannot specify an entrypoint when using a build info entry")
    elif not image_name:
        raise bad_request("Must specify an image name when not using a build info entry")
    # Step 3: regions (only the lookup; every configured region is available to every org).
    region_id = fields.get("regionId")
    if region_id and region_id not in regions:
        raise not_found("Region not found")
    name: str = fields["name"]
    # Step 4 and 5: name and image name formats.
    if not IMAGE_NAME_REGEX.fullmatch(name):  # validateSnapshotName: the image names' regex
        raise bad_request(
            "Invalid snapshot name format. May contain letters, digits, dots, colons, and dashes"
        )
    if build_info is None and isinstance(image_name, str):
        image_error = image_name_error(image_name)
        if image_error:
            raise bad_request(image_error)
    sandbox_class = fields.get("sandboxClass")
    # Step 6 (message not verifiable from public sources): Windows snapshots come from sandboxes.
    if sandbox_class == "windows":
        raise bad_request("Windows snapshots can only be created from sandboxes")
    gpu_type = fields.get("gpuType")
    return CreateSnapshotRequest(
        name=name,
        image_name=image_name,
        entrypoint=_clean_entrypoint(entrypoint),
        cpu=fields.get("cpu"),
        gpu=fields.get("gpu"),
        gpu_type=(gpu_type[0] if isinstance(gpu_type, list) else gpu_type),
        memory=fields.get("memory"),
        disk=fields.get("disk"),
        dockerfile_content=build_info["dockerfileContent"] if build_info else None,
        context_hashes=list(build_info.get("contextHashes") or []) if build_info else [],
        region_id=region_id,
        sandbox_class=sandbox_class,
    )


def check_resource_limits(
    limits: Limits,
    cpu: float | None,
    memory: float | None,
    disk: float | None,
    gpu: float | None,
) -> None:
    """Step 9: per-sandbox limits (a falsy request, 0 or absent, is never checked)."""
    if cpu and cpu > limits.max_cpu_per_sandbox:
        raise bad_request(
            f"CPU request {js_str(cpu)} exceeds maximum allowed per sandbox "
            f"({js_str(limits.max_cpu_per_sandbox)}).\n{PER_SANDBOX_LIMIT_MESSAGE}"
        )
    if memory and memory > limits.max_memory_per_sandbox:
        raise bad_request(
            f"Memory request {js_str(memory)}GB exceeds maximum allowed per sandbox "
            f"({js_str(limits.max_memory_per_sandbox)}GB).\n{PER_SANDBOX_LIMIT_MESSAGE}"
        )
    if disk and disk > limits.max_disk_per_sandbox:
        raise bad_request(
            f"Disk request {js_str(disk)}GB exceeds maximum allowed per sandbox "
            f"({js_str(limits.max_disk_per_sandbox)}GB).\n{PER_SANDBOX_LIMIT_MESSAGE}"
        )
    if gpu and gpu > limits.gpu_quota:
        raise bad_request(f"GPU quota exceeded. Maximum allowed: {limits.gpu_quota}.")


def check_snapshot_quota(limits: Limits, consuming: int) -> None:
    """Step 10: the new snapshot counts as pending usage before the comparison."""
    if consuming + 1 > limits.snapshot_quota:
        raise bad_request(f"Snapshot quota exceeded. Maximum allowed: {limits.snapshot_quota}")


def _int_param_messages(prop: str, raw: list[str], maximum: int | None) -> list[str]:
    # Express turns a repeated parameter into an array, which Number() makes NaN.
    number = js_number(raw[0]) if len(raw) == 1 else math.nan
    messages: list[str] = []
    if not (math.isfinite(number) and number.is_integer()):
        messages.append(f"{prop} must be an integer number")
    if math.isnan(number) or number < 1:
        messages.append(f"{prop} must not be less than 1")
    if maximum is not None and (math.isnan(number) or number > maximum):
        messages.append(f"{prop} must not be greater than {maximum}")
    return messages


def parse_list_query(params: dict[str, list[str]]) -> ListQuery:
    """`ListSnapshotsQueryDto`: page, limit, name, sort, order (+ sourceSandboxId in 0.226.1)."""
    messages: list[str] = []
    if "page" in params:
        messages.extend(_int_param_messages("page", params["page"], None))
    if "limit" in params:
        messages.extend(_int_param_messages("limit", params["limit"], MAX_PAGE_LIMIT))
    for prop in ("name", "sourceSandboxId"):
        if prop in params and len(params[prop]) != 1:
            messages.append(f"{prop} must be a string")
    for prop, allowed in (("sort", SORT_FIELDS), ("order", SORT_ORDERS)):
        if prop in params and (len(params[prop]) != 1 or params[prop][0] not in allowed):
            messages.append(_enum_message(prop, allowed))
    if messages:
        raise ApiError(400, ", ".join(messages))

    def single(prop: str) -> str | None:
        return params[prop][0] if prop in params else None

    return ListQuery(
        page=int(js_number(params["page"][0])) if "page" in params else 1,
        limit=int(js_number(params["limit"][0])) if "limit" in params else 100,
        name=single("name"),
        sort=single("sort") or "lastUsedAt",
        order=single("order") or "desc",
        source_sandbox_id=single("sourceSandboxId"),
    )
