"""The copy buildx is sent from (pipeline/fastpath/mirror.py): it holds exactly the files the
fingerprint digested, writes only what changed, and makes every content change visible to
buildx's context transfer (which compares size and mtime only)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pipeline.fastpath.context import digest_context, ignore_rules
from pipeline.fastpath.mirror import mirrored


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "sandbox").mkdir(parents=True)
    (root / "sandbox" / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (root / "sandbox" / "Dockerfile.dockerignore").write_text("excluded*\n")
    (root / "app.txt").write_text("one\n")
    (root / "excluded.txt").write_text("never sent\n")
    (root / "sub").mkdir()
    (root / "sub" / "tool.sh").write_text("#!/bin/sh\n")
    (root / "sub" / "tool.sh").chmod(0o755)
    os.symlink("app.txt", root / "link")
    return root


def sync(repo: Path, tmp_path: Path) -> tuple[Path, str, str, int]:
    dockerfile = repo / "sandbox" / "Dockerfile"
    rules = ignore_rules(dockerfile, repo)
    with mirrored(repo, rules, dockerfile, tmp_path / "mirror") as copy:
        assert copy.dockerfile.read_text() == dockerfile.read_text()
        assert (copy.dockerfile.parent / "Dockerfile.dockerignore").read_text() == "excluded*\n"
        return copy.context, copy.digest, digest_context(repo, rules, None).digest, copy.copied


def test_the_copy_holds_what_buildx_would_send_and_digests_the_same(
    repo: Path, tmp_path: Path
) -> None:
    context, digest, original, copied = sync(repo, tmp_path)
    assert digest == original and copied == 4  # app.txt, sub/tool.sh and sandbox/ (2)
    assert (context / "app.txt").read_text() == "one\n"
    assert not (context / "excluded.txt").exists()
    assert os.readlink(context / "link") == "app.txt"
    assert stat.S_IMODE((context / "sub" / "tool.sh").stat().st_mode) == 0o755
    assert (context / "app.txt").stat().st_mtime_ns == (repo / "app.txt").stat().st_mtime_ns


def test_an_unchanged_tree_writes_nothing(repo: Path, tmp_path: Path) -> None:
    sync(repo, tmp_path)
    _, digest, original, copied = sync(repo, tmp_path)
    assert copied == 0 and digest == original


def test_an_edit_whose_mtime_is_put_back_still_reaches_buildx(repo: Path, tmp_path: Path) -> None:
    """buildx would keep the old content of a same-size file whose mtime did not move."""
    context, _, _, _ = sync(repo, tmp_path)
    before = (context / "app.txt").stat()
    times = (repo / "app.txt").stat()
    (repo / "app.txt").write_text("two\n")  # same size
    os.utime(repo / "app.txt", ns=(times.st_atime_ns, times.st_mtime_ns))  # `touch -r`
    _, digest, original, copied = sync(repo, tmp_path)
    after = (context / "app.txt").stat()
    assert (context / "app.txt").read_text() == "two\n" and copied == 1
    assert after.st_size == before.st_size and after.st_mtime_ns != before.st_mtime_ns
    assert digest == original


def test_the_copy_changes_only_when_synced(repo: Path, tmp_path: Path) -> None:
    context, digest, _, _ = sync(repo, tmp_path)
    (repo / "app.txt").write_text("edited while buildx reads the copy\n")
    assert (context / "app.txt").read_text() == "one\n"  # what the fingerprint named
    _, again, original, _ = sync(repo, tmp_path)
    assert again == original != digest


def test_removed_files_and_changed_kinds_follow(repo: Path, tmp_path: Path) -> None:
    context, _, _, _ = sync(repo, tmp_path)
    (repo / "app.txt").unlink()
    (repo / "link").unlink()
    (repo / "link").mkdir()  # a link became a folder
    (repo / "sub" / "tool.sh").unlink()
    (repo / "sub" / "tool.sh").mkdir()  # a file became a folder
    (repo / "sub").chmod(0o555)  # read-only folders are copied read-only, and synced again
    try:
        _, digest, original, _ = sync(repo, tmp_path)
        assert digest == original
        assert not (context / "app.txt").exists() and (context / "link").is_dir()
        assert (context / "sub" / "tool.sh").is_dir()
        (repo / "sub").chmod(0o755)
        (repo / "sub" / "new.txt").write_text("new\n")
        (repo / "sub").chmod(0o555)
        _, digest, original, _ = sync(repo, tmp_path)
        assert digest == original and (context / "sub" / "new.txt").exists()
    finally:
        (repo / "sub").chmod(0o755)
        for folder, _, _ in os.walk(tmp_path / "mirror"):
            os.chmod(folder, 0o700)
