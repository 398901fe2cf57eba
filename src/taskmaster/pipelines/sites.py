"""Where a pipeline runs: the executor for its steps and the directory of its workspaces, on one machine.

A pipeline's steps all run at one site, because steps with `workspace: shared` share a checkout on disk:
- `LocalSites`: this machine. Checkouts come from the mirror cache (`workspaces.git_cache`), steps run in the
  bubblewrap sandbox (`LocalExecutor`) unless another executor that sees the same disk is given.
- `SshSites`: remote Linux instances (e.g. WSL2) from an `SshPool`; each pipeline goes to the healthy instance with
  the most free slots. Checkouts are made there by git over the same SSH connection (the instance fetches the
  repository itself; a token travels only in that git process's environment), under the instance's workspace root.

`remote_sites` builds the SSH sites when the configuration asks for them (`executor.kind = "ssh"`).
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import stat
import uuid
from pathlib import Path
from typing import Protocol

import structlog

from taskmaster.config import Settings
from taskmaster.config.settings import StepLimitSettings
from taskmaster.executors.base import Executor, StepOutcome, StepSpec
from taskmaster.executors.local import LocalExecutor
from taskmaster.executors.pool import SshPool
from taskmaster.executors.ssh import SshExecutor, SshInstance
from taskmaster.workspaces.cleanup import remove_tree
from taskmaster.workspaces.errors import WorkspaceError
from taskmaster.workspaces.git_cache import MirrorCache, token_env
from taskmaster.workspaces.sandbox import Limits

log = structlog.stdlib.get_logger("taskmaster.pipelines.sites")

CHECKOUT_TIMEOUT_SECONDS = 600.0
"""How long a remote checkout (a fetch of the commit) may take before it fails as `infra`."""


class Site(Protocol):
    """One pipeline's place: `executor` runs its steps; `path(name)` is one of its workspaces there."""

    @property
    def executor(self) -> Executor: ...

    def path(self, name: str) -> str:
        """The absolute path (on the site's machine) of the pipeline's workspace `name`."""
        ...

    async def checkout(self, name: str, repository: str, sha: str, *, token: str | None) -> None:
        """Make workspace `name` a fresh working tree of `sha`; raises `WorkspaceError` (an infra failure)."""
        ...

    async def clean(self) -> None:
        """Remove every workspace of the pipeline (best effort: failures are logged)."""
        ...


class Sites(Protocol):
    """Hands out a site per pipeline."""

    async def site_for(self, pipeline_id: uuid.UUID, repository: str) -> Site: ...

    async def aclose(self) -> None: ...


class LocalSites:
    """This machine: workspaces under `root/<pipeline id>`, checkouts from `mirror`, steps through `executor`."""

    def __init__(self, mirror: MirrorCache, root: Path, executor: Executor) -> None:
        self.mirror = mirror
        self.root = root.absolute()
        self.executor = executor

    @classmethod
    def of(cls, settings: Settings, mirror: MirrorCache, executor: Executor | None = None) -> LocalSites:
        """Workspaces under the configured root; steps through `executor`, by default the sandbox as configured
        (`executor.sandbox`, `executor.limits`), with other pipelines' workspaces, the mirrors and the state
        directory hidden from the step should they lie inside the host directories it shows."""
        paths = (settings.workspace_root, mirror.root, settings.state_dir)
        if executor is None:
            executor = LocalExecutor(
                limits=step_limits(settings.executor.limits),
                maximum=step_limits(settings.executor.max_limits),
                hidden=lambda: _hideable(paths),
                isolation="bwrap" if settings.executor.sandbox == "required" else "none",
            )
        return cls(mirror, settings.workspace_root, executor)

    async def site_for(self, pipeline_id: uuid.UUID, repository: str) -> LocalSite:
        executor = self.executor
        if isinstance(executor, LocalExecutor):
            # A checkout reads its objects from the mirror (alternates), which the sandbox hides: show them,
            # read-only, so that git works in the step (log, diff, describe, blame).
            executor = executor.showing(self.mirror.mirror_path(repository) / "objects")
        return LocalSite(self.mirror, self.root / str(pipeline_id), executor)

    async def aclose(self) -> None:
        await self.executor.aclose()


class LocalSite:
    def __init__(self, mirror: MirrorCache, directory: Path, executor: Executor) -> None:
        self.mirror = mirror
        self.directory = directory
        self._executor = executor

    @property
    def executor(self) -> Executor:
        return self._executor

    def path(self, name: str) -> str:
        return str(self.directory / name)

    async def checkout(self, name: str, repository: str, sha: str, *, token: str | None) -> None:
        await asyncio.to_thread(_make_reachable_dir, self.directory)
        dest = self.directory / name
        if await asyncio.to_thread(dest.exists):
            await self.mirror.remove(dest)
        await self.mirror.checkout(repository, sha, dest, token=token)

    async def clean(self) -> None:
        if not await asyncio.to_thread(self.directory.is_dir):
            return
        try:
            for child in await asyncio.to_thread(lambda: list(self.directory.iterdir())):
                await self.mirror.remove(child)
            await remove_tree(self.directory)
        except (OSError, WorkspaceError):
            log.warning("workspace clean-up failed", path=str(self.directory), exc_info=True)


class SshSites:
    """Remote instances: each pipeline goes to the pool's least busy healthy instance."""

    def __init__(self, pool: SshPool) -> None:
        self.pool = pool

    async def site_for(self, pipeline_id: uuid.UUID, repository: str) -> SshSite:
        executor = await self.pool.pick()  # NoHealthyInstance (503) when none can take it
        return SshSite(executor, posixpath.join(executor.instance.workspace_root, str(pipeline_id)))

    async def aclose(self) -> None:
        await self.pool.aclose()


class SshSite:
    def __init__(self, executor: SshExecutor, directory: str) -> None:
        self._executor = executor
        self.directory = directory

    @property
    def executor(self) -> Executor:
        return self._executor

    def path(self, name: str) -> str:
        return posixpath.join(self.directory, name)

    async def checkout(self, name: str, repository: str, sha: str, *, token: str | None) -> None:
        dest = self.path(name)
        # The commit itself first (GitHub and GitLab serve any reachable sha); a server that does not falls back to
        # fetching its branches and tags. Nothing of the token is written: it is only in git's environment.
        script = (
            'set -e; rm -rf -- "$TM_DEST"; mkdir -p -- "$TM_DEST"; cd -- "$TM_DEST"; git init -q; '
            'git fetch -q --depth 1 -- "$TM_REPO" "$TM_SHA" 2>/dev/null '
            '|| git fetch -q -- "$TM_REPO" "+refs/heads/*:refs/remotes/origin/*" "+refs/tags/*:refs/tags/*"; '
            'git checkout -q --detach "$TM_SHA"'
        )
        env = {"TM_DEST": dest, "TM_REPO": repository, "TM_SHA": sha, **token_env(repository, token)}
        outcome, output = await self._run(script, env, limit=CHECKOUT_TIMEOUT_SECONDS)
        if not outcome.ok:
            why = outcome.reason or f"exit code {outcome.exit_code}"
            detail = output.strip().splitlines()[-1:] or [""]
            raise WorkspaceError(
                f"could not check out {sha[:12]} on {self._executor.instance.label}: {why} {detail[0]}".rstrip()
            )

    async def clean(self) -> None:
        outcome, _ = await self._run('rm -rf -- "$TM_DIR"', {"TM_DIR": self.directory}, limit=120.0)
        if not outcome.ok:
            log.warning("remote workspace clean-up failed", path=self.directory, reason=outcome.reason)

    async def _run(self, script: str, env: dict[str, str], *, limit: float) -> tuple[StepOutcome, str]:
        """Run a housekeeping command on the instance (from its workspace root); the outcome and the first 4 KiB
        of its output. `limit`: seconds before it is stopped (a timeout outcome)."""
        output = bytearray()

        async def keep(data: bytes) -> None:
            output.extend(data[: 4096 - len(output)])

        spec = StepSpec(
            command=script, workdir=self._executor.instance.workspace_root, env=env, timeout=limit, network=True
        )
        outcome = await self._executor.run(spec, on_output=keep)
        return outcome, output.decode(errors="replace")


def remote_sites(settings: Settings) -> SshSites | None:
    """The configured SSH instances (`executor.kind = "ssh"`) as sites; None when steps run on this machine."""
    chosen = settings.executor
    if chosen.kind == "local":
        return None
    instances = [
        SshInstance(
            name=item.name,
            host=item.host,
            port=item.port,
            username=item.user,
            client_keys=[str(item.key_file)],
            known_hosts=str(item.known_hosts) if item.known_hosts else None,
            workspace_root=item.workspace_root,
            max_concurrent_steps=item.max_concurrent_steps,
        )
        for item in chosen.ssh
    ]
    return SshSites(SshPool(instances))


def step_limits(chosen: StepLimitSettings) -> Limits:
    """Sandbox limits from settings (`executor.limits`, the defaults, or `executor.max_limits`, the maxima)."""
    return Limits(
        cpu_seconds=chosen.cpu_seconds,
        memory_bytes=chosen.memory_bytes,
        max_processes=chosen.max_processes,
        disk_bytes=chosen.disk_bytes,
        tmp_bytes=chosen.tmp_bytes,
        cpus=chosen.cpus,
    )


def _make_reachable_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)  # the sandbox user must pass through it to its workspace


def _hideable(paths: tuple[Path, ...]) -> tuple[Path, ...]:
    """Those of `paths` the sandbox user could reach: bubblewrap runs as that user and cannot mount over a path it
    cannot reach (nor could the step read it). Asked at each step: the paths may appear meanwhile."""
    return tuple(path.absolute() for path in paths if _reachable(path.absolute()))


def _reachable(path: Path) -> bool:
    """Whether the sandbox user could reach `path` (always, when we are not root: then bwrap runs as us)."""
    if not path.exists():
        return False
    if os.geteuid() != 0:
        return True
    for part in [*reversed(path.parents), path]:
        mode = part.stat().st_mode
        if part != path and not mode & stat.S_IXOTH:
            return False
    return True
