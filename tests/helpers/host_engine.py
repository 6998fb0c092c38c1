"""The user's engine (whatever `docker` talks to) is left as the tests found it.

Everything a test makes there carries a test name, and `remove_test_artifacts` removes exactly
those at the end of a session: images by reference (a tag, never an image ID another tag may
share), containers, volumes and networks by name. Nothing is ever pruned: a test that needs an
empty build cache or a broken engine uses an engine of its own (tests/helpers/engines.py).

Test sessions may run side by side on one engine (parallel CI jobs on one runner, several
checkouts): a session always removes what carries its own registry's host (a random loopback
port), but sweeps the generic test names only when no other test session is alive, so it never
pulls an image from under a running test.

A canary proves it: a tiny image built when the session starts must still be fully CACHED at the
end, and every image the developer had must still be there.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Names of everything the tests make on the user's engine.
TEST_PREFIX = "iterate-test"
TEST_NAME_PREFIX = f"{TEST_PREFIX}-"  # containers, volumes, networks
TEST_IMAGE_NAMESPACE = f"{TEST_PREFIX}/"  # image repositories: [REGISTRY/]iterate-test/...
# What earlier versions of the tests left behind (a nonce names each): swept too.
LEGACY_TEST_IMAGES = re.compile(
    r"^127\.0\.0\.1:\d+/(iterate/sandbox-[0-9a-f]{10,12}|sandbox-client/[0-9a-f]{10}):"
)
SESSIONS_DIR = Path(tempfile.gettempdir()) / f"{TEST_NAME_PREFIX}sessions"
_REGISTRY_HOST = re.compile(r"^([^/]+[.:][^/]*|localhost)/")


def registry_host(reference: str) -> str | None:
    found = _REGISTRY_HOST.match(reference)
    return found.group(1) if found else None


def is_test_image(reference: str, registry_hosts: Iterable[str] = (), sweep: bool = True) -> bool:
    """Did a test make this image (REPOSITORY:TAG)? Every image of this session's registries
    (random loopback ports) is; with `sweep`, so is every image with a test name."""
    host = registry_host(reference)
    if host is not None and host in set(registry_hosts):
        return True
    if not sweep:
        return False
    path = reference[len(host) + 1 :] if host else reference
    return bool(LEGACY_TEST_IMAGES.match(reference)) or path.startswith(TEST_IMAGE_NAMESPACE)


def _session_file() -> Path:
    # One directory for every user's sessions (sticky and world-writable, like /tmp); when
    # another user made it without that, a directory of this user's own.
    with contextlib.suppress(OSError):
        SESSIONS_DIR.mkdir(exist_ok=True)
        if SESSIONS_DIR.stat().st_uid == os.getuid():
            SESSIONS_DIR.chmod(0o1777)
    if os.access(SESSIONS_DIR, os.W_OK | os.X_OK):
        return SESSIONS_DIR / str(os.getpid())
    own = SESSIONS_DIR.with_name(f"{SESSIONS_DIR.name}-{os.getuid()}")
    own.mkdir(exist_ok=True)
    return own / str(os.getpid())


def enter_session() -> None:
    """Say that a test session runs (this process), so others do not sweep under it. An xdist
    worker writes its run's id, so that its siblings can be told from other runs."""
    _session_file().write_text(os.environ.get("PYTEST_XDIST_TESTRUNUID", ""))


def leave_session() -> None:
    _session_file().unlink(missing_ok=True)


def other_live_sessions() -> list[int]:
    """Pids of other test sessions still running (those of dead ones are forgotten)."""
    live = []
    for entry in SESSIONS_DIR.parent.glob(f"{SESSIONS_DIR.name}*/[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        if Path(f"/proc/{pid}").exists():
            live.append(pid)
        else:
            with contextlib.suppress(OSError):  # another user's, in a sticky directory
                entry.unlink()
    return live


def sibling_workers() -> list[int]:
    """Pids of the other xdist workers of this run that have not finished their tests."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        return []
    siblings = []
    for pid in other_live_sessions():
        for entry in SESSIONS_DIR.parent.glob(f"{SESSIONS_DIR.name}*/{pid}"):
            with contextlib.suppress(OSError):
                if entry.read_text() == run:
                    siblings.append(pid)
    return siblings


def _docker_lines(*args: str) -> list[str]:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=120, check=False
    )
    return (
        [line for line in done.stdout.splitlines() if line.strip()] if not done.returncode else []
    )


def image_references() -> list[str]:
    """REPOSITORY:TAG of every tagged image on the user's engine."""
    lines = _docker_lines("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
    return sorted({line for line in lines if "<none>" not in line})


def image_inventory() -> set[str]:
    """Every image as `REPOSITORY:TAG ID` (untagged ones too), to compare before and after."""
    format_ = "{{.Repository}}:{{.Tag}} {{.ID}}"
    return set(_docker_lines("image", "ls", "--all", "--no-trunc", "--format", format_))


def container_inventory() -> set[str]:
    """Every container as `NAME ID IMAGE` (stopped ones too), to compare before and after."""
    return set(
        _docker_lines("ps", "--all", "--no-trunc", "--format", "{{.Names}} {{.ID}} {{.Image}}")
    )


def volume_inventory() -> set[str]:
    """Every volume as `NAME CREATED`: a volume removed and made again under its name differs."""
    names = _docker_lines("volume", "ls", "--format", "{{.Name}}")
    if not names:
        return set()
    return set(_docker_lines("volume", "inspect", "--format", "{{.Name}} {{.CreatedAt}}", *names))


_ANONYMOUS_VOLUME = re.compile(r"^[0-9a-f]{64}$")


def missing_containers(
    before: set[str], after: set[str], registry_hosts: Iterable[str], concurrent: bool
) -> list[str]:
    """Lines of `container_inventory()` that were there before, are gone, and were no test's
    (a test name, or a test image: the image's own verify scripts name theirs)."""
    gone = []
    for line in sorted(before - after):
        name, _, rest = line.partition(" ")
        image = rest.partition(" ")[2]
        if name.startswith(TEST_NAME_PREFIX) or is_test_image(image, registry_hosts):
            continue
        gone.append(line)
    return gone


def missing_volumes(before: set[str], after: set[str], concurrent: bool) -> list[str]:
    """Lines of `volume_inventory()` that were there before and are gone (or made anew), and
    were no test's. With other test sessions running meanwhile, anonymous volumes (their
    containers') are left out."""
    gone = []
    for line in sorted(before - after):
        name = line.partition(" ")[0]
        if name.startswith(TEST_NAME_PREFIX) or (concurrent and _ANONYMOUS_VOLUME.match(name)):
            continue
        gone.append(line)
    return gone


def remaining_test_artifacts(registry_hosts: Iterable[str], sweep: bool) -> list[str]:
    """What the tests made that is still on the user's engine: images, containers, volumes
    (with `sweep`, everything with a test name; else only what carries this session's hosts)."""
    hosts = set(registry_hosts)
    images = [ref for ref in image_references() if is_test_image(ref, hosts, sweep)]
    containers = [
        f"container {line.split(' ')[0]}"
        for line in container_inventory()
        if (sweep and line.startswith(TEST_NAME_PREFIX))
        or is_test_image(line.split(" ")[-1], hosts, sweep)
    ]
    volumes = [
        f"volume {line.split(' ')[0]}"
        for line in volume_inventory()
        if sweep and line.startswith(TEST_NAME_PREFIX)
    ]
    return sorted([*images, *containers, *volumes])


def missing_images(
    before: set[str], after: set[str], registry_hosts: Iterable[str], concurrent: bool
) -> list[str]:
    """Lines of `image_inventory()` that were there before, are gone, and were no test's.

    With other test sessions running meanwhile (`concurrent`), images on any loopback registry
    may have been theirs, made and removed while this session ran: those are left out."""
    hosts = set(registry_hosts)
    gone = []
    for line in sorted(before - after):
        reference = line.split(" ")[0]
        if is_test_image(reference, hosts):
            continue
        if concurrent and (registry_host(reference) or "").startswith("127.0.0.1:"):
            continue
        gone.append(line)
    return gone


@dataclass
class Removed:
    images: list[str]
    containers: list[str]
    volumes: list[str]
    networks: list[str]
    swept: bool


def remove_test_artifacts(registry_hosts: Iterable[str] = ()) -> Removed:
    """Remove from the user's engine what the tests made, and nothing else."""
    hosts, sweep = set(registry_hosts), not other_live_sessions()
    images = [ref for ref in image_references() if is_test_image(ref, hosts, sweep)]
    containers = []
    for line in _docker_lines("ps", "--all", "--format", "{{.Names}}\t{{.Image}}"):
        name, _, image = line.partition("\t")
        if (sweep and name.startswith(TEST_NAME_PREFIX)) or is_test_image(image, hosts, sweep):
            containers.append(name)
    volumes, networks = [], []
    if sweep:
        volumes = [
            name
            for name in _docker_lines("volume", "ls", "--format", "{{.Name}}")
            if name.startswith(TEST_NAME_PREFIX)
        ]
        networks = [
            name
            for name in _docker_lines("network", "ls", "--format", "{{.Name}}")
            if name.startswith(TEST_NAME_PREFIX)
        ]
    for command, names in (
        (["rm", "--force", "--volumes"], containers),
        (["image", "rm"], images),
        (["volume", "rm"], volumes),
        (["network", "rm"], networks),
    ):
        if names:
            subprocess.run(
                ["docker", *command, *names], capture_output=True, timeout=300, check=False
            )
    return Removed(images, containers, volumes, networks, sweep)


_CANARY_DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN echo {nonce} > /canary
"""
_STEP = re.compile(r"^#(\d+) \[\s*\d+/\d+\] (.*)$", re.MULTILINE)


@dataclass
class BuildSteps:
    total: int
    cached: int
    output: str


def count_cached_steps(plain_progress: str, instructions: Iterable[str]) -> BuildSteps:
    """Steps of `instructions` ("#N [k/n] INSTRUCTION") and how many buildx reported "#N CACHED".

    Only the given instructions count: BuildKit also streams the progress of identical steps
    that a concurrent build shares (another test's `COPY busybox`, say) into this build's.
    """
    wanted = set(instructions)
    steps: dict[str, set[str]] = {}
    for number, instruction in _STEP.findall(plain_progress):
        if instruction in wanted:
            steps.setdefault(instruction, set()).add(number)
    cached = [
        instruction
        for instruction, numbers in steps.items()
        if all(re.search(rf"^#{n} CACHED$", plain_progress, re.MULTILINE) for n in numbers)
    ]
    return BuildSteps(len(steps), len(cached), plain_progress)


@dataclass
class Canary:
    """A tiny image built on the user's engine when the session starts."""

    context: Path
    reference: str
    first: BuildSteps

    @classmethod
    def build(cls) -> Canary:
        nonce = uuid.uuid4().hex[:12]  # steps nobody else's cache can answer for
        context = Path(tempfile.mkdtemp(prefix=f"{TEST_NAME_PREFIX}canary-"))
        shutil.copy("/bin/busybox", context / "busybox")
        (context / "Dockerfile").write_text(_CANARY_DOCKERFILE.format(nonce=nonce))
        canary = cls(context, f"{TEST_IMAGE_NAMESPACE}canary-{nonce}:1", BuildSteps(0, 0, ""))
        try:
            canary.first = canary.rebuild()
        except BaseException:
            canary.remove()
            raise
        return canary

    def rebuild(self) -> BuildSteps:
        argv = ["docker", "buildx", "build", "--progress", "plain", "-t", self.reference]
        done = subprocess.run(
            [*argv, str(self.context)], capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode:
            raise RuntimeError(f"canary build failed:\n{done.stderr[-2000:]}")
        dockerfile = (self.context / "Dockerfile").read_text().splitlines()
        return count_cached_steps(done.stderr, dockerfile[1:])

    def remove(self) -> None:
        """The canary's image and context (its build cache stays: it is what was checked)."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["docker", "image", "rm", self.reference], capture_output=True, timeout=60
            )
        shutil.rmtree(self.context, ignore_errors=True)
