"""The sandbox image's files, checked without an engine: Dockerfile order and pins, the
dockerignore, the supervisor config and the runtime scripts' pure parts (the offline base
image: test_base_image_unit.py).

What needs an engine (boot, versions, restarts, dev-sync) is in sandbox/verify/*.sh.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
import shlex
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from pipeline.fastpath.context import ignore_rules, is_sent
from pipeline.rules.dockerfile import parse
from pipeline.rules.dockerignore import Matcher, read_patterns

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "sandbox"
DOCKERFILE = SANDBOX / "Dockerfile"
DOCKERIGNORE = SANDBOX / "Dockerfile.dockerignore"
SUPERVISOR_CONF = SANDBOX / "supervisor" / "supervisord.conf"
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
SERVICES = {"daemon": 3000, "egress-proxy": 8888, "opencode": 4096}
# ENV name -> the npm package it pins
PINNED_PACKAGES = {
    "SANDBOX_OPENCODE_VERSION": "opencode-ai",
    "SANDBOX_CLAUDE_CODE_VERSION": "@anthropic-ai/claude-code",
    "SANDBOX_PI_CODING_AGENT_VERSION": "@mariozechner/pi-coding-agent",
    "SANDBOX_BUN_VERSION": "bun",
    "SANDBOX_PNPM_VERSION": "pnpm",
    "SANDBOX_TSX_VERSION": "tsx",
}


# --- Dockerfile ------------------------------------------------------------------------------


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), read by the pipeline's own Dockerfile reader."""
    return [(i.keyword, i.args) for i in parse(path.read_text()).instructions]


def index_of(steps: list[tuple[str, str]], keyword: str, needle: str = "") -> int:
    for i, (kw, args) in enumerate(steps):
        if kw == keyword and needle in args:
            return i
    raise AssertionError(f"no {keyword} {needle!r} in the Dockerfile")


def test_base_image_is_an_arg_defaulting_to_the_official_node_24_bookworm() -> None:
    steps = instructions()
    assert steps[0] == ("ARG", "BASE_IMAGE=official-base")
    # The official base in a plain FROM line (what Dependabot reads), the empty git-meta stage
    # (replaced by the pipeline's build context), then the image itself.
    assert [args for kw, args in steps if kw == "FROM"] == [
        "node:24-bookworm AS official-base",
        "scratch AS git-meta",
        "${BASE_IMAGE}",
    ]


def test_no_syntax_directive_since_frontend_images_cannot_be_pulled_here() -> None:
    assert not DOCKERFILE.read_text().lstrip().startswith("# syntax")


def test_agent_versions_are_env_lines_at_the_top_pinned_exactly() -> None:
    steps = instructions()
    first_run = index_of(steps, "RUN")
    envs = {}
    for kw, args in steps[2:first_run]:
        if kw == "ENV" and args.startswith("SANDBOX_"):
            name, _, value = args.partition("=")
            envs[name] = value
    assert set(PINNED_PACKAGES) <= set(envs), "every pinned tool has a SANDBOX_*_VERSION ENV"
    for name, value in envs.items():
        assert EXACT_VERSION.match(value), f"{name}={value} is not an exact x.y.z version"
    # Each sits right at the top: nothing but ENV lines between FROM and them.
    final = steps.index(("FROM", "${BASE_IMAGE}")) + 1
    assert all(kw == "ENV" for kw, _ in steps[final : final + len(envs)])


def test_npm_installs_each_package_at_its_pinned_version() -> None:
    steps = instructions()
    npm = steps[index_of(steps, "RUN", "npm install")][1]
    for variable, package in PINNED_PACKAGES.items():
        assert f'"{package}@${{{variable}}}"' in npm, f"{package} not pinned to ${variable}"
    assert "npm cache clean" in npm


def test_only_the_reviewed_install_scripts_run() -> None:
    """npm 12 blocks unreviewed install scripts: the image decides now. Every script is off at
    install; exactly the three that link native binaries are run again (sandbox/README.md)."""
    npm = instructions()[index_of(instructions(), "RUN", "npm install")][1]
    install = npm.split("npm install", 1)[1].split("&&", 1)[0]
    assert "--ignore-scripts" in install
    rebuild = npm.split("npm rebuild", 1)[1].split("&&", 1)[0].split()
    reviewed = ["@anthropic-ai/claude-code", "bun", "opencode-ai"]
    assert [w for w in rebuild if not w.startswith("--")] == reviewed
    # and allowed by name, npm's own record, which npm 12 needs to run them at all
    assert f"--allow-scripts={','.join(reviewed)}" in rebuild


def test_git_sha_is_declared_last_after_every_expensive_step() -> None:
    steps = instructions()
    arg = index_of(steps, "ARG", "GIT_SHA")
    assert steps[arg] == ("ARG", "GIT_SHA")
    before = steps[:arg]
    assert all("GIT_SHA" not in args for _, args in before), "GIT_SHA used before its ARG"
    assert all(kw in ("ENV", "LABEL") for kw, _ in steps[arg + 1 :])
    assert ("ENV", "GIT_SHA=${GIT_SHA}") in steps[arg + 1 :]
    assert ("LABEL", "org.opencontainers.image.revision=${GIT_SHA}") in steps[arg + 1 :]
    last_run = max(i for i, (kw, _) in enumerate(steps) if kw == "RUN")
    assert last_run < arg


def test_source_copy_comes_after_the_expensive_steps_and_the_sandbox_files() -> None:
    steps = instructions()
    source = index_of(steps, "COPY", " . .")
    assert steps[source][1] == "--chown=iterate:iterate . ."
    for i, (kw, args) in enumerate(steps):
        if kw == "RUN" or (kw == "COPY" and "sandbox/" in args):
            assert i < source, f"{kw} {args[:60]} comes after the source COPY"
    apt = index_of(steps, "RUN", "apt-get install")
    npm = index_of(steps, "RUN", "npm install")
    assert apt < npm < index_of(steps, "COPY", "sandbox/entry.sh")


def test_image_contents_the_brief_asks_for() -> None:
    text = DOCKERFILE.read_text()
    apt = instructions()[index_of(instructions(), "RUN", "apt-get install")][1]
    for package in ("gh", "git", "rsync", "supervisor", "inotify-tools", "mitmproxy"):
        assert re.search(rf"(?<![\w-]){re.escape(package)}(?![\w-])", apt), package
    assert "useradd --create-home --uid 1000" in text and " iterate" in text
    assert "git config --system user.name iterate-bot" in text
    assert "USER iterate" in text
    assert "WORKDIR /home/iterate/src/github.com/iterate/iterate" in text
    assert 'ENTRYPOINT ["/usr/local/bin/sandbox-entry"]' in text
    assert re.search(r"^EXPOSE 3000 4096 8888$", text, re.MULTILINE)


def copy_sources() -> list[str]:
    sources = []
    for kw, args in instructions():
        if kw != "COPY":
            continue
        words = [w for w in shlex.split(args) if not w.startswith("--")]
        sources += words[:-1]
    return sources


def test_every_copied_sandbox_file_exists_and_is_not_ignored() -> None:
    for source in copy_sources():
        if source == ".":
            continue
        assert (ROOT / source).exists(), source
        assert not ignored(source.rstrip("/")), f"{source} is excluded from the context"


def test_executables_are_executable_in_the_checkout() -> None:
    for name in ("entry.sh", "bin/pidnap", "bin/with-env", "verify/dev-sync.sh"):
        assert (SANDBOX / name).stat().st_mode & 0o111, f"sandbox/{name} is not executable"


# --- dockerignore ----------------------------------------------------------------------------


def ignored(path: str, patterns: list[str] | None = None) -> bool:
    """Whether buildx leaves `path` out of the context (the image's ignore file, or
    `patterns`), by the pipeline's matcher, which tests/unit/test_dockerignore.py holds to
    buildx's own."""
    if patterns is None:
        rules = ignore_rules(DOCKERFILE, ROOT)
        assert rules.path == DOCKERIGNORE
        matcher = rules.matcher
    else:
        matcher = Matcher.from_patterns(read_patterns("\n".join(patterns)))
    return not is_sent(ROOT / path, ROOT, matcher)


@pytest.mark.parametrize(
    "path",
    [
        ".git",
        ".git/config",
        ".venv/bin/python",
        ".nox/lint/bin/python",
        "pipeline/__pycache__/plan.cpython-311.pyc",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        "sandbox_pipeline.egg-info/PKG-INFO",
        ".pipeline/cache/base-image/node.tgz",
        "web/node_modules/react/index.js",
        ".env",
        "apps/x/.env",
    ],
)
def test_dockerignore_excludes(path: str) -> None:
    assert ignored(path)


@pytest.mark.parametrize(
    "path",
    [
        "pipeline/plan.py",
        "sandbox/Dockerfile",
        "sandbox/entry.sh",
        "sandbox/home-skeleton/.iterate/.env",
        "sandbox/home-skeleton/.claude/settings.json",
        "pyproject.toml",
        ".gitignore",
    ],
)
def test_dockerignore_keeps(path: str) -> None:
    assert not ignored(path)


def test_dockerignore_matcher_itself() -> None:
    assert ignored(".env", ["**/.env"]) and ignored("a/b/.env", ["**/.env"])
    assert ignored("x.egg-info", ["*.egg-info"]) and not ignored("a/x.egg-info", ["*.egg-info"])
    assert ignored("a/b/c.txt", ["a/b"]) and not ignored("a/bc", ["a/b"])
    assert not ignored("x/.env", ["**/.env", "!x/.env"])


# --- supervisor ------------------------------------------------------------------------------


def supervisor_config() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, inline_comment_prefixes=None)
    parser.read_string(SUPERVISOR_CONF.read_text())
    return parser


def program(name: str) -> configparser.SectionProxy:
    return supervisor_config()[f"program:{name}"]


def test_supervisor_runs_the_three_services_and_the_env_watcher() -> None:
    programs = {s.split(":", 1)[1] for s in supervisor_config().sections() if ":" in s}
    programs -= {"supervisor"}  # rpcinterface:supervisor
    assert programs == {*SERVICES, "env-watcher"}


@pytest.mark.parametrize(("name", "port"), SERVICES.items())
def test_each_service_listens_on_its_port_and_logs_under_var_log(name: str, port: int) -> None:
    section = program(name)
    argv = shlex.split(section["command"])
    assert str(port) in argv
    assert argv[argv.index(str(port)) - 1] in ("--port", "--listen-port")
    assert section["stdout_logfile"].startswith(f"/var/log/{name}/")
    assert section["autorestart"] == "true"
    assert section["stopasgroup"] == "true" and section["killasgroup"] == "true"
    assert f"/var/log/{name}" in DOCKERFILE.read_text(), "log directory not created"


def test_opencode_serve_flags() -> None:
    argv = shlex.split(program("opencode")["command"])
    start = argv.index("opencode")
    all_interfaces = "0.0.0.0"  # noqa: S104 - reachable from outside the container on purpose
    assert argv[start:] == ["opencode", "serve", "--port", "4096", "--hostname", all_interfaces]


def test_egress_proxy_is_mitmproxy_with_the_upstream_addon() -> None:
    argv = shlex.split(program("egress-proxy")["command"])
    assert "mitmdump" in argv
    assert argv[argv.index("--scripts") + 1] == "/usr/local/lib/sandbox/egress_upstream.py"


def test_restartable_services_read_the_env_file_through_with_env() -> None:
    for name in SERVICES:
        assert program(name)["command"].startswith("/usr/local/lib/sandbox/with-env ")


def test_supervisor_paths_are_installed_by_the_dockerfile() -> None:
    text = DOCKERFILE.read_text()
    assert "sandbox/supervisor/supervisord.conf /etc/supervisor/supervisord.conf" in text
    for name in ("with-env", "daemon.py", "env_watcher.py", "egress_upstream.py"):
        assert re.search(rf"sandbox/\S*/{re.escape(name)}", text), name
    conf = supervisor_config()
    assert conf["supervisorctl"]["serverurl"] == f"unix://{conf['unix_http_server']['file']}"
    assert conf["unix_http_server"]["chmod"] == "0700"


def test_entrypoint_contract() -> None:
    entry = (SANDBOX / "entry.sh").read_text()
    assert "touch /tmp/reached-entrypoint" in entry
    assert "--filter=':- .gitignore'" in entry
    for mount in ("/host/repo-checkout", "/host/gitdir", "/host/commondir"):
        assert mount in entry
    assert 'exec "$@"' in entry
    assert entry.rstrip().splitlines()[-1].startswith("exec supervisord --nodaemon")


# --- runtime scripts (pure parts) ------------------------------------------------------------


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_env_watcher_delays_restart_opencode_then_daemon_and_never_the_proxy() -> None:
    watcher = load_module("env_watcher", SANDBOX / "runtime" / "env_watcher.py")
    table = watcher.delays(watcher.DEFAULT_DELAYS)
    assert table == {"opencode": 0.5, "daemon": 5.0}
    assert watcher.delays(" a=1 , b=0.25,") == {"a": 1.0, "b": 0.25}


@pytest.fixture
def daemon_module() -> ModuleType:
    return load_module("sandbox_daemon", SANDBOX / "runtime" / "daemon.py")


def test_daemon_parses_supervisorctl_status(daemon_module: ModuleType) -> None:
    text = (
        "daemon                           RUNNING   pid 8, uptime 0:00:07\n"
        "egress-proxy                     RUNNING   pid 9, uptime 1 day, 2:03:04\n"
        "opencode                         FATAL     Exited too quickly (process log may have)\n"
        "env-watcher                      STOPPED   Nov 23 09:38 AM\n"
    )
    processes = {p["name"]: p for p in daemon_module.parse_status(text)}
    assert processes["daemon"]["pid"] == 8 and processes["daemon"]["uptimeSeconds"] == 7
    assert processes["egress-proxy"]["uptimeSeconds"] == 26 * 3600 + 3 * 60 + 4
    assert processes["opencode"]["state"] == "FATAL" and processes["opencode"]["running"] is False
    assert processes["env-watcher"]["pid"] is None


@pytest.fixture
def daemon_url(daemon_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("GIT_SHA", "a" * 40)
    server = daemon_module.ThreadingHTTPServer(("127.0.0.1", 0), daemon_module.Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_daemon_health(daemon_url: str) -> None:
    response = httpx.get(f"{daemon_url}/api/health", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["ok"] is True and body["gitSha"] == "a" * 40
    assert isinstance(body["uptimeSeconds"], float) and body["uptimeSeconds"] >= 0


def test_daemon_unknown_route_is_a_json_404(daemon_url: str) -> None:
    response = httpx.get(f"{daemon_url}/nope", timeout=5)
    assert response.status_code == 404
    assert response.json()["ok"] is False


@pytest.fixture
def egress(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    fake = types.ModuleType("mitmproxy")
    fake.ctx = types.SimpleNamespace()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mitmproxy", fake)
    return load_module("egress_upstream", SANDBOX / "runtime" / "egress_upstream.py")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", None),
        ("  ", None),
        ("http://proxy.internal:3128", ("http://proxy.internal:3128", None)),
        ("http://proxy.internal", ("http://proxy.internal:80", None)),
        ("https://proxy.internal", ("https://proxy.internal:443", None)),
        ("http://us%40r:p%3Ass@10.0.0.1:8080", ("http://10.0.0.1:8080", "us@r:p:ss")),
        ("http://[::1]:3128", ("http://[::1]:3128", None)),
    ],
)
def test_egress_upstream_from_env(
    egress: ModuleType, value: str, expected: tuple[str, str | None] | None
) -> None:
    assert egress.upstream_from_env({"ITERATE_EGRESS_PROXY_URL": value}) == expected


@pytest.mark.parametrize("value", ["ftp://x:21", "proxy:3128", "http://:3128", "http://h:99999"])
def test_egress_upstream_rejects_what_is_not_a_proxy_url(egress: ModuleType, value: str) -> None:
    with pytest.raises(egress.UpstreamError):
        egress.upstream_from_env({"ITERATE_EGRESS_PROXY_URL": value})


# --- home skeleton ---------------------------------------------------------------------------


def test_home_skeleton_configs_parse() -> None:
    skeleton = SANDBOX / "home-skeleton"
    for name in (".config/opencode/opencode.json", ".claude/settings.json"):
        json.loads((skeleton / name).read_text())
    for line in (skeleton / ".iterate" / ".env").read_text().splitlines():
        assert not line.strip() or line.startswith("#") or re.match(r"^[A-Z_][A-Z0-9_]*=", line)
