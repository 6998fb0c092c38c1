"""DOCKER_HOST=tcp://127.0.0.1:PORT, the way OrbStack and Docker Desktop serve their engine:
the main job builds, loads, tags and pushes through it (issue 10, item 5).

The engine is one of the tests' own (`own_engine`), so the images land there and nowhere else.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pipeline.build.record import REPLAYED
from pipeline.registry.server import LocalRegistry
from tests.conftest import FixtureRepo, image_exists, run_pipeline
from tests.helpers.engines import OwnEngine


def _in_engine(engine: OwnEngine, reference: str) -> bool:
    return engine.docker("image", "inspect", reference, tcp=True, check=False).returncode == 0


def test_snapshot_local_builds_loads_and_tags_over_tcp(
    own_engine: OwnEngine, fixture_repo: FixtureRepo, tmp_path: Path
) -> None:
    assert own_engine.tcp_host is not None
    report = tmp_path / "report.json"
    # the test's own cache (the replay's record, the fingerprint's key) for every run
    env = fixture_repo.env(
        DOCKER_HOST=own_engine.tcp_host, PIPELINE_REPORT=str(report), XDG_CACHE_HOME=str(tmp_path)
    )
    run = run_pipeline("snapshot_local", env=env)
    assert run.returncode == 0, run.output[-3000:]
    sha = fixture_repo.sha
    for tag in (f"{fixture_repo.repository}:local", f"{fixture_repo.repository}:sha-{sha}"):
        assert _in_engine(own_engine, tag), tag
        assert not image_exists(tag), f"{tag} reached the user's engine"
    built = json.loads(report.read_text())["build"]
    assert built["sha"] == sha and built["pushed"] is False
    assert built["steps_total"] == 3  # RUN steps included: they ran in that engine
    # unchanged, without a report: replayed, asking that engine over tcp for the image ids
    again = run_pipeline(
        "snapshot_local",
        env=fixture_repo.env(DOCKER_HOST=own_engine.tcp_host, XDG_CACHE_HOME=str(tmp_path)),
    )
    assert again.returncode == 0, again.output[-3000:]
    assert "nothing built" in again.output
    replayed = run_pipeline(
        "snapshot_local",
        env=fixture_repo.env(DOCKER_HOST=own_engine.tcp_host, XDG_CACHE_HOME=str(tmp_path)),
    )
    assert REPLAYED in replayed.output, replayed.output[-3000:]


def test_a_docker_context_names_the_engine_for_build_and_replay(
    own_engine: OwnEngine, fixture_repo: FixtureRepo, tmp_path: Path
) -> None:
    """OrbStack and Docker Desktop select their engine with a docker context, not DOCKER_HOST:
    the context is made by the real docker CLI, and the replay reads what it wrote."""
    assert own_engine.tcp_host is not None
    config = tmp_path / "docker-config"
    env = {"DOCKER_CONFIG": str(config)}
    for argv in (
        ["context", "create", "iterate-test-orb", "--docker", f"host={own_engine.tcp_host}"],
        ["context", "use", "iterate-test-orb"],
    ):
        made = subprocess.run(
            ["docker", *argv], env={**os.environ, **env}, capture_output=True, text=True
        )
        assert made.returncode == 0, made.stderr
    runs = [
        run_pipeline(
            "snapshot_local",
            env=fixture_repo.env(XDG_CACHE_HOME=str(tmp_path / "cache")),
            docker_config=config,
        )
        for _ in range(2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[-1].output[-3000:]
    assert "nothing built" not in runs[0].output and REPLAYED in runs[1].output
    local = f"{fixture_repo.repository}:local"
    assert _in_engine(own_engine, local) and not image_exists(local)


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
