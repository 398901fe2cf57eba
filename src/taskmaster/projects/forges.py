"""`ForgeFactory`: which forge client serves a project (the GitHub App, the project's own token, or the local
forge)."""

from __future__ import annotations

from collections.abc import Callable

from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.forges.base import Forge
from taskmaster.forges.github.client import GitHubForge
from taskmaster.forges.gitlab.client import DEFAULT_BASE_URL as GITLAB_API
from taskmaster.forges.gitlab.client import GitLabForge
from taskmaster.projects import settings as project_settings
from taskmaster.projects.credentials import Credentials


class ForgeFactory:
    """Makes forge clients for projects; each client is the caller's to close. Holds no connection itself."""

    def __init__(
        self, settings: Settings, credentials: Credentials, *, local: Callable[[Project], Forge] | None = None
    ) -> None:
        self.settings = settings
        self.credentials = credentials
        self.local = local
        """Makes the local forge of a local-path project; injected by the runtime (it needs the database, which
        sits above `projects` only through `forges.local`)."""

    def uses_app(self, project: Project) -> bool:
        """A GitHub project on the server where the configured GitHub App lives: it is reached as the App."""
        if project.forge != "github" or not self.settings.github.app_configured:
            return False
        return self._github_api_url(project) == self.settings.github.api_url

    def app(self) -> GitHubForge:
        """A client acting as the configured GitHub App (each repository through its installation)."""
        github = self.settings.github
        assert github.app_id is not None, "check uses_app first"
        return GitHubForge(app_id=github.app_id, private_key=github.app_private_key, base_url=github.api_url)

    def for_project(self, project: Project) -> Forge | None:
        """A new client for the project's forge: as the GitHub App when it covers the project, else with the
        project's token; the local forge for a local-path project; None for projects without any."""
        if project.forge == "local":
            local = project.repository.startswith("/") and self.local is not None
            return self.local(project) if local and self.local is not None else None
        if self.uses_app(project):
            return self.app()
        token = self.credentials.forge_token(project)
        if not token:
            return None
        if project.forge == "github":
            return GitHubForge(token=token, base_url=self._github_api_url(project))
        if project.forge == "gitlab":
            base_url = project_settings.load(project.settings).forge_api_url or GITLAB_API
            return GitLabForge(token=token, base_url=base_url)
        return None

    def _github_api_url(self, project: Project) -> str:
        return (project_settings.load(project.settings).forge_api_url or self.settings.github.api_url).rstrip("/")
