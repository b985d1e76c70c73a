"""Property tests (hypothesis) for the pieces every request and every stored value go through.

(a) RFC 9421 signing: whatever the method, percent-encoded path, query and body, a request signed by
    the test device (http-message-signatures' signer) verifies through privchat's verifier, and any
    single-byte change to body, path or query is refused with the right code.
(b) Content-Digest: exactly sha-256 of the received bytes is accepted.
(c) AES-GCM envelopes: seal/open round-trips any text; another row, column, table, a changed
    bound field (conversation, role, position) or any flipped byte fails with CryptoError.
"""

from __future__ import annotations

import base64
import hashlib
import string
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from privchat.auth.signatures import (
    RequestView,
    SignatureError,
    SignatureVerifier,
    check_content_digest,
    parse_signature_input,
)
from privchat.storage.crypto import Cipher, CryptoError, new_data_key
from tests.support.signing import TestDevice, content_digest

# One key for the whole module: generating P-256 keys per example would only slow the run down.
DEVICE = TestDevice(name="property device")
# The end-to-end header every request carries; the signature covers it like the rest (docs/E2E.md).
E2E_HEADER = 'kid="k", enc=:' + "A" * 87 + "=:"
VERIFIER = SignatureVerifier(max_age=300, max_future=60)
PROPERTY_SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAFE_REPLACEMENTS = string.ascii_letters + string.digits

methods = st.one_of(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]), st.from_regex(r"\A[A-Z]{3,10}\Z"))
segments = st.text(min_size=1, max_size=12).map(lambda text: quote(text, safe=""))
paths = st.lists(segments, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts))
queries = st.one_of(
    st.just(""),
    st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=12)), min_size=1, max_size=4).map(urlencode),
)
bodies = st.binary(max_size=512)


def _target(path: str, query: str) -> str:
    return path + ("?" + query if query else "")


def _verify(method: str, target: str, headers: dict[str, str], body: bytes) -> None:
    """The server's order: profile, digest over the received bytes, then the library's check."""
    signature_input = parse_signature_input(headers)
    assert signature_input.key_id == DEVICE.device_id
    check_content_digest(headers, body)
    VERIFIER.verify(RequestView(method=method, target=target, headers=headers, body=body),
                    signature_input.key_id, DEVICE.key.public_key())


def _change_one_char(text: str, index: int, replacement: str) -> str:
    """``text`` with the character at ``index`` replaced by a different, URL-safe one."""
    if replacement == text[index]:
        replacement = "x" if text[index] != "x" else "y"
    return text[:index] + replacement + text[index + 1:]


# (a) signing -------------------------------------------------------------------------------------
@PROPERTY_SETTINGS
@given(method=methods, path=paths, query=queries, body=bodies)
def test_a_signed_request_verifies(method: str, path: str, query: str, body: bytes) -> None:
    target = _target(path, query)
    headers = DEVICE.sign(method, target, body, e2e=E2E_HEADER)
    _verify(method, target, headers, body)


@PROPERTY_SETTINGS
@given(method=methods, path=paths, query=queries, body=bodies.filter(bool), data=st.data())
def test_any_changed_body_byte_is_refused(method: str, path: str, query: str, body: bytes, data: st.DataObject) -> None:
    target = _target(path, query)
    headers = DEVICE.sign(method, target, body, e2e=E2E_HEADER)
    index = data.draw(st.integers(0, len(body) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    tampered = body[:index] + bytes([body[index] ^ flip]) + body[index + 1:]
    with pytest.raises(SignatureError) as refused:
        _verify(method, target, headers, tampered)
    assert refused.value.code == "digest_mismatch"
    # An attacker who also recomputes Content-Digest breaks the signature, which covers it.
    rehashed = {**headers, "Content-Digest": content_digest(tampered)}
    with pytest.raises(SignatureError) as refused:
        _verify(method, target, rehashed, tampered)
    assert refused.value.code == "signature_invalid"


@PROPERTY_SETTINGS
@given(method=methods, path=paths, query=queries, body=bodies, data=st.data())
def test_any_changed_path_byte_is_refused(method: str, path: str, query: str, body: bytes, data: st.DataObject) -> None:
    headers = DEVICE.sign(method, _target(path, query), body, e2e=E2E_HEADER)
    index = data.draw(st.integers(1, len(path) - 1), label="index")  # index 0 is the leading '/'
    tampered = _change_one_char(path, index, data.draw(st.sampled_from(SAFE_REPLACEMENTS), label="char"))
    assert tampered != path
    with pytest.raises(SignatureError) as refused:
        _verify(method, _target(tampered, query), headers, body)
    assert refused.value.code == "signature_invalid"


@PROPERTY_SETTINGS
@given(method=methods, path=paths, query=queries.filter(bool), body=bodies, data=st.data())
def test_any_changed_query_byte_is_refused(method: str, path: str, query: str, body: bytes, data: st.DataObject) -> None:
    headers = DEVICE.sign(method, _target(path, query), body, e2e=E2E_HEADER)
    index = data.draw(st.integers(0, len(query) - 1), label="index")
    tampered = _change_one_char(query, index, data.draw(st.sampled_from(SAFE_REPLACEMENTS), label="char"))
    with pytest.raises(SignatureError) as refused:
        _verify(method, _target(path, tampered), headers, body)
    assert refused.value.code == "signature_invalid"


@PROPERTY_SETTINGS
@given(path=paths, query=queries, body=bodies)
def test_dropping_or_adding_a_query_is_refused(path: str, query: str, body: bytes) -> None:
    headers = DEVICE.sign("GET", _target(path, query), body, e2e=E2E_HEADER)
    other = "" if query else "x=1"
    with pytest.raises(SignatureError) as refused:
        _verify("GET", _target(path, other), headers, body)
    assert refused.value.code == "signature_invalid"


@PROPERTY_SETTINGS
@given(method=methods, other=methods, path=paths, body=bodies)
def test_another_method_is_refused(method: str, other: str, path: str, body: bytes) -> None:
    assume(method != other)
    headers = DEVICE.sign(method, path, body, e2e=E2E_HEADER)
    with pytest.raises(SignatureError) as refused:
        _verify(other, path, headers, body)
    assert refused.value.code == "signature_invalid"


# (b) Content-Digest ------------------------------------------------------------------------------
@PROPERTY_SETTINGS
@given(body=bodies, other=bodies)
def test_content_digest_accepts_exactly_sha256_of_the_body(body: bytes, other: bytes) -> None:
    header = {"Content-Digest": content_digest(body)}
    check_content_digest(header, body)
    # Header names are case-insensitive, as they arrive from the ASGI server.
    check_content_digest({"content-digest": header["Content-Digest"]}, body)
    if other != body:
        with pytest.raises(SignatureError) as refused:
            check_content_digest(header, other)
        assert refused.value.code == "digest_mismatch"


@PROPERTY_SETTINGS
@given(body=bodies)
def test_content_digest_refuses_other_algorithms_and_missing_headers(body: bytes) -> None:
    sha512 = base64.b64encode(hashlib.sha512(body).digest()).decode()
    with pytest.raises(SignatureError) as refused:
        check_content_digest({"Content-Digest": f"sha-512=:{sha512}:"}, body)
    assert refused.value.code == "digest_mismatch"
    hex_digest = hashlib.sha256(body).hexdigest()  # right hash, wrong encoding (a string, not a byte sequence)
    with pytest.raises(SignatureError) as refused:
        check_content_digest({"Content-Digest": f'sha-256="{hex_digest}"'}, body)
    assert refused.value.code == "digest_mismatch"
    with pytest.raises(SignatureError) as refused:
        check_content_digest({}, body)
    assert refused.value.code == "digest_missing"


# (c) encryption envelope -------------------------------------------------------------------------
CIPHER = Cipher(new_data_key(), key_version=1)
names = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12)
row_ids = st.text(min_size=1, max_size=40)


@PROPERTY_SETTINGS
@given(text=st.text(max_size=2000), table=names, column=names, row_id=row_ids)
def test_seal_open_round_trips_any_text(text: str, table: str, column: str, row_id: str) -> None:
    sealed = CIPHER.seal(text, table=table, column=column, row_id=row_id)
    if len(text.encode("utf-8")) >= 16:  # never stored in the clear (short strings may appear by chance)
        assert text.encode("utf-8") not in sealed
    assert CIPHER.open(sealed, table=table, column=column, row_id=row_id) == text
    # Two seals of the same text differ (fresh nonce per write).
    assert CIPHER.seal(text, table=table, column=column, row_id=row_id) != sealed
    off = Cipher(None)
    assert off.open(off.seal(text, table=table, column=column, row_id=row_id), table=table, column=column, row_id=row_id) == text


@PROPERTY_SETTINGS
@given(text=st.text(max_size=300), table=names, column=names, row_id=row_ids, data=st.data())
def test_a_value_moved_to_another_row_column_or_table_does_not_open(text: str, table: str, column: str, row_id: str,
                                                                    data: st.DataObject) -> None:
    sealed = CIPHER.seal(text, table=table, column=column, row_id=row_id)
    where = data.draw(st.sampled_from(["table", "column", "row_id"]), label="which")
    place = {"table": table, "column": column, "row_id": row_id}
    new_value = data.draw((row_ids if where == "row_id" else names).filter(lambda v: v != place[where]), label="new")
    place[where] = new_value
    with pytest.raises(CryptoError):
        CIPHER.open(sealed, **place)


bindings = st.fixed_dictionaries({"conversation": row_ids, "role": st.sampled_from(["system", "user", "assistant"]),
                                   "seq": st.integers(1, 10**6), "parent": st.one_of(st.just(""), row_ids)})


@PROPERTY_SETTINGS
@given(text=st.text(max_size=300), row_id=row_ids, bound=bindings, data=st.data())
def test_a_message_with_any_bound_field_changed_does_not_open(text: str, row_id: str, bound: dict, data: st.DataObject) -> None:
    """A message is bound to its conversation, role, position and parent; changing any one of
    them (or dropping the binding) fails, and the unchanged binding opens."""
    sealed = CIPHER.seal(text, table="messages", column="content", row_id=row_id, bound=bound)
    assert CIPHER.open(sealed, table="messages", column="content", row_id=row_id, bound=dict(bound)) == text
    field = data.draw(st.sampled_from(["conversation", "role", "seq", "parent", "dropped"]), label="field")
    if field == "dropped":
        changed: dict | None = None
    else:
        other = {"conversation": row_ids, "role": st.sampled_from(["system", "user", "assistant"]), "seq": st.integers(1, 10**6),
                 "parent": st.one_of(st.just(""), row_ids)}  # its place in the tree; "" = a first message
        changed = {**bound, field: data.draw(other[field].filter(lambda v: v != bound[field]), label="new")}
    with pytest.raises(CryptoError):
        CIPHER.open(sealed, table="messages", column="content", row_id=row_id, bound=changed)


@PROPERTY_SETTINGS
@given(text=st.text(max_size=300), row_id=row_ids, data=st.data())
def test_any_flipped_byte_does_not_open(text: str, row_id: str, data: st.DataObject) -> None:
    sealed = CIPHER.seal(text, table="messages", column="content", row_id=row_id)
    index = data.draw(st.integers(0, len(sealed) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    tampered = sealed[:index] + bytes([sealed[index] ^ flip]) + sealed[index + 1:]
    with pytest.raises(CryptoError):
        CIPHER.open(tampered, table="messages", column="content", row_id=row_id)


@PROPERTY_SETTINGS
@given(text=st.text(max_size=300), row_id=row_ids, cut=st.integers(1, 64))
def test_a_truncated_envelope_or_another_key_does_not_open(text: str, row_id: str, cut: int) -> None:
    sealed = CIPHER.seal(text, table="messages", column="content", row_id=row_id)
    with pytest.raises(CryptoError):
        CIPHER.open(sealed[:-cut] if cut < len(sealed) else b"", table="messages", column="content", row_id=row_id)
    with pytest.raises(CryptoError):
        Cipher(new_data_key()).open(sealed, table="messages", column="content", row_id=row_id)
