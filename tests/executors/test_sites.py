"""Pipelines on a remote instance: `SshSites` picks an instance from the pool, checks the commit out there with git
over SSH (the token only in git's environment), runs the steps there and removes the workspaces afterwards."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from taskmaster.config import load_settings
from taskmaster.config.loading import ConfigurationError
from taskmaster.executors.pool import SshPool
from taskmaster.pipelines.logs import read_logs
from taskmaster.pipelines.sites import SshSites, remote_sites
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.secrets import SecretBox
from tests.support.pipelines import Harness, load
from tests.support.sshd import Sshd


async def test_a_pipeline_runs_at_a_remote_instance_in_its_own_checkout_and_leaves_nothing_there(
    harness_factory: Any,
    sshd: Sshd,
    reachable_dir: Path,
) -> None:
    token = "ghp_" + uuid.uuid4().hex
    harness: Harness = await harness_factory(
        "steps:\n"
        "  checkout: {uses: checkout}\n"
        "  where: {run: 'echo pwd=$(pwd) uid=$(id -u); cat README.md; grep -c extraHeader .git/config || true',"
        " needs: [checkout]}\n"
        "  alone: {run: 'echo fresh=$(pwd)', workspace: fresh, needs: [checkout]}\n"
    )
    async with harness.db.transaction() as session:
        from taskmaster.db.models import Project

        project = await session.get(Project, harness.project.id)
        assert project is not None
        project.forge_token = SecretBox.from_settings(harness.settings).encrypt(token)
    remote_root = reachable_dir / "remote-instance"
    remote_root.mkdir()
    sites = SshSites(SshPool([sshd.instance(workspace_root=str(remote_root))]))
    try:
        created = await harness.create()
        status = await asyncio.wait_for(harness.engine(sites=sites).run(created.id), 60)
    finally:
        await sites.aclose()

    assert status is PipelineStatus.SUCCESS
    _, steps, _ = await load(harness.db, created.id)
    assert {name: step.status for name, step in steps.items()} == dict.fromkeys(
        ("checkout", "where", "alone"), "success"
    )
    async with harness.db.session() as session:
        where = "".join(c.content for c in await read_logs(session, created.id, step="where"))
        alone = "".join(c.content for c in await read_logs(session, created.id, step="alone"))
    shared = remote_root / str(created.id) / "shared"
    # Ran over SSH (as the instance's user, not the sandbox's), in the instance's checkout of the commit, whose git
    # config holds no token.
    assert where == f"pwd={shared} uid=0\nhello\n0\n"
    assert alone == f"fresh={remote_root / str(created.id) / 'alone-1'}\n"
    assert list(remote_root.iterdir()) == []  # cleaned up on the instance
    assert not (harness.settings.workspace_root / str(created.id)).exists()  # and nothing was made locally


async def test_a_checkout_the_instance_cannot_make_fails_the_step_as_infra_naming_the_instance(
    harness_factory: Any,
    sshd: Sshd,
    reachable_dir: Path,
) -> None:
    harness: Harness = await harness_factory("steps:\n  only: {run: 'true', retries: 0}\n")
    created = await harness.create()
    harness.repo.rename(harness.repo.with_name("moved-away"))  # planned already; the instance cannot fetch it
    remote_root = reachable_dir / "remote-instance"
    remote_root.mkdir()
    sites = SshSites(SshPool([sshd.instance(name="wsl-1", workspace_root=str(remote_root))]))
    try:
        status = await asyncio.wait_for(harness.engine(sites=sites).run(created.id), 60)
    finally:
        await sites.aclose()

    assert status is PipelineStatus.FAILED
    pipeline, steps, attempts = await load(harness.db, created.id)
    assert (steps["only"].failure_reason, pipeline.failure_reason) == ("infra", "infra")
    assert steps["only"].error_message is not None
    assert "could not check out" in steps["only"].error_message and "'wsl-1'" in steps["only"].error_message
    assert [a.failure_reason for a in attempts["only"]] == ["infra"]


def test_ssh_instances_come_from_taskmaster_toml_and_kind_ssh_needs_one(tmp_path: Path) -> None:
    config = tmp_path / "taskmaster.toml"
    config.write_text(
        '[executor]\nkind = "ssh"\n'
        '[[executor.ssh]]\nname = "wsl-1"\nhost = "10.0.0.5"\nuser = "ci"\nkey_file = "/keys/ci"\n'
        'workspace_root = "/home/ci/taskmaster"\nmax_concurrent_steps = 2\n'
    )
    settings = load_settings({}, config_file=config)
    sites = remote_sites(settings)
    assert isinstance(sites, SshSites)
    [executor] = sites.pool.executors
    instance = executor.instance
    assert (instance.name, instance.host, instance.port, instance.username) == ("wsl-1", "10.0.0.5", 22, "ci")
    assert (instance.workspace_root, instance.max_concurrent_steps, instance.known_hosts) == (
        "/home/ci/taskmaster",
        2,
        None,
    )
    assert remote_sites(load_settings({}, config_file=None)) is None

    config.write_text('[executor]\nkind = "ssh"\n')
    with pytest.raises(ConfigurationError, match=r"no \[\[executor.ssh\]\] instance"):
        load_settings({}, config_file=config)
