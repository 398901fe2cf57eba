"""GitHub delivery checks: HMAC signatures (HEADERS.md's worked values), delivery headers, repository lookup."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from taskmaster.core.errors import InvalidInput, Unauthenticated
from taskmaster.forges.events import Provider, RepositoryKey, WebhookHeaderMissing
from taskmaster.forges.github.webhooks import identify, repository_key, verify
from taskmaster.forges.signatures import WebhookSignatureError
from tests.forges.fixtures import payload, payload_bytes

SECRET = "my-webhook-secret"
BODY = b'{"action":"opened","number":1,"repository":{"full_name":"octo-org/hello-world"}}'
BODY_SHA256 = "sha256=1a51c552d6166a40be13caf83add4e6574d65fbfd391c3a821ae27f9e0878a0f"
BODY_SHA1 = "sha1=3837a6ba0816d8c96c4c817904a907762ecb08ce"


def signed(body: bytes, secret: str) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def rejection(headers: dict[str, str], body: bytes, secrets: list[str], *, allow_sha1: bool = False) -> str:
    with pytest.raises(WebhookSignatureError) as caught:
        verify(headers, body, secrets, allow_sha1=allow_sha1)
    return caught.value.detail


# --- HEADERS.md worked examples ------------------------------------------------------------------------------------


def test_githubs_published_test_vector_verifies() -> None:
    headers = {"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
    verify(headers, b"Hello, World!", ["It's a Secret to Everybody"])
    assert "does not match" in rejection(headers, b"Hello, World?", ["It's a Secret to Everybody"])


def test_small_json_body_verifies_with_its_published_signature() -> None:
    verify({"X-Hub-Signature-256": BODY_SHA256}, BODY, [SECRET])
    assert len(BODY) == 80


@pytest.mark.parametrize(
    ("body", "its_own_signature"),
    [
        (BODY + b"\n", "sha256=ed5d70eebc7b01bc80468b1fc3f462f3f1b4289fab6463783d0bf975a6626636"),
        (
            json.dumps(json.loads(BODY)).encode(),
            "sha256=69479a9eb58b3581650b634a4b466bfe5eefdb4b07bbb89238d6b59b0f52489d",
        ),
    ],
    ids=["trailing-newline", "re-serialised"],
)
def test_changed_bytes_are_rejected_against_the_original_signature(body: bytes, its_own_signature: str) -> None:
    assert "does not match" in rejection({"X-Hub-Signature-256": BODY_SHA256}, body, [SECRET])
    verify({"X-Hub-Signature-256": its_own_signature}, body, [SECRET])


@pytest.mark.parametrize(
    ("name", "file_sha256", "signature"),
    [
        (
            "github/ping/repository_hook",
            "99c1656b2a959bedc162ec8881ececbd96b281059f43862dfde6a9939aa7decc",
            "sha256=314d0bd492fa395d3f14355a0b4c5c0865317c68dff1e94e074cf209714b8104",
        ),
        (
            "github/pull_request/opened",
            "d34772e6b4b912586626b71101fd7e9f529943866c895dcb3381ec476003e834",
            "sha256=82d0785c6b0724fcd1bd93627cc0a6148bdbd3ea4356caa623105fe4bef444c1",
        ),
    ],
)
def test_fixture_file_bytes_verify_with_published_signature(name: str, file_sha256: str, signature: str) -> None:
    body = payload_bytes(name)
    assert hashlib.sha256(body).hexdigest() == file_sha256, "fixture file was edited or reformatted"
    verify({"X-Hub-Signature-256": signature}, body, [SECRET])


# --- rejection rules -----------------------------------------------------------------------------------------------


def test_one_changed_byte_is_rejected() -> None:
    body = bytearray(payload_bytes("github/pull_request/opened"))
    headers = signed(bytes(body), SECRET)
    body[1000] ^= 0x01
    assert "does not match" in rejection(headers, bytes(body), [SECRET])


def test_wrong_secret_is_rejected_without_echoing_any_secret() -> None:
    detail = rejection(signed(BODY, "attacker-guess"), BODY, [SECRET])
    assert "does not match" in detail
    assert SECRET not in detail and "attacker-guess" not in detail


def test_missing_signature_header_is_rejected_and_says_so() -> None:
    assert "X-Hub-Signature-256 header missing" in rejection({}, BODY, [SECRET])


@pytest.mark.parametrize(
    "value",
    ["sha1=" + "0" * 64, "sha256=" + "0" * 63, "sha256=" + "z" * 64, BODY_SHA256.removeprefix("sha256="), ""],
)
def test_malformed_signature_header_is_rejected_as_malformed(value: str) -> None:
    assert "malformed" in rejection({"X-Hub-Signature-256": value}, BODY, [SECRET])


def test_uppercase_hex_signature_is_accepted() -> None:
    verify({"X-Hub-Signature-256": "sha256=" + BODY_SHA256.removeprefix("sha256=").upper()}, BODY, [SECRET])


def test_previous_secret_still_verifies_during_rotation() -> None:
    headers = signed(BODY, "previous-secret")
    verify(headers, BODY, ["current-secret", "previous-secret"])
    verify(signed(BODY, "current-secret"), BODY, ["current-secret", "previous-secret"])
    assert "does not match" in rejection(headers, BODY, ["current-secret"])


@pytest.mark.parametrize("secrets", [[], [""]])
def test_no_configured_secret_refuses_every_delivery(secrets: list[str]) -> None:
    assert "no webhook secret is configured" in rejection({"X-Hub-Signature-256": BODY_SHA256}, BODY, secrets)


def test_sha1_signature_is_accepted_only_when_allowed() -> None:
    headers = {"X-Hub-Signature": BODY_SHA1}
    assert "SHA-1" in rejection(headers, BODY, [SECRET])
    verify(headers, BODY, [SECRET], allow_sha1=True)
    assert "does not match" in rejection({"X-Hub-Signature": "sha1=" + "0" * 40}, BODY, [SECRET], allow_sha1=True)


def test_wrong_sha256_does_not_fall_back_to_a_right_sha1() -> None:
    headers = {"X-Hub-Signature-256": "sha256=" + "0" * 64, "X-Hub-Signature": BODY_SHA1}
    assert "X-Hub-Signature-256 does not match" in rejection(headers, BODY, [SECRET], allow_sha1=True)


def test_signature_error_is_unauthenticated_with_its_own_code() -> None:
    with pytest.raises(Unauthenticated) as caught:
        verify({}, BODY, [SECRET])
    assert caught.value.code == "webhook_signature_invalid"


@pytest.mark.parametrize(
    "headers",
    [
        {"x-hub-signature-256": BODY_SHA256},
        {"X-HUB-SIGNATURE-256": BODY_SHA256},
        Headers({"x-hub-signature-256": BODY_SHA256}),
    ],
    ids=["lowercase-dict", "uppercase-dict", "starlette-headers"],
)
def test_signature_header_is_found_in_any_letter_case(headers: dict[str, str] | Headers) -> None:
    verify(headers, BODY, [SECRET])


@given(position=st.integers(min_value=0, max_value=len(BODY) - 1), flip=st.integers(min_value=1, max_value=255))
def test_any_single_byte_mutation_fails_verification(position: int, flip: int) -> None:
    mutated = bytearray(BODY)
    mutated[position] ^= flip
    with pytest.raises(WebhookSignatureError):
        verify({"X-Hub-Signature-256": BODY_SHA256}, bytes(mutated), [SECRET])


# --- identify and repository_key -----------------------------------------------------------------------------------

DELIVERY_HEADERS = {
    "User-Agent": "GitHub-Hookshot/1a2b3c4",
    "X-GitHub-Event": "pull_request",
    "X-GitHub-Delivery": "0b8f5d10-0000-11f0-8000-000000000001",
    "X-GitHub-Hook-ID": "123456789",
    "X-GitHub-Hook-Installation-Target-Type": "integration",
    "X-GitHub-Hook-Installation-Target-ID": "424242",
}


def test_identify_reads_event_delivery_hook_and_target() -> None:
    identity = identify(DELIVERY_HEADERS)
    assert identity.model_dump() == {
        "provider": Provider.GITHUB,
        "event": "pull_request",
        "delivery_id": "0b8f5d10-0000-11f0-8000-000000000001",
        "delivery_id_stable": True,
        "hook_id": "123456789",
        "instance": None,
        "target_type": "integration",
        "target_id": "424242",
    }


def test_identify_ignores_header_case_of_a_plain_dict() -> None:
    lowered = {name.lower(): value for name, value in DELIVERY_HEADERS.items()}
    assert identify(lowered) == identify(DELIVERY_HEADERS) == identify(Headers(DELIVERY_HEADERS))


def test_identify_reads_enterprise_host() -> None:
    identity = identify({**DELIVERY_HEADERS, "X-GitHub-Enterprise-Host": "github.example.com"})
    assert identity.instance == "github.example.com"


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_identify_names_a_missing_required_header(missing: str) -> None:
    headers = {name: value for name, value in DELIVERY_HEADERS.items() if name != missing}
    with pytest.raises(WebhookHeaderMissing) as caught:
        identify(headers)
    assert missing in caught.value.detail
    assert isinstance(caught.value, InvalidInput)


def test_repository_key_reads_full_name_and_id_from_bytes_or_mapping() -> None:
    expected = RepositoryKey(full_name="Codertocat/Hello-World", id=186853002)
    assert repository_key(payload_bytes("github/pull_request/opened")) == expected
    assert repository_key(payload("github/pull_request/opened")) == expected


def test_repository_key_is_none_for_an_app_installation() -> None:
    assert repository_key(payload_bytes("github/installation/created")) is None
