"""One runtime per process: the app, its in-process worker and its routes share the database, the secret box,
the mirror cache, the sites and the forge factory, each built once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskmaster.app import create_app
from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings
from taskmaster.db import migrate
from taskmaster.db.session import Database
from taskmaster.secrets import SecretBox
from taskmaster.workspaces.git_cache import MirrorCache
from tests.support import live_server


async def test_the_app_its_worker_and_its_routes_share_one_runtime(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    not_a_repository = tmp_path / "not-a-repository"
    not_a_repository.mkdir()
    setup = Database.from_settings(settings)
    try:
        await migrate.upgrade(setup)
        async with setup.transaction() as session:
            token = (await auth_service.create_token(session, spec=TokenSpec(name="a", role=Role.admin))).token
    finally:
        await setup.dispose()

    built: Counter[str] = Counter()
    for cls in (SecretBox, MirrorCache, Database):
        original = cls.from_settings.__func__  # type: ignore[attr-defined]

        def counted(klass: type, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            built[klass.__name__] += 1
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_settings", classmethod(counted))

    app = create_app(settings)
    with live_server(app) as url:
        services = app.state.services
        runtime = services.runtime
        worker = services.wake_worker.__self__
        engine = worker.pipelines.engine
        assert (services.db, worker.db, engine.db) == (runtime.db, runtime.db, runtime.db)
        assert services.box is runtime.box
        assert engine.mirror is runtime.mirror and engine.sites is runtime.sites
        assert engine.credentials is runtime.credentials
        assert worker.pipelines.updates.forges is runtime.forges is worker.webhooks.permissions.forges
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            for name in ("one", "two"):
                spec = {"name": name, "repository": str(not_a_repository), "webhook_secret": "a-secret-of-some-length"}
                assert http.post("/api/projects", json=spec).status_code == 201
            missing = http.post("/api/pipelines", json={"project": "one", "ref": "main"})
            # The directory is no git repository: the route reached the mirror cache and the credentials.
            assert missing.status_code == 503, missing.text
            assert f"git clone failed for {not_a_repository}" in missing.json()["detail"]
    assert built == {"SecretBox": 1, "MirrorCache": 1, "Database": 1}
