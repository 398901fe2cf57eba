"""Webhooks in, by registry: one `WebhookSource` per forge, so the receiver and the worker never branch on provider.

A source is pure (headers and bytes in, values out) and holds no state; `source_for(provider)` finds one. A new
forge adds a source here and nothing changes in the intake or the processing (the local forge's is `LocalSource`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from taskmaster.config import Settings
from taskmaster.core.errors import NotFound
from taskmaster.forges.events import DeliveryIdentity, ForgeEvent, Provider, RepositoryKey
from taskmaster.forges.github.webhooks import GitHubSource
from taskmaster.forges.gitlab.webhooks import GitLabSource
from taskmaster.forges.local.webhooks import LocalSource


class WebhookSource(Protocol):
    """How one forge's deliveries are read, checked and parsed.

    Every method is a pure function of its arguments, safe to call concurrently. Errors: `identify` raises
    `WebhookHeaderMissing` / `WebhookHeaderInvalid`, `decode` and `parse` raise `WebhookPayloadError` (all 400s),
    `verify` raises `WebhookSignatureError` (401).
    """

    @property
    def provider(self) -> Provider: ...

    @property
    def content_types(self) -> tuple[str, ...]:
        """The media types a delivery may have."""
        ...

    @property
    def unstored_headers(self) -> frozenset[str]:
        """Lower-case names of headers that prove or carry a secret: never stored (a stored signature would let
        whoever reads it guess a weak secret offline)."""
        ...

    def identify(self, headers: Mapping[str, str]) -> DeliveryIdentity:
        """Event name and deduplication ids, from the headers alone; ids longer than their columns are refused."""
        ...

    def decode(self, body: bytes) -> dict[str, Any]:
        """The body as a JSON object, depth-bounded; only this runs before the signature check."""
        ...

    def repository_key(self, payload: Mapping[str, Any]) -> RepositoryKey | None:
        """The repository the delivery is about (its projects hold the secrets), or None when it names none."""
        ...

    def action(self, payload: Mapping[str, Any]) -> str | None:
        """The forge's raw action, as stored on the delivery row (at most 100 characters)."""
        ...

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, allow_sha1: bool) -> None:
        """Check the signature or token against any of `secrets`."""
        ...

    def app_secret(self, settings: Settings) -> str | None:
        """An App-wide webhook secret accepted besides each project's own, when the forge has one."""
        ...

    def parse(self, event: str, body: bytes) -> ForgeEvent:
        """A stored delivery (its event header and body) as a `ForgeEvent`."""
        ...


SOURCES: Mapping[Provider, WebhookSource] = {
    Provider.GITHUB: GitHubSource(),
    Provider.GITLAB: GitLabSource(),
    Provider.LOCAL: LocalSource(),
}


def source_for(provider: Provider | str) -> WebhookSource:
    """The source of `provider` (`github`, `gitlab`, `local`); `NotFound` for a forge without webhooks."""
    try:
        return SOURCES[Provider(provider)]
    except (KeyError, ValueError):
        raise NotFound(f"no webhook source for forge {provider!r}") from None
