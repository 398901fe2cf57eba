"""Repository addresses as projects give them (a URL, scp-like `git@host:path`, a bare forge name or a path on this
machine), and the path a project's forge knows its repository by: `owner/name` on GitHub, the whole
`group/subgroup/…/name` on GitLab."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from taskmaster.db.models import Project

# As git reads a repository argument (and workspaces.git_cache with it): a URL, or scp-like `user@host:path`.
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
# A bare forge name: `owner/name`, or on GitLab `group/subgroup/…/name`.
FORGE_NAME = re.compile(r"[\w-][\w.-]*(?:/[\w.-]+)+")
MAX_PART = 200
"""The length of the `owner` and `repo_name` columns."""


def is_repository_url(repository: str) -> bool:
    """Whether `repository` names a remote repository rather than a path on this machine."""
    return "://" in repository or _SCP_LIKE.match(repository) is not None


def _on_this_machine(repository: str) -> bool:
    return repository.startswith(("/", "file:"))


def path_segments(repository: str) -> list[str]:
    """The segments of the path `repository` names on its host, without `.git`: a URL's path (its host, port and
    user left out), what follows `host:` in an scp-like address, or the address itself."""
    if "://" in repository:
        path = urlsplit(repository).path
    elif scp := _SCP_LIKE.match(repository):
        path = repository[scp.end() :]
    else:
        path = repository
    segments = [segment for segment in path.split("/") if segment]
    if segments:
        segments[-1] = segments[-1].removesuffix(".git")
    return [segment for segment in segments if segment]


def split_repository(repository: str, forge: str) -> tuple[str | None, str | None]:
    """(owner, name) of a GitHub or GitLab project's repository; (None, None) when it names fewer than two segments.

    On GitLab the owner is the whole namespace (`acme/platform` for `acme/platform/api`: groups nest); on GitHub,
    and for a path on this machine (whose leading directories say nothing of the forge), the last two segments.
    """
    segments = path_segments(repository)
    if len(segments) < 2:
        return None, None
    if forge == "gitlab" and not _on_this_machine(repository):
        return "/".join(segments[:-1]), segments[-1]
    return segments[-2], segments[-1]


def forge_repository_problem(repository: str, forge: str) -> str | None:
    """Why a GitHub or GitLab project cannot have `repository` (a URL, scp-like address or bare name), or None."""
    if _on_this_machine(repository):
        return None
    segments = path_segments(repository)
    path = "/".join(segments) or "nothing"
    if forge == "github" and len(segments) != 2:
        return (
            f"a GitHub repository is owner/name, but {repository} names {path}: give the repository's own URL "
            "(https://github.com/OWNER/NAME)"
        )
    if forge == "gitlab" and len(segments) < 2:
        return f"a GitLab project is group/…/name, but {repository} names {path}"
    owner, name = split_repository(repository, forge)
    if owner is not None and name is not None and max(len(owner), len(name)) > MAX_PART:
        return f"{repository}: the namespace and the name may have at most {MAX_PART} characters each"
    return None


def forge_path(project: Project) -> str | None:
    """The repository as the project's forge names it in its API (`owner/name`, GitLab's `group/…/name`); None
    when the project names none (a local-forge project)."""
    if project.owner and project.repo_name:
        return f"{project.owner}/{project.repo_name}"
    return None
