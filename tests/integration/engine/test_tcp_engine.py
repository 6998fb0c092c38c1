"""DOCKER_HOST=tcp://127.0.0.1:PORT, the way OrbStack and Docker Desktop serve their engine:
the main job builds, loads, tags and pushes through it (issue 10, item 5).

The engine is one of the tests' own (`own_engine`), so the images land there and nowhere else.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.adapters.local_registry import LocalRegistry
from tests.conftest import FixtureRepo, image_exists, run_pipeline
from tests.helpers.engines import OwnEngine


def _in_engine(engine: OwnEngine, reference: str) -> bool:
    return engine.docker("image", "inspect", reference, tcp=True, check=False).returncode == 0


def test_snapshot_local_builds_loads_and_tags_over_tcp(
    own_engine: OwnEngine, fixture_repo: FixtureRepo, tmp_path: Path
) -> None:
    assert own_engine.tcp_host is not None
    report = tmp_path / "report.json"
    env = fixture_repo.env(DOCKER_HOST=own_engine.tcp_host, PIPELINE_REPORT=str(report))
    run = run_pipeline("snapshot_local", env=env)
    assert run.returncode == 0, run.output[-3000:]
    sha = fixture_repo.sha
    for tag in (f"{fixture_repo.repository}:local", f"{fixture_repo.repository}:sha-{sha}"):
        assert _in_engine(own_engine, tag), tag
        assert not image_exists(tag), f"{tag} reached the user's engine"
    built = json.loads(report.read_text())["build"]
    assert built["sha"] == sha and built["pushed"] is False
    assert built["steps_total"] == 3  # RUN steps included: they ran in that engine


def test_push_over_tcp_reaches_the_loopback_registry(
    own_engine: OwnEngine,
    fixture_repo: FixtureRepo,
    registry: LocalRegistry,
    docker_config: Path,
    tmp_path: Path,
) -> None:
    # The engine pushes from its own network namespace: the registry's port is made reachable
    # there at the same 127.0.0.1 address (a daemon on the host would reach it directly).
    own_engine.reach_host_port(int(registry.host.rsplit(":", 1)[1]))
    assert own_engine.tcp_host is not None
    report = tmp_path / "report.json"
    env = fixture_repo.env(
        DOCKER_HOST=own_engine.tcp_host,
        PUSH="1",
        REGISTRY_USERNAME=registry.username,
        REGISTRY_PASSWORD=registry.password,
        PIPELINE_REPORT=str(report),
    )
    run = run_pipeline("snapshot_local", env=env, docker_config=docker_config)
    assert run.returncode == 0, run.output[-3000:]
    sha = fixture_repo.sha
    name = fixture_repo.repository.split("/", 1)[1]
    assert registry.tags(name) == ["buildcache", f"sha-{sha}"]
    assert _in_engine(own_engine, f"{fixture_repo.repository}:local")
    assert not image_exists(f"{fixture_repo.repository}:local")
    built = json.loads(report.read_text())["build"]
    assert built["pushed"] is True and built["cache_export"] == "ok"
    assert registry.password not in run.output
