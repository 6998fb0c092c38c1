"""The local registry's start: a clear error when it cannot serve, through the one poll helper."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from pipeline.errors import EngineError
from pipeline.registry.server import LocalRegistry, start_registry


def test_the_test_registry_needs_its_password(registry: LocalRegistry) -> None:
    assert httpx.get(f"{registry.url}/v2/").status_code == 401
    with registry.client() as client:
        assert client.get("/v2/").status_code == 200


def test_a_busy_port_is_one_error_naming_the_log(registry: LocalRegistry, tmp_path: Path) -> None:
    taken = int(registry.host.rsplit(":", 1)[1])
    with pytest.raises(EngineError, match="exited at start") as caught:
        start_registry(tmp_path / "second", port=taken)
    assert str(tmp_path / "second" / "registry.log") in str(caught.value)
    assert "address already in use" in (tmp_path / "second" / "registry.log").read_text()
