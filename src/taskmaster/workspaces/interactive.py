"""The sandbox of an interactive program (a coding agent on a PTY): the command line that runs it under bubblewrap
with only its workspace writable, a private home, no network but an egress proxy's socket, and the step limits.

Unlike `sandbox.run`, this only builds the argv: the caller spawns it on its own terminal (the agent's PTY stays
its controlling terminal, so bwrap gets no `--new-session`) and ends its process group as it ends any agent.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskmaster.core.errors import InvalidInput
from taskmaster.workspaces import sandbox as _sandbox
from taskmaster.workspaces.proxy import FORWARDER, SOCKET_NAME, Endpoint

WORKSPACE = _sandbox.WORKSPACE
SESSION_MARKER = "TASKMASTER_AGENT_SESSION"
"""Kept in the agent's environment: AgentAPI sessions find a session's processes by it (see `agents/agentapi/pty`)."""
HOME = "/home/agent"
"""The agent's private home inside the sandbox (a directory the caller made, writable, thrown away after)."""
PROXY_DIR = "/run/taskmaster-proxy"
DEFAULT_LIMITS = _sandbox.Limits(max_output_bytes=None, tmp_bytes=256 * 1024 * 1024)
"""No CPU-time limit per process (an agent runs as long as its job's timeout); processes, /tmp and no core files."""


@dataclass(frozen=True, slots=True)
class InteractiveSpec:
    """What the sandbox shows. `workspace` is mounted writable at /workspace (the working directory) and `home`
    writable at /home/agent; `read_only` paths are shown read-only at their own place (e.g. where an agent CLI is
    installed, outside the toolchain directories); `proxy_dir` (an `EgressProxy`'s directory) is the only way out:
    the forwarder exposes it as HTTP(S)_PROXY and tunnels each of `routes` (loopback endpoints) on its own port.
    Without `proxy_dir` the program has no network at all."""

    workspace: Path
    home: Path
    proxy_dir: Path | None = None
    routes: tuple[Endpoint, ...] = ()
    read_only: tuple[Path, ...] = ()
    limits: _sandbox.Limits = DEFAULT_LIMITS


def check() -> str:
    """The path of bwrap once the tools the sandbox needs are installed; else `SandboxUnavailable` naming them."""
    return _sandbox.check()


def wrap(spec: InteractiveSpec, argv: Sequence[str], keep_env: Collection[str]) -> list[str]:
    """The command line that runs `argv` in the sandbox (raises `SandboxUnavailable` when a tool is missing).

    Of the environment the spawned process gets, the program sees only the variables named in `keep_env` (plus the
    proxy variables): a server that spawns it with its own environment (an external AgentAPI server) leaks none.
    As root, bwrap runs as the sandbox user, so the workspace and home must belong to it (`hand_over`).
    """
    if any("," in name for name in keep_env):
        raise InvalidInput("environment variable names must not contain a comma")
    bwrap = check()
    prlimit = shutil.which("prlimit")
    if prlimit is None:  # check() found it
        raise AssertionError("prlimit vanished")
    limit_argv = [
        os.path.realpath(prlimit),
        *(f"--{name}={soft}:{hard}" for name, (_, soft, hard) in _sandbox._rlimits(spec.limits).items()),
        "--",
    ]
    drop: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None  # check() found it
        drop = [setpriv, f"--reuid={_sandbox.SANDBOX_UID}", f"--regid={_sandbox.SANDBOX_GID}", "--clear-groups"]
    python, python_view = _python()
    shown = [str(path.absolute()) for path in (*spec.read_only, *python_view) if path.exists()]
    writable = [str(spec.workspace.absolute()), str(spec.home.absolute())]
    proxy = [str(spec.proxy_dir.absolute())] if spec.proxy_dir is not None else []
    sources = [*writable, *proxy, *shown]
    stage: list[str] = []
    if drop and not all(_sandbox._sandbox_user_reaches(Path(source)) for source in sources):
        stage = _sandbox._stage_argv(sources)
        sources = [f"{_sandbox._STAGE}/{number}" for number in range(len(sources))]
    binds = ["--bind", sources[0], WORKSPACE, "--bind", sources[1], HOME]
    if proxy:
        binds += ["--ro-bind", sources[2], PROXY_DIR]
    for source, path in zip(sources[2 + len(proxy) :], shown, strict=True):
        binds += ["--ro-bind", source, path]
    socket = f"{PROXY_DIR}/{SOCKET_NAME}" if proxy else "-"
    routes = ",".join(f"{endpoint.port}={endpoint}" for endpoint in spec.routes)
    names = ",".join(sorted({*keep_env, "TERM", SESSION_MARKER}))
    inner = [*limit_argv, python, "-c", FORWARDER, socket, routes, names, "--", *argv]
    limits = spec.limits
    sizes = ["--size", str(limits.tmp_bytes)] if limits.tmp_bytes else []
    return [
        *stage,
        *drop,
        bwrap,
        "--unshare-user",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-net",
        "--unshare-cgroup-try",
        "--hostname",
        "taskmaster-agent",
        *_sandbox._host_view(()),
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        *sizes,
        "--tmpfs",
        _sandbox._PRIVATE_TMP,
        "--size",
        str(_sandbox._RUN_BYTES),
        "--tmpfs",
        "/run",
        "--dir",
        "/var",
        "--symlink",
        "../tmp",
        "/var/tmp",  # noqa: S108 - inside the sandbox: a link to its private /tmp
        *binds,
        "--remount-ro",
        "/",
        "--chdir",
        WORKSPACE,
        "--die-with-parent",
        "--",
        *inner,
    ]


def hand_over(*paths: Path) -> None:
    """As root, give `paths` (whole trees) to the sandbox user, which bwrap runs as; elsewhere nothing to do."""
    if os.geteuid() == 0:
        for path in paths:
            _sandbox._chown_tree(path)


def take_back(path: Path, uid: int, gid: int) -> None:
    """Give a tree the sandbox user changed back to its owner (git refuses to work in a tree owned by another)."""
    if os.geteuid() == 0:
        _sandbox._chown_tree(path, uid, gid)


def _python() -> tuple[str, list[Path]]:
    """An interpreter for the forwarder that the sandbox can see, and what must be shown for it to run."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate, []
    real = Path(os.path.realpath(sys.executable))
    return str(real), [Path(sys.base_prefix)]
