"""The tests leave the user's engine alone, and the tests' own engines share nothing with it.

The last test of every session that used the user's engine (see `runs_last` in tests/conftest.py;
the image tier's too) checks the canary built there when the session started: still fully
CACHED; every image, container and volume the developer had is still there (a volume not made
anew); and nothing with a test name is left.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import (
    HostBaseline,
    _unavailable,
    image_exists,
    runs_last,
    session_registry_hosts,
)
from tests.helpers.engines import OwnEngine, started_engine
from tests.helpers.host_engine import (
    TEST_IMAGE_NAMESPACE,
    TEST_NAME_PREFIX,
    container_inventory,
    count_cached_steps,
    image_inventory,
    is_test_image,
    missing_containers,
    missing_images,
    missing_volumes,
    other_live_sessions,
    remaining_test_artifacts,
    remove_test_artifacts,
    sibling_workers,
    volume_inventory,
)
from tests.helpers.processes import processes_matching

RUN_STEPS = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo {nonce} > /nonce && test -s /nonce
"""


def _context(tmp_path: Path) -> Path:
    shutil.copy("/bin/busybox", tmp_path / "busybox")
    (tmp_path / "Dockerfile").write_text(RUN_STEPS.format(nonce=uuid.uuid4().hex))
    return tmp_path


def _host_network() -> dict[str, str]:
    """The host's interfaces, addresses and routes. Other tests' containers come and go on the
    user's engine: their veths are left out, and so is link state (docker0 is up only while a
    container runs)."""
    facts = {}
    checks: list[tuple[list[str], Callable[[list[str]], list[str]]]] = [
        (["ip", "-br", "link"], lambda f: [f[0], f[2]]),
        (["ip", "-br", "addr"], lambda f: [f[0], *f[2:]]),
        (["ip", "route"], lambda f: [w for w in f if w != "linkdown"]),
        (["ip", "-6", "route"], lambda f: [w for w in f if w != "linkdown"]),
    ]
    for argv, keep in checks:
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        lines = [" ".join(keep(line.split())) for line in out.splitlines() if "veth" not in line]
        facts[" ".join(argv)] = "\n".join(sorted(lines))
    return facts


def _build(engine: OwnEngine, context: Path, tag: str, *, tcp: bool = False) -> str:
    done = engine.docker(
        "buildx", "build", "--progress", "plain", "-t", tag, str(context), tcp=tcp, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def test_own_engine_builds_run_steps_and_leaves_the_host_network_alone(
    engine: None, tmp_path: Path
) -> None:
    before = _host_network()
    with started_engine(tcp=False) as own:
        during = _host_network()
        tag = f"{TEST_IMAGE_NAMESPACE}run-steps:{uuid.uuid4().hex[:8]}"
        # RUN steps with the default network: the engine's bridge is in its own namespace.
        _build(own, _context(tmp_path), tag)
        assert own.docker("image", "inspect", tag, check=False).returncode == 0
        assert not image_exists(tag)  # the user's engine never saw it
        root = own.root
    assert _host_network() == before == during
    assert not root.exists()


@pytest.mark.engine  # an engine of its own, asked for without a fixture
def test_killed_engine_refuses_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    with started_engine(tcp=True) as own:
        assert own.docker("version", tcp=True, check=False).returncode == 0
        own.kill()
        assert not own.alive()
        for tcp in (False, True):
            refused = own.docker("version", tcp=tcp, check=False, timeout=15)
            assert refused.returncode != 0 and "Cannot connect" in refused.stderr
        leftovers = processes_matching(str(own.root))
        assert leftovers == [], f"processes outlived the engine: {leftovers}"
        root = own.root
    assert not root.exists()


def test_engine_without_containerd_store_cannot_export_a_registry_cache(
    own_engine_no_containerd_store: OwnEngine, tmp_path: Path
) -> None:
    own = own_engine_no_containerd_store
    assert own.docker("info", "--format", "{{.Driver}}").stdout.strip() == "overlay2"
    context = _context(tmp_path)
    _build(own, context, f"{TEST_IMAGE_NAMESPACE}classic:1")
    refused = own.docker(
        "buildx",
        "build",
        "--cache-to",
        f"type=registry,ref=127.0.0.1:9/{TEST_IMAGE_NAMESPACE}classic:buildcache",
        str(context),
        check=False,
    )
    # What the pipeline has to foresee on OrbStack's default engine (issue 10, item 5).
    assert refused.returncode != 0
    assert "Cache export is not supported for the docker driver" in refused.stderr


def test_own_engine_has_the_containerd_store_on_unix_and_tcp(own_engine: OwnEngine) -> None:
    for tcp in (False, True):
        status = own_engine.docker("info", "--format", "{{json .DriverStatus}}", tcp=tcp).stdout
        assert "io.containerd.snapshotter.v1" in status
    assert own_engine.tcp_host is not None and own_engine.tcp_host.startswith("tcp://127.0.0.1:")


def test_cached_step_count_reads_plain_progress() -> None:
    progress = (
        "#1 [1/2] COPY sandbox/busybox /bin/busybox\n#1 CACHED\n\n"  # a concurrent build's
        "#4 [1/3] COPY busybox /bin/busybox\n#4 CACHED\n\n"
        '#5 [2/3] RUN ["/bin/busybox", "--install"]\n#5 CACHED\n\n'
        "#6 [3/3] RUN echo x > /canary\n#6 0.1s\n#6 DONE 0.2s\n"
    )
    instructions = [
        "COPY busybox /bin/busybox",
        'RUN ["/bin/busybox", "--install"]',
        "RUN echo x > /canary",
    ]
    steps = count_cached_steps(progress, instructions)
    assert (steps.total, steps.cached) == (3, 2)


def test_test_images_are_told_from_the_developers() -> None:
    hosts = {"127.0.0.1:41234"}
    session_only = "127.0.0.1:41234/iterate/sandbox:sha-abc"  # this session's registry
    swept = (
        "iterate-test/canary-0a1b2c3d4e5f:1",
        "127.0.0.1:5000/iterate-test/sandbox-0a1b2c3d4e5f:local",
        "iterate-test/node24-bookworm:local",
        "127.0.0.1:45041/iterate/sandbox-0a1b2c3d4e5f:sha-x",  # left by older tests
        "127.0.0.1:45041/sandbox-client/12f0af09dc:v1",
    )
    theirs = (
        "127.0.0.1:5000/iterate/sandbox:local",
        "ghcr.io/iterate/sandbox:main",
        "sandbox-base/node24-bookworm:local",
        "iterate/sandbox-mine:local",
        "provider-test/healthy:1",  # a namespace older tests used: now anyone's
        "debian:bookworm",
    )
    assert is_test_image(session_only, hosts, sweep=False)
    for reference in swept:
        assert is_test_image(reference, hosts), reference
        assert not is_test_image(reference, hosts, sweep=False), reference
    for reference in theirs:
        assert not is_test_image(reference, hosts), reference


def test_missing_containers_and_volumes_leave_out_only_the_tests() -> None:
    hosts = {"127.0.0.1:41234"}
    containers_before = {
        "dev-shell 1a2b ubuntu:24.04",
        "sandbox-0a1b2c3d 3c4d ghcr.io/iterate/sandbox:local",  # a developer's sandbox_up
        "iterate-test-sbx-1 5e6f iterate-test/sandbox:local",
        "sandbox-verify-4242 7a8b iterate-test/sandbox:local",  # sandbox/verify/services.sh
    }
    after = {"dev-shell 1a2b ubuntu:24.04"}
    gone = missing_containers(containers_before, after, hosts, concurrent=False)
    assert gone == ["sandbox-0a1b2c3d 3c4d ghcr.io/iterate/sandbox:local"]
    anonymous = "f" * 64
    volumes_before = {
        "iterate-pnpm-store 2026-01-01T00:00:00Z",
        "iterate-test-pnpm-store-ab12 2026-01-02T00:00:00Z",
        f"{anonymous} 2026-01-03T00:00:00Z",
    }
    # Removed and made again under its name: that is a change too.
    volumes_after = {"iterate-pnpm-store 2026-02-01T00:00:00Z"}
    assert missing_volumes(volumes_before, volumes_after, concurrent=True) == [
        "iterate-pnpm-store 2026-01-01T00:00:00Z"
    ]
    assert missing_volumes(volumes_before, volumes_after, concurrent=False) == [
        f"{anonymous} 2026-01-03T00:00:00Z",
        "iterate-pnpm-store 2026-01-01T00:00:00Z",
    ]


@runs_last
def test_users_engine_kept_its_build_cache_and_images(
    engine: None, host_engine_baseline: HostBaseline | None
) -> None:
    assert host_engine_baseline is not None  # taken because this test was selected
    # Under pytest-xdist the check is about the whole run: wait for the other workers' tests
    # and their clean-up (xdist hands this test, collected last, to a worker as its last).
    deadline = time.monotonic() + 840
    while sibling_workers() and time.monotonic() < deadline:
        time.sleep(1)
    assert sibling_workers() == [], "the run's other xdist workers did not finish in 840 s"
    if host_engine_baseline.canary is None:
        _unavailable(host_engine_baseline.problem or "no canary")
    canary = host_engine_baseline.canary
    # Not vacuous: its last step was built, not found, when the session started.
    assert canary.first.cached < canary.first.total == 3, canary.first.output[-2000:]
    again = canary.rebuild()
    assert again.cached == again.total == 3, again.output[-3000:]
    canary.remove()
    hosts = session_registry_hosts()
    removed = remove_test_artifacts(hosts)
    assert remaining_test_artifacts(hosts, removed.swept) == []
    baseline = host_engine_baseline
    concurrent = baseline.others or bool(other_live_sessions())
    assert missing_images(baseline.images, image_inventory(), hosts, concurrent) == []
    assert missing_containers(baseline.containers, container_inventory(), hosts, concurrent) == []
    assert missing_volumes(baseline.volumes, volume_inventory(), concurrent) == []
    # Nor a volume of its name made by a test (sandboxes once made `iterate-pnpm-store`).
    names_before = {line.split(" ")[0] for line in baseline.volumes}
    made = [
        line.split(" ")[0] for line in volume_inventory() if not line.startswith(TEST_NAME_PREFIX)
    ]
    assert concurrent or [name for name in made if name not in names_before] == []
