"""The API refuses before it reads: each test is one finding of the hardening probe (issue 16), on both databases.

Raw sockets where the wire matters (what the server reads, when it answers, whether it closes); httpx elsewhere.
"""

from __future__ import annotations

import select
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import insert

from taskmaster.app import create_app
from taskmaster.auth import service as auth_service
from taskmaster.auth.schemas import Role, TokenSpec
from taskmaster.config import Settings
from taskmaster.core.logging import configure_logging
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from tests.api.conftest import Api
from tests.support import LogCapture, live_server, make_pipeline_repo

MiB = 1024 * 1024


@pytest.fixture
def guarded(settings: Settings, migrated: dict[Role, str]) -> Iterator[Api]:
    """A live server with a small body limit (64 KiB) and a short body deadline (1 s)."""
    server = settings.server.model_copy(update={"max_body_bytes": 64 * 1024, "body_timeout_seconds": 1.0})
    tight = settings.model_copy(update={"server": server})
    with live_server(create_app(tight, run_worker=False)) as url:
        yield Api(url=url, settings=tight, tokens=migrated)


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _head(method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def _answer(sock: socket.socket) -> tuple[int, bytes, bool]:
    """Status, raw response, and whether the server then closed the connection."""
    data = b""
    closed = False
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            closed = True
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(rest) < length and not closed:
        chunk = sock.recv(65536)
        closed = not chunk
        rest += chunk
    if not closed:
        sock.settimeout(5)
        try:
            closed = sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            closed = True
    return int(head.split(b" ", 2)[1]), head + b"\r\n\r\n" + rest, closed


def _bearer(api: Api, role: Role = Role.admin) -> str:
    return f"Authorization: Bearer {api.tokens[role]}"


def _project(api: Api, name: str, repository: str = "/srv/repos/app") -> dict[str, str]:
    with api.client(Role.admin) as client:
        created = client.post("/api/projects", json={"name": name, "repository": repository})
    assert created.status_code == 201, created.text
    project: dict[str, str] = created.json()
    return project


# --- bodies --------------------------------------------------------------------------------------------------


def test_unauthenticated_200_mb_body_is_refused_before_it_is_read(api: Api) -> None:
    for credential in ((), ("Authorization: Bearer tm_not-a-token",)):
        with _connect(api.url) as sock:
            started = time.monotonic()
            sock.sendall(
                _head(
                    "POST", "/api/tokens", "Content-Type: application/json", f"Content-Length: {200 * MiB}", *credential
                )
            )
            sock.sendall(b'{"name": "' + b"x" * 65536)
            status, raw, closed = _answer(sock)
            assert status == 401, raw
            assert b"application/problem+json" in raw
            assert closed, "the server closes instead of reading the rest"
            assert time.monotonic() - started < 5


def test_unauthenticated_chunked_body_is_refused_before_it_is_read(api: Api) -> None:
    with _connect(api.url) as sock:
        sock.sendall(_head("POST", "/api/tokens", "Content-Type: application/json", "Transfer-Encoding: chunked"))
        sock.sendall(b"10000\r\n" + b"x" * 65536 + b"\r\n")
        status, raw, closed = _answer(sock)
    assert status == 401, raw
    assert closed


def test_invalid_json_without_credentials_is_401_not_422(api: Api) -> None:
    with httpx.Client(base_url=api.url) as client:
        answer = client.post("/api/tokens", content=b"{not json", headers={"content-type": "application/json"})
        declared = client.post("/api/projects/p/tasks", content=b"[]", headers={"content-type": "application/json"})
    assert answer.status_code == 401, answer.text
    assert answer.headers["www-authenticate"] == "Bearer"
    assert declared.status_code == 401


def test_body_over_the_limit_is_413_declared_or_chunked(guarded: Api) -> None:
    with _connect(guarded.url) as sock:
        sock.sendall(
            _head("POST", "/api/tokens", _bearer(guarded), "Content-Type: application/json", f"Content-Length: {MiB}")
        )
        status, raw, closed = _answer(sock)
        assert status == 413, raw
        assert closed
    with _connect(guarded.url) as sock:
        sock.sendall(_head("POST", "/api/tokens", _bearer(guarded), "Transfer-Encoding: chunked"))
        for _ in range(3):
            sock.sendall(b"8000\r\n" + b" " * 0x8000 + b"\r\n")
        status, raw, closed = _answer(sock)
        assert status == 413, raw
        assert b"larger than 65536 bytes" in raw
        assert closed
    # Webhook receivers sit behind the same limit.
    with httpx.Client(base_url=guarded.url) as client:
        delivery = client.post(
            "/webhooks/github", content=b" " * (65 * 1024), headers={"content-type": "application/json"}
        )
    assert delivery.status_code == 413


def test_a_body_within_the_limit_still_reaches_the_route(guarded: Api) -> None:
    with guarded.client(Role.admin) as client:
        created = client.post("/api/tokens", json={"name": "n" * 100, "role": "viewer"})
        chunked = client.post(
            "/api/tokens",
            content=iter([b'{"name": "chunked",', b' "role": "viewer"}']),
            headers={"content-type": "application/json"},
        )
    assert created.status_code == 201, created.text
    assert chunked.status_code == 201, chunked.text
    assert chunked.json()["name"] == "chunked"


def test_slow_bodies_are_cut(guarded: Api) -> None:
    with _connect(guarded.url) as sock:
        started = time.monotonic()
        sock.sendall(
            _head("POST", "/api/tokens", _bearer(guarded), "Content-Type: application/json", "Content-Length: 100")
        )
        # 3 bytes a second until the server answers: its 1 s deadline comes long before the 100 bytes are in.
        for _ in range(30):
            if select.select([sock], [], [], 0.33)[0]:
                break
            sock.sendall(b"{  ")
        status, raw, closed = _answer(sock)
        elapsed = time.monotonic() - started
    assert status == 408, raw
    assert b"did not arrive within 1 s" in raw
    assert closed
    assert elapsed < 5


def test_client_gone_mid_body_logs_no_traceback(guarded: Api) -> None:
    capture = LogCapture()
    configure_logging("info", "json", stream=capture)
    try:
        with _connect(guarded.url) as sock:
            sock.sendall(
                _head("POST", "/api/tokens", _bearer(guarded), "Content-Type: application/json", "Content-Length: 5000")
            )
            sock.sendall(b'{"name": "half')
            time.sleep(0.2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("went away" in r["event"] for r in capture.records()):
            time.sleep(0.05)
    finally:
        configure_logging("warning", "auto", stream=LogCapture())
    records = capture.records()
    gone = [r for r in records if "went away" in r["event"]]
    assert len(gone) == 1
    assert gone[0]["level"] == "info" and gone[0]["path"] == "/api/tokens"
    assert not [r for r in records if r["level"] in ("error", "critical") or "exception" in r]


# --- JSON ----------------------------------------------------------------------------------------------------


def test_deeply_nested_json_is_refused_as_422(api: Api) -> None:
    with api.client(Role.admin) as client:
        for depth in (65, 100_000):
            nested = (
                b'{"name": "deep", "repository": "/srv/x", "settings": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
            )
            answer = client.post("/api/projects", content=nested, headers={"content-type": "application/json"})
            assert answer.status_code == 422, answer.text
            assert "nested more than 64 levels" in answer.json()["detail"]
        # Shallower JSON passes the guard and reaches the route, which judges it (here: not a known setting).
        shallow = b'{"name": "shallow", "repository": "/srv/x", "settings": {"a": ' + b"[" * 60 + b"]" * 60 + b"}}"
        judged = client.post("/api/projects", content=shallow, headers={"content-type": "application/json"})
    assert judged.status_code == 422, judged.text
    assert "unknown project setting 'a'" in judged.json()["detail"]


# --- NUL and numbers (500s on PostgreSQL before) ---------------------------------------------------------------


def test_nul_in_query_body_and_path_is_422(api: Api) -> None:
    project = _project(api, "app")
    with api.client(Role.admin) as client:
        answers = {
            "query": client.get("/api/pipelines", params={"project": "a\x00b"}),
            "task title": client.post(f"/api/projects/{project['id']}/tasks", json={"title": "a\x00b"}),
            "token name": client.post("/api/tokens", json={"name": "a\x00b", "role": "viewer"}),
            "settings key": client.post(
                "/api/projects", json={"name": "p2", "repository": "/srv/x", "settings": {"k\x00": 1}}
            ),
            "settings value": client.post(
                "/api/projects", json={"name": "p3", "repository": "/srv/x", "settings": {"k": ["ok", "a\x00"]}}
            ),
            "path": client.get("/api/projects/a%00b"),
            "prd": client.post(
                f"/api/projects/{project['id']}/prd", files={"file": ("prd.md", b"# PRD\n\n- a\x00b\n")}
            ),
        }
        listed = client.get("/api/projects").json()
    for what, answer in answers.items():
        assert answer.status_code == 422, (what, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert answers["query"].json()["errors"] == [{"location": "query.project", "message": "contains a NUL character"}]
    assert answers["settings value"].json()["errors"][0]["location"] == "body.settings.k.1"
    assert [p["name"] for p in listed] == ["app"]


@pytest.mark.parametrize("path", ["/api/pipelines", "/api/projects/app/tasks", "/api/webhooks/deliveries"])
def test_out_of_range_offset_is_422_on_every_paged_route(api: Api, path: str) -> None:
    _project(api, "app")
    with api.client(Role.admin) as client:
        huge = client.get(path, params={"offset": "9223372036854775808"})
        largest = client.get(path, params={"offset": str(2**31 - 1)})
    assert huge.status_code == 422, huge.text
    assert huge.json()["errors"][0]["location"] == "query.offset"
    assert largest.status_code == 200, largest.text
    assert largest.json()["items"] == []


def test_out_of_range_task_numbers_are_422(api: Api) -> None:
    project = _project(api, "app")
    base = f"/api/projects/{project['id']}/tasks"
    with api.client(Role.admin) as client:
        assert client.post(base, json={"title": "one"}).status_code == 201
        answers = {ref: client.get(f"{base}/{ref}") for ref in ("99999999999999999999", "2147483648", "%C2%B2", "0")}
        depends = client.post(f"{base}/1/dependencies", json={"depends_on": "99999999999999999999"})
        found = client.get(f"{base}/1")
    for ref, answer in answers.items():
        assert answer.status_code == 422, (ref, answer.text)
    assert "out of range" in answers["2147483648"].json()["detail"]
    assert depends.status_code == 422, depends.text
    assert found.status_code == 200


def test_log_resume_token_with_a_superscript_digit_is_422(api: Api, tmp_path: Path) -> None:
    make_pipeline_repo(tmp_path / "repo", 'steps:\n  build: {run: "true"}\n')
    _project(api, "app", repository=str(tmp_path / "repo"))
    with api.client(Role.admin) as client:
        pipeline = client.post("/api/pipelines", json={"project": "app", "ref": "main"})
        assert pipeline.status_code == 201, pipeline.text
        logs = f"/api/pipelines/{pipeline.json()['id']}/logs"
        answers = {token: client.get(f"{logs}?offset={token}") for token in ("%C2%B2", "build:%C2%B2", "9" * 30)}
        fine = client.get(f"{logs}?offset=build:0")
    for token, answer in answers.items():
        assert answer.status_code == 422, (token, answer.text)
        assert "not a log resume token" in answer.json()["detail"]
    assert fine.status_code == 200


def test_token_with_a_naive_expiry_or_an_overlong_name_is_422(api: Api) -> None:
    with api.client(Role.admin) as client:
        naive = client.post("/api/tokens", json={"name": "n", "role": "viewer", "expires_at": "2030-01-01T00:00:00"})
        long_name = client.post("/api/tokens", json={"name": "x" * 201, "role": "viewer"})
        aware = client.post("/api/tokens", json={"name": "n", "role": "viewer", "expires_at": "2030-01-01T00:00:00Z"})
    assert naive.status_code == 422, naive.text
    assert naive.json()["errors"][0]["location"] == "body.expires_at"
    assert long_name.status_code == 422, long_name.text
    assert aware.status_code == 201, aware.text


# --- identifiers ---------------------------------------------------------------------------------------------


def test_project_named_like_a_uuid_is_refused(api: Api) -> None:
    with api.client(Role.admin) as client:
        for name in (str(uuid.uuid4()), uuid.uuid4().hex):
            answer = client.post("/api/projects", json={"name": name, "repository": "/srv/x"})
            assert answer.status_code == 422, answer.text
            assert "must not read as a project id" in answer.text


async def test_uuid_named_project_gives_no_reach_into_the_project_it_names(api: Api) -> None:
    victim = _project(api, "victim")
    with api.client(Role.admin) as client:
        assert client.post(f"/api/projects/{victim['id']}/tasks", json={"title": "secret plan"}).status_code == 201
    # A row stored before names were checked: named with the victim's id.
    db = Database.from_settings(api.settings)
    try:
        async with db.transaction() as session:
            impostor = uuid.uuid4()
            await session.execute(
                insert(Project).values(id=impostor, name=victim["id"], repository="/srv/x", forge="local")
            )
            limited = await auth_service.create_token(
                session, spec=TokenSpec(name="impostor", role=Role.admin, project_id=impostor)
            )
    finally:
        await db.dispose()
    headers = {"Authorization": f"Bearer {limited.token}"}
    with httpx.Client(base_url=api.url, headers=headers) as client:
        tasks = client.get(f"/api/projects/{victim['id']}/tasks")
        rotated = client.put(f"/api/projects/{victim['id']}/webhook-secret", json={"secret": "s3cret-rotated"})
        listed = client.get("/api/pipelines", params={"project": victim["id"]})
    assert tasks.status_code == 403, tasks.text
    assert rotated.status_code == 403, rotated.text
    assert listed.status_code == 403, listed.text


# --- headers -------------------------------------------------------------------------------------------------


def test_overlong_headers_are_400_too_many_header_bytes_413_and_a_long_url_414(api: Api) -> None:
    with httpx.Client(base_url=api.url) as client:
        long_token = client.get("/api/projects", headers={"Authorization": "Bearer tm_" + "a" * 9000})
        many = client.get("/api/projects", headers={f"x-extra-{i}": "v" * 4000 for i in range(10)})
        fine = client.get("/health", headers={"x-extra": "v" * 4000})
    assert long_token.status_code == 400, long_token.text
    assert "header authorization is longer than 8192 bytes" in long_token.json()["detail"]
    assert many.status_code == 413, many.text
    assert fine.status_code == 200
    with api.client(Role.admin) as client:
        long_query = client.get("/api/pipelines", params={"project": "p" * 9000})
    assert long_query.status_code == 414, long_query.text


# --- repositories --------------------------------------------------------------------------------------------


def test_pipeline_for_a_repository_that_does_not_exist_is_404_naming_it(api: Api, tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    _project(api, "app", repository=str(missing))
    with api.client(Role.admin) as client:
        answer = client.post("/api/pipelines", json={"project": "app", "ref": "main"})
    assert answer.status_code == 404, answer.text
    assert str(missing) in answer.json()["detail"]


def test_relative_repository_path_is_refused_at_create(api: Api) -> None:
    with api.client(Role.admin) as client:
        for repository in ("repo", "./repo", "../repo", "~/repo"):
            answer = client.post("/api/projects", json={"name": "rel", "repository": repository})
            assert answer.status_code == 422, (repository, answer.text)
            assert "repository: must be a URL or an absolute path" in answer.json()["detail"]
        url = client.post("/api/projects", json={"name": "url", "repository": "git@github.com:o/r.git"})
        # A forge project may be named owner/name (webhooks route by it), but a pipeline cannot clone that.
        named = client.post("/api/projects", json={"name": "named", "repository": "o/r", "forge": "github"})
        run = client.post("/api/pipelines", json={"project": "named", "ref": "main"})
    assert url.status_code == 201, url.text
    assert named.status_code == 201, named.text
    assert run.status_code == 422, run.text
    assert "'o/r' is neither a URL nor an absolute path" in run.json()["detail"]
