"""GitLab delivery checks: secret token, signing token (HEADERS.md's worked example, replays), headers, project."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from taskmaster.forges.events import Provider, RepositoryKey, WebhookHeaderMissing
from taskmaster.forges.gitlab.webhooks import decode_signing_key, identify, repository_key, verify
from taskmaster.forges.signatures import WebhookSignatureError
from tests.forges.fixtures import payload, payload_bytes

# HEADERS.md §2 worked example.
SIGNING_KEY = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
MESSAGE_ID = "f5e5f430-f57b-4e6e-9fac-d9128cd7232f"
TIMESTAMP = 1767225600
BODY = b'{"object_kind":"push","ref":"refs/heads/main"}'
SIGNATURE = "v1,nx+J523ec8vnN6hW8Pbaej0tZpeVhtIMRkf7knxA6ac="
SIGNED = {"webhook-id": MESSAGE_ID, "webhook-timestamp": str(TIMESTAMP), "webhook-signature": SIGNATURE}
TOKEN = "my-plain-secret"


def sign(key: str, message_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(decode_signing_key(key), f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def rejection(headers: dict[str, str], body: bytes = BODY, **kwargs: object) -> str:
    kwargs.setdefault("secrets", [])
    kwargs.setdefault("now", TIMESTAMP)
    with pytest.raises(WebhookSignatureError) as caught:
        verify(headers, body, **kwargs)  # type: ignore[arg-type]
    return caught.value.detail


# --- secret token --------------------------------------------------------------------------------------------------


def test_matching_secret_token_verifies() -> None:
    verify({"X-Gitlab-Token": TOKEN}, BODY, [TOKEN])


def test_wrong_secret_token_is_rejected_without_echoing_it() -> None:
    detail = rejection({"X-Gitlab-Token": "guess"}, secrets=[TOKEN])
    assert "X-Gitlab-Token does not match" in detail
    assert TOKEN not in detail and "guess" not in detail


def test_missing_secret_token_is_rejected_and_says_so() -> None:
    assert "X-Gitlab-Token header missing" in rejection({}, secrets=[TOKEN])


def test_previous_secret_token_still_verifies_during_rotation() -> None:
    verify({"x-gitlab-token": "old-token"}, BODY, ["new-token", "old-token"])


def test_non_ascii_secret_token_is_compared_as_bytes() -> None:
    verify({"X-Gitlab-Token": "sécrét-✓"}, BODY, ["sécrét-✓"])
    assert "does not match" in rejection({"X-Gitlab-Token": "sécrét-x"}, secrets=["sécrét-✓"])


@pytest.mark.parametrize("secrets", [[], [""]])
def test_nothing_configured_refuses_every_delivery(secrets: list[str]) -> None:
    assert "no secret token or signing token is configured" in rejection({"X-Gitlab-Token": ""}, secrets=secrets)


# --- signing token -------------------------------------------------------------------------------------------------


def test_worked_example_signing_key_decodes_to_bytes_0_to_31() -> None:
    assert decode_signing_key(SIGNING_KEY) == bytes(range(32))


def test_worked_example_signature_verifies_at_its_timestamp() -> None:
    assert sign(SIGNING_KEY, MESSAGE_ID, TIMESTAMP, BODY) == SIGNATURE
    verify(SIGNED, BODY, [], signing_keys=[SIGNING_KEY], now=TIMESTAMP)


def test_worked_example_is_outside_tolerance_against_the_real_clock() -> None:
    assert "beyond the 300 s tolerance" in rejection(SIGNED, signing_keys=[SIGNING_KEY], now=None)


@pytest.mark.parametrize(
    ("now", "verdict"),
    [
        (TIMESTAMP + 300, None),
        (TIMESTAMP - 300, None),
        (TIMESTAMP + 301, "301 s old, beyond the 300 s tolerance"),
        (TIMESTAMP - 301, "301 s in the future"),
        (TIMESTAMP + 86_400, "86400 s old"),
    ],
)
def test_timestamp_outside_tolerance_is_rejected_as_replay(now: int, verdict: str | None) -> None:
    if verdict is None:
        verify(SIGNED, BODY, [], signing_keys=[SIGNING_KEY], now=now)
    else:
        assert verdict in rejection(SIGNED, signing_keys=[SIGNING_KEY], now=now)


def test_tolerance_is_configurable() -> None:
    verify(SIGNED, BODY, [], signing_keys=[SIGNING_KEY], now=TIMESTAMP + 3600, tolerance_seconds=3600)
    assert "beyond the 10 s tolerance" in rejection(
        SIGNED, signing_keys=[SIGNING_KEY], now=TIMESTAMP + 11, tolerance_seconds=10
    )


def test_changed_body_is_rejected_under_signing_token() -> None:
    assert "webhook-signature does not match" in rejection(
        SIGNED, BODY.replace(b"main", b"evil"), signing_keys=[SIGNING_KEY]
    )


def test_changed_timestamp_breaks_the_signature() -> None:
    headers = {**SIGNED, "webhook-timestamp": str(TIMESTAMP + 1)}
    assert "does not match" in rejection(headers, signing_keys=[SIGNING_KEY])


def test_wrong_signing_key_is_rejected() -> None:
    other = "whsec_" + base64.b64encode(bytes(range(1, 33))).decode()
    assert "does not match" in rejection(SIGNED, signing_keys=[other])


def test_any_of_several_signature_entries_may_match() -> None:
    headers = {**SIGNED, "webhook-signature": f"v1,AAAA v2,{SIGNATURE[3:]} {SIGNATURE}"}
    verify(headers, BODY, [], signing_keys=[SIGNING_KEY], now=TIMESTAMP)


def test_only_v1_entries_count() -> None:
    headers = {**SIGNED, "webhook-signature": "v2," + SIGNATURE[3:]}
    assert "malformed" in rejection(headers, signing_keys=[SIGNING_KEY])


def test_previous_signing_key_still_verifies_during_rotation() -> None:
    newer = "whsec_" + base64.b64encode(b"n" * 32).decode()
    verify(SIGNED, BODY, [], signing_keys=[newer, SIGNING_KEY], now=TIMESTAMP)


@pytest.mark.parametrize(
    ("missing", "detail"),
    [
        ("webhook-signature", "webhook-signature header missing"),
        ("webhook-id", "webhook-id header missing"),
        ("webhook-timestamp", "webhook-timestamp header missing"),
    ],
)
def test_missing_signing_header_is_rejected_and_named(missing: str, detail: str) -> None:
    headers = {name: value for name, value in SIGNED.items() if name != missing}
    assert detail in rejection(headers, signing_keys=[SIGNING_KEY])


def test_non_numeric_timestamp_is_rejected() -> None:
    assert "not a Unix time" in rejection({**SIGNED, "webhook-timestamp": "yesterday"}, signing_keys=[SIGNING_KEY])


def test_malformed_configured_key_is_reported_without_its_value() -> None:
    detail = rejection(SIGNED, signing_keys=["whsec_not base64!"])
    assert "not valid whsec_<base64>" in detail and "not base64!" not in detail


def test_malformed_configured_key_does_not_stop_a_good_one() -> None:
    verify(SIGNED, BODY, [], signing_keys=["whsec_%%%", SIGNING_KEY], now=TIMESTAMP)


@pytest.mark.parametrize("key", ["whsec_%%%", "whsec_", "plain words"])
def test_decode_signing_key_refuses_what_is_not_base64(key: str) -> None:
    with pytest.raises(ValueError, match="whsec_"):
        decode_signing_key(key)


def test_signing_headers_are_found_in_any_letter_case() -> None:
    headers = Headers({name.upper(): value for name, value in SIGNED.items()})
    verify(headers, BODY, [], signing_keys=[SIGNING_KEY], now=TIMESTAMP)


@given(position=st.integers(min_value=0, max_value=len(BODY) - 1), flip=st.integers(min_value=1, max_value=255))
def test_any_single_byte_mutation_fails_signing_token_check(position: int, flip: int) -> None:
    mutated = bytearray(BODY)
    mutated[position] ^= flip
    with pytest.raises(WebhookSignatureError):
        verify(SIGNED, bytes(mutated), [], signing_keys=[SIGNING_KEY], now=TIMESTAMP)


# --- both configured: both must pass --------------------------------------------------------------------------------


def test_both_configured_and_both_right_verifies() -> None:
    verify({**SIGNED, "X-Gitlab-Token": TOKEN}, BODY, [TOKEN], signing_keys=[SIGNING_KEY], now=TIMESTAMP)


def test_both_configured_right_token_without_signature_is_rejected() -> None:
    detail = rejection({"X-Gitlab-Token": TOKEN}, secrets=[TOKEN], signing_keys=[SIGNING_KEY])
    assert "webhook-signature header missing" in detail


def test_both_configured_right_signature_with_wrong_token_is_rejected() -> None:
    detail = rejection({**SIGNED, "X-Gitlab-Token": "leaked?"}, secrets=[TOKEN], signing_keys=[SIGNING_KEY])
    assert "X-Gitlab-Token does not match" in detail


def test_only_token_configured_ignores_signature_headers() -> None:
    verify({**SIGNED, "webhook-signature": "v1,garbage", "X-Gitlab-Token": TOKEN}, BODY, [TOKEN], now=0)


# --- identify and repository_key -----------------------------------------------------------------------------------

DELIVERY_HEADERS = {
    "User-Agent": "GitLab/17.4.0",
    "X-Gitlab-Event": "Merge Request Hook",
    "X-Gitlab-Instance": "https://gitlab.example.com",
    "X-Gitlab-Webhook-UUID": "3c5c0404-c866-44bc-a5f6-452bb1bfc76e",
    "X-Gitlab-Event-UUID": "9cebe914-4827-408f-b014-cfa23a47a35f",
    "Idempotency-Key": "a5461c4d-9c7f-4af9-add6-cddebe3c426f",
    "X-Gitlab-Token": TOKEN,
}


def without(*names: str) -> dict[str, str]:
    return {name: value for name, value in DELIVERY_HEADERS.items() if name not in names}


def test_identify_prefers_the_idempotency_key() -> None:
    identity = identify(DELIVERY_HEADERS)
    assert identity.model_dump() == {
        "provider": Provider.GITLAB,
        "event": "Merge Request Hook",
        "delivery_id": "a5461c4d-9c7f-4af9-add6-cddebe3c426f",
        "delivery_id_stable": True,
        "hook_id": None,
        "instance": "https://gitlab.example.com",
        "target_type": None,
        "target_id": None,
    }


def test_identify_falls_back_to_signing_id_then_event_uuid() -> None:
    with_signing = identify({**without("Idempotency-Key"), "webhook-id": MESSAGE_ID})
    older = identify(without("Idempotency-Key"))
    assert (with_signing.delivery_id, with_signing.delivery_id_stable) == (MESSAGE_ID, True)
    assert (older.delivery_id, older.delivery_id_stable) == ("9cebe914-4827-408f-b014-cfa23a47a35f", True)


def test_identify_uses_per_request_uuid_last_and_marks_it_unstable() -> None:
    identity = identify(without("Idempotency-Key", "X-Gitlab-Event-UUID"))
    assert (identity.delivery_id, identity.delivery_id_stable) == ("3c5c0404-c866-44bc-a5f6-452bb1bfc76e", False)


def test_identify_without_any_delivery_id_names_the_headers() -> None:
    with pytest.raises(WebhookHeaderMissing, match="Idempotency-Key and X-Gitlab-Event-UUID"):
        identify(without("Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"))


def test_identify_without_event_header_names_it() -> None:
    with pytest.raises(WebhookHeaderMissing, match="X-Gitlab-Event header missing"):
        identify(without("X-Gitlab-Event"))


def test_identify_ignores_header_case() -> None:
    lowered = {name.lower(): value for name, value in DELIVERY_HEADERS.items()}
    assert identify(lowered) == identify(DELIVERY_HEADERS) == identify(Headers(DELIVERY_HEADERS))


def test_repository_key_reads_path_with_namespace_and_id() -> None:
    expected = RepositoryKey(full_name="gitlab-org/hello-world", id=4861503)
    assert repository_key(payload_bytes("gitlab/merge_request/open")) == expected
    assert repository_key(payload("gitlab/push/push")) == expected


def test_repository_key_of_job_event_has_only_the_project_id() -> None:
    assert repository_key(payload_bytes("gitlab/job/success")) == RepositoryKey(full_name=None, id=31537070)


def test_repository_key_is_none_without_a_project() -> None:
    assert repository_key(b'{"object_kind": "push"}') is None
