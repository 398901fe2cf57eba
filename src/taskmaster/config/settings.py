"""The settings tree. Environment variable names live beside each field in `ENV_VARS` (loading.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    """Where state lives. No URL and no host means the embedded SQLite file under the state directory."""

    url: str | None = None
    host: str | None = None
    port: int = Field(5432, ge=1, le=65535)
    name: str = "taskmaster"
    user: str = "postgres"
    password: SecretStr | None = None
    sslmode: SslMode | None = None
    pool_size: int = Field(10, ge=1, le=1000)
    max_overflow: int = Field(10, ge=0, le=1000)
    pool_timeout: float = Field(30.0, gt=0)
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in {"postgresql", "postgres", "sqlite"}:
            raise ValueError("must start with postgresql:// or sqlite:///")
        return value


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    max_body_bytes: int = Field(25 * 1024 * 1024, ge=1024)
    body_timeout_seconds: float = Field(15.0, gt=0)
    """A request's whole body must arrive within this time (a slow client holds a connection and a buffer)."""


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


class WorkerSettings(_Section):
    """The worker: `id` names it in `workers` and on what it leases; stable across restarts, so a restarted worker
    resumes its own pipelines and runs at once (unset: the host name)."""

    id: str | None = None
    heartbeat_seconds: float = Field(5.0, gt=0, le=300)
    stale_after_seconds: float = Field(30.0, gt=0)
    concurrency: int = Field(4, ge=1, le=256)
    """Pipelines one worker process runs at once."""
    max_steps: int = Field(16, ge=1, le=1024)
    """Steps one worker process runs at once, over all its pipelines. Not derived from the CPUs: steps mostly
    wait (on tests, networks, sleeps), and a cap of twice 2 CPUs held a 16-way fan-out of sleeps to half speed."""
    project_concurrency: int = Field(8, ge=1, le=1024)
    """Pipelines of one project running at once, across every worker sharing the database."""
    pipeline_max_seconds: float = Field(3600.0, gt=0)
    codegen_concurrency: int = Field(2, ge=1, le=256)
    """Code-generation runs (coding agents) one worker process runs at once."""
    """A pipeline `running` longer than this is stuck: the reaper ends it as `timed_out`, whatever its plan says."""


class AuthSettings(_Section):
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    secret_keys: SecretStr | None = None
    """Fernet keys, comma separated, newest first. Unset: a key file is made under the state directory."""
    token_cache_seconds: float = Field(10.0, ge=0, le=3600)
    """How long a server remembers an authenticated API token; a revocation made elsewhere takes this long."""


class LlmSettings(_Section):
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None


class ModelPrice(_Section):
    """US dollars per million tokens of one model."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


def _default_prices() -> dict[str, ModelPrice]:
    # List prices of common models, as their services publish them; `costs.prices` in taskmaster.toml replaces
    # or adds entries. Keys are `provider:model`, or a model name alone for any provider; ollama costs nothing.
    table = {
        "anthropic:claude-opus-4": (15.0, 75.0),
        "anthropic:claude-sonnet-4": (3.0, 15.0),
        "anthropic:claude-3-5-haiku": (0.8, 4.0),
        "openai:gpt-4o": (2.5, 10.0),
        "openai:gpt-4o-mini": (0.15, 0.6),
        "openai:gpt-4.1": (2.0, 8.0),
        "openai:gpt-4.1-mini": (0.4, 1.6),
    }
    return {key: ModelPrice(input_per_mtok=i, output_per_mtok=o) for key, (i, o) in table.items()}


class CostSettings(_Section):
    """What model calls cost: a price per model, matched by `provider:model` then by the longest listed prefix of
    the model name (dated model versions share their family's price)."""

    prices: dict[str, ModelPrice] = Field(default_factory=_default_prices)


class CodegenSettings(_Section):
    api_key: SecretStr | None = None
    api_url: str = "https://api.codegen.com"
    org_id: str | None = None
    author_name: str = Field("Taskmaster", min_length=1, max_length=200)
    """The author (and committer) of the commits code generation makes."""
    author_email: str = Field("taskmaster@localhost", min_length=3, max_length=200)


class ClientSettings(_Section):
    """The command line as a client of a running Taskmaster: with `url`, the agent-facing task commands (`task next`,
    `task claim`) ask its REST API instead of opening the database (faster to start, and no database credentials
    needed on the agent's machine)."""

    url: str | None = None
    token: SecretStr | None = None
    """An API token; unset: the local admin token file in the state directory, when there is one."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")


class AgentApiSettings(_Section):
    url: str = "http://localhost:3284"
    token: str | None = None
    """AGENTAPI_TOKEN: the bearer token the client sends. Unset: the one `agentapi serve` saved in the state dir."""
    sessions: Literal["in-process", "external"] = "in-process"
    """Where coding agents' sessions run: `in-process` (this process's own AgentAPI sessions) or `external` (the
    multi-session server at AGENTAPI_URL, on this machine: it must see the checkouts)."""


class WorkspaceSettings(_Section):
    root: Path | None = None
    """WSL2_INSTANCE_PATH: where checkouts are made. Unset: `<state dir>/workspaces`."""
    mirror_root: Path | None = None
    """Where the git mirrors of repositories are kept. Unset: `<state dir>/mirrors`."""
    mirror_max_bytes: int = Field(10 * 1024**3, ge=1024**2)
    """Least recently used mirrors are evicted above this total size."""


class SshInstanceSettings(_Section):
    """A remote Linux instance (e.g. WSL2) that runs pipelines over SSH: `[[executor.ssh]]` in taskmaster.toml."""

    name: str = Field(min_length=1)
    host: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535)
    user: str = Field(min_length=1)
    key_file: Path
    """The private key to log in with (no agent, no password)."""
    known_hosts: Path | None = None
    """A known_hosts file pinning the instance's host key; unset accepts any host key (trusted networks only)."""
    workspace_root: str = Field(min_length=2, pattern=r"^/")
    """An absolute path on the instance under which pipelines' checkouts are made."""
    max_concurrent_steps: int = Field(4, ge=1, le=64)


class StepLimitSettings(_Section):
    """Resource limits of each step in the local sandbox (`[executor.limits]`); a limit hit fails the step with the
    limit named. None (or 0 in the environment) means no limit."""

    cpu_seconds: int | None = Field(3600, ge=0)
    """CPU time of each of the step's processes."""
    memory_bytes: int | None = Field(4 * 1024**3, ge=0)
    """Memory of the step's processes together (resident), and the data segment of each."""
    max_processes: int | None = Field(1024, ge=0)
    """Processes and threads of the step at once; a step that stays at the limit (a fork bomb) is stopped."""
    disk_bytes: int | None = Field(10 * 1024**3, ge=0)
    """Size of the step's workspace, checkout included."""
    tmp_bytes: int | None = Field(1024**3, ge=0)
    """Size of the step's private /tmp (held in memory)."""
    cpus: float | None = Field(None, ge=0)
    """CPU cores' worth of time for the step's processes together (a cpu cgroup; not enforced where none can be
    made)."""

    @field_validator("*", mode="after")
    @classmethod
    def _zero_is_none(cls, value: int | None) -> int | None:
        return value or None


class ExecutorSettings(_Section):
    """Where pipeline steps run: `local` (this machine, in the sandbox) or `ssh` (the `[[executor.ssh]]` instances;
    each pipeline goes to one of them, checked out there)."""

    kind: Literal["local", "ssh"] = "local"
    ssh: tuple[SshInstanceSettings, ...] = ()
    sandbox: Literal["required", "off"] = "required"
    """`required`: local steps run only in the bubblewrap sandbox, and a pipeline ends `error` (naming the missing
    tool) where it cannot be made; `off`: local steps run unsandboxed as the server's user, which must be asked for
    by name."""
    limits: StepLimitSettings = StepLimitSettings()
    max_limits: StepLimitSettings = StepLimitSettings(
        cpu_seconds=4 * 3600,
        memory_bytes=16 * 1024**3,
        max_processes=4096,
        disk_bytes=50 * 1024**3,
        tmp_bytes=8 * 1024**3,
    )
    """The most a step may ask for in its `.taskmaster.yml` `limits`; None (0) lets it ask for any amount."""

    @model_validator(mode="after")
    def _instances_for_ssh(self) -> ExecutorSettings:
        if self.kind == "ssh" and not self.ssh:
            raise ValueError("kind is 'ssh' but no [[executor.ssh]] instance is configured")
        names = [instance.name for instance in self.ssh]
        if len(set(names)) != len(names):
            raise ValueError(f"[[executor.ssh]] names must be unique, got {names}")
        return self


class WebhookSettings(_Section):
    """Inbound webhooks: secret rotation, rate limits (token buckets), and how failed processing is retried."""

    secret_overlap_seconds: float = Field(24 * 3600, ge=0)
    """After a rotation, the previous secret is still accepted for this long."""
    project_rate: float = Field(20.0, gt=0)
    """Deliveries per second a project's bucket refills with; `project_burst` is its size."""
    project_burst: int = Field(200, ge=1)
    source_rate: float = Field(50.0, gt=0)
    """Deliveries per second from one source address; `source_burst` is its bucket's size."""
    source_burst: int = Field(500, ge=1)
    max_attempts: int = Field(5, ge=1, le=50)
    retry_base_seconds: float = Field(2.0, gt=0)
    retry_max_seconds: float = Field(300.0, gt=0)
    poll_seconds: float = Field(1.0, gt=0, le=60)
    """How often a worker looks for deliveries to process when nothing woke it."""
    project_cache_seconds: float = Field(5.0, ge=0, le=300)
    """How long the receiving process remembers a repository's project and secrets (0: look up every delivery)."""


class ForgeSettings(_Section):
    """What Taskmaster does for forges besides receiving their webhooks."""

    local_poll_seconds: float = Field(2.0, gt=0, le=3600)
    """How often each worker looks for new commits on the head branches of open local-forge pull requests (the
    local forge has no push hook): a moved head raises the pull request's `synchronize` event."""


class GitHubSettings(_Section):
    """Taskmaster as a GitHub App: with `app_id` and a private key, GitHub projects on `api_url` report through the
    App's installation (check runs with annotations, statuses, comments) instead of their stored personal token."""

    api_url: str = "https://api.github.com"
    """GitHub's REST API, for the App and for GitHub projects without their own `forge_api_url`; GitHub Enterprise
    Server: `https://<host>/api/v3`."""
    app_id: int | None = Field(None, ge=1)
    private_key: SecretStr | None = None
    """The App's private key (PEM text); `\\n` escapes are accepted, for one-line environment variables."""
    private_key_file: Path | None = None
    """A file holding the App's private key instead; read when the settings are loaded."""
    webhook_secret: SecretStr | None = None
    """The App's webhook secret: a GitHub App sends every installation's events with this one secret, so it is
    accepted for every GitHub project besides the project's own."""
    _key_from_file: SecretStr | None = PrivateAttr(None)

    @field_validator("api_url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("private_key", mode="before")
    @classmethod
    def _unescape(cls, value: object) -> object:
        if isinstance(value, str) and "\n" not in value and "\\n" in value:
            return value.replace("\\n", "\n")
        return value

    @field_validator("private_key")
    @classmethod
    def _pem(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        _check_pem(value.get_secret_value())
        return value

    @field_validator("private_key_file")
    @classmethod
    def _pem_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            _check_pem(_read_key_file(value))
        return value

    @model_validator(mode="after")
    def _complete(self) -> GitHubSettings:
        # Cross-field problems are reported on the section: name both spellings, the variable and the key.
        if self.private_key is not None and self.private_key_file is not None:
            raise ValueError(
                "give the GitHub App's private key inline (GITHUB_APP_PRIVATE_KEY, github.private_key) "
                "or as a file (GITHUB_APP_PRIVATE_KEY_PATH, github.private_key_file), not both"
            )
        has_key = self.private_key is not None or self.private_key_file is not None
        if self.app_id is None and has_key:
            raise ValueError("a GitHub App private key needs the App's id (GITHUB_APP_ID, github.app_id)")
        if self.app_id is not None and not has_key:
            raise ValueError(
                "the GitHub App (GITHUB_APP_ID, github.app_id) needs its private key: GITHUB_APP_PRIVATE_KEY or "
                "GITHUB_APP_PRIVATE_KEY_PATH (github.private_key, github.private_key_file)"
            )
        if self.private_key_file is not None:
            self._key_from_file = SecretStr(_read_key_file(self.private_key_file))
        return self

    @property
    def app_configured(self) -> bool:
        return self.app_id is not None

    @property
    def app_private_key(self) -> str | None:
        """The App's private key (PEM), from `private_key` or from the file read at load."""
        key = self.private_key or self._key_from_file
        return key.get_secret_value() if key is not None else None


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a PEM private key") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror or type(exc).__name__})") from None


def _check_pem(text: str) -> None:
    # The message never quotes the text: it is a secret however malformed.
    try:
        load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise ValueError("is not an unencrypted PEM private key") from None


class Settings(_Section):
    """Everything Taskmaster reads from its environment, `taskmaster.toml` and defaults."""

    state_dir: Path = Path(".taskmaster")
    """TASKMASTER_HOME. `load_settings` defaults it to `$XDG_STATE_HOME/taskmaster` (~/.local/state/taskmaster);
    this default only serves settings built by hand."""
    environment: Literal["development", "production", "test"] = "development"
    database: DatabaseSettings = DatabaseSettings()
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    worker: WorkerSettings = WorkerSettings()
    auth: AuthSettings = AuthSettings()
    llm: LlmSettings = LlmSettings()
    codegen: CodegenSettings = CodegenSettings()
    costs: CostSettings = CostSettings()
    agentapi: AgentApiSettings = AgentApiSettings()
    workspace: WorkspaceSettings = WorkspaceSettings()
    webhooks: WebhookSettings = WebhookSettings()
    forges: ForgeSettings = ForgeSettings()
    executor: ExecutorSettings = ExecutorSettings()
    client: ClientSettings = ClientSettings()
    github: GitHubSettings = GitHubSettings()

    @property
    def embedded(self) -> bool:
        """True on the embedded default: SQLite file, in-process worker, local admin token."""
        return self.database_url.startswith("sqlite")

    @property
    def database_url(self) -> str:
        """The SQLAlchemy async URL of the state database."""
        from taskmaster.config.urls import database_url

        return database_url(self)

    @property
    def workspace_root(self) -> Path:
        return self.workspace.root or self.state_dir / "workspaces"

    @property
    def admin_token_file(self) -> Path:
        """Where the embedded default keeps its local admin token (mode 0600)."""
        return self.state_dir / "admin-token"

    @property
    def agentapi_token_file(self) -> Path:
        """Where `taskmaster agentapi serve` saves the token it generated at start (mode 0600)."""
        return self.state_dir / "agentapi-token"

    @property
    def mirror_root(self) -> Path:
        return self.workspace.mirror_root or self.state_dir / "mirrors"
