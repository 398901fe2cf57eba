"""gitlab namespaces: a GitLab project's owner is its whole namespace (`acme/platform` for `acme/platform/api`)

Revision ID: 0015_gitlab_namespaces
Revises: 0014_seed_templates
Create Date: 2026-12-05 05:00:00.000000

Earlier releases kept only the last two segments of a repository's path, so a GitLab project in a subgroup was
stored as owner `platform`, name `api`: its API calls went to the wrong project and its webhooks (which name
`acme/platform/api`) found no project. Upgrade recomputes owner and name of every GitLab project whose repository is
a URL, an scp-like address or a bare `group/…/name` (a path on this machine says nothing of its namespace and is
left alone). Downgrade changes nothing: the recomputed values are right for earlier releases too, which only ever
join owner and name with a slash.
"""

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import op

revision: str = "0015_gitlab_namespaces"
down_revision: str | None = "0014_seed_templates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A snapshot of `projects.repository.split_repository` for GitLab when this was written, so that this migration
# keeps doing what it did whatever that function becomes.
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")
_MAX_PART = 200  # the columns' length: a longer namespace is left as it was rather than fail the upgrade

_projects = sa.table(
    "projects",
    sa.column("id", sa.Uuid()),
    sa.column("forge", sa.String()),
    sa.column("repository", sa.String()),
    sa.column("owner", sa.String()),
    sa.column("repo_name", sa.String()),
)


def _namespace_and_name(repository: str) -> tuple[str, str] | None:
    if repository.startswith(("/", "file:")):
        return None
    if "://" in repository:
        path = urlsplit(repository).path
    elif scp := _SCP_LIKE.match(repository):
        path = repository[scp.end() :]
    else:
        path = repository
    segments = [segment for segment in path.split("/") if segment]
    if segments:
        segments[-1] = segments[-1].removesuffix(".git")
    segments = [segment for segment in segments if segment]
    if len(segments) < 2:
        return None
    return "/".join(segments[:-1]), segments[-1]


def upgrade() -> None:
    bind = op.get_bind()
    columns = (_projects.c.id, _projects.c.repository, _projects.c.owner, _projects.c.repo_name)
    rows = bind.execute(sa.select(*columns).where(_projects.c.forge == "gitlab")).all()
    for project_id, repository, owner, repo_name in rows:
        found = _namespace_and_name(repository)
        if found is None or found == (owner, repo_name) or max(map(len, found)) > _MAX_PART:
            continue
        bind.execute(
            sa.update(_projects).where(_projects.c.id == project_id).values(owner=found[0], repo_name=found[1])
        )


def downgrade() -> None:
    # Nothing to undo: cutting the namespace again would only send the project's API calls astray once more.
    pass
