"""seed templates: every shipped default stored as version 1 (active) where its name has no version yet

Revision ID: 0014_seed_templates
Revises: 0013_recovery
Create Date: 2026-12-05 01:30:00.000000

Idempotent: a name that has any version is left alone, except `prd.parse` stored by an earlier release in
`string.Template` placeholders and never edited, which gets the Jinja2 default as a new active version (the old one
stays in the history). Downgrade removes only the rows this migration added that nothing was built on since (no
later version of their name), re-activating the version they replaced.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from taskmaster.core.clock import utcnow
from taskmaster.core.ids import new_id
from taskmaster.db.base import JsonType, UtcDateTime
from taskmaster.templates.syntax import default_names, default_text

revision: str = "0014_seed_templates"
down_revision: str | None = "0013_recovery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEEDED_BY = "0014_seed_templates"

# The `prd.parse` prompt as releases before Jinja2 templates stored it on first use (a snapshot, never changed).
_DOLLAR_PRD_PARSE = """\
Break this part of a PRD into implementation tasks.

Section: $heading_path
Target: $target_tasks

Outline of the whole document (for context; other parts are handled separately):
$outline

Tasks already created from other parts of the document (do not repeat them; depend on them by exact title):
$known_titles

Rules:
- Give each task a short id unique in your answer (t1, t2, ...).
- `dependencies` lists what must be done first: ids of tasks in your answer, or the exact title of a task from
  another part (from the list above, or a heading of the outline when that part's tasks are not known yet).
  Later parts may be named too: dependencies may point forward.
- priority: 1 = must have / blocking ... 3 = should have ... 5 = nice to have; follow the document's wording
  (MUST, SHOULD, COULD, "critical", "optional").
- type: feature, bug, chore, test or docs. complexity: 1 (trivial) to 10 (very hard).
- `section`: the heading (from the text below) the task comes from.

PRD text:
<<<
$chunk_text
>>>
"""

_templates = sa.table(
    "templates",
    sa.column("id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("version", sa.Integer()),
    sa.column("content", sa.Text()),
    sa.column("variables", JsonType),
    sa.column("meta", JsonType),
    sa.column("is_active", sa.Boolean()),
    sa.column("created_at", UtcDateTime()),
    sa.column("updated_at", UtcDateTime()),
)


def upgrade() -> None:
    bind = op.get_bind()
    columns = (_templates.c.name, _templates.c.version, _templates.c.content, _templates.c.is_active)
    rows = bind.execute(sa.select(*columns)).all()
    stored: dict[str, list[tuple[int, str, bool]]] = {}
    for name, version, content, active in rows:
        stored.setdefault(name, []).append((version, content, active))
    now = utcnow()
    for name in default_names():
        versions = stored.get(name)
        if versions is None:
            _insert(name, 1, default_text(name), now)
        elif name == "prd.parse" and len(versions) == 1 and versions[0][1] == _DOLLAR_PRD_PARSE:
            bind.execute(sa.update(_templates).where(_templates.c.name == name).values(is_active=False))
            _insert(name, versions[0][0] + 1, default_text(name), now)


def _insert(name: str, version: int, content: str, now: object) -> None:
    row = {
        "id": new_id(), "name": name, "kind": "prompt", "version": version, "content": content, "variables": [],
        "meta": {"seeded_by": SEEDED_BY}, "is_active": True, "created_at": now, "updated_at": now,
    }  # fmt: skip
    op.get_bind().execute(sa.insert(_templates).values(**row))


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_templates.c.id, _templates.c.name, _templates.c.version, _templates.c.meta, _templates.c.is_active)
    ).all()
    latest: dict[str, int] = {}
    for row in rows:
        latest[row.name] = max(latest.get(row.name, 0), row.version)
    for row in rows:
        seeded = isinstance(row.meta, dict) and row.meta.get("seeded_by") == SEEDED_BY
        if not seeded or row.version != latest[row.name]:
            continue
        bind.execute(sa.delete(_templates).where(_templates.c.id == row.id))
        if row.is_active and row.version > 1:
            bind.execute(
                sa.update(_templates)
                .where(_templates.c.name == row.name, _templates.c.version == row.version - 1)
                .values(is_active=True)
            )
