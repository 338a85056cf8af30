"""The report's integrity: a SHA-256 digest any reader can recompute, and an optional
detached Ed25519 signature the vendor can check (`availmon report verify`).

**Canonical bytes** of a report: the report's JSON object without its ``digest`` and
``signature`` keys, serialised with sorted keys, separators ``,`` and ``:`` (no
whitespace), non-ASCII characters as themselves, encoded in UTF-8 — Python's
``json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()``.
Floats are written as Python writes them (the shortest repr that reads back the same).

**Digest**: ``digest.value`` is the hex SHA-256 of those bytes. Every format shows it; the
JSON file is the document it is the digest of (reading the file and recomputing it needs
nothing but the file).

**Signature** (with ``[report] signing_key``, an Ed25519 private key in PEM from an
``env:``/``file:`` reference): Ed25519 over the canonical bytes of the *document* — one
report's canonical bytes, or for a document of several reports (a JSON list) the canonical
JSON of the list of their canonical objects. It is written apart, base64 on one line, in
``FILE.json.sig``; the report names the public key (``signature.public_key``, raw 32 bytes
in base64, and its fingerprint) so a reader knows which key to ask the monitor's owner for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography import exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import SecretStr

from monitor.schema import SecretRef

#: the keys the canonical bytes leave out (they describe the bytes)
SEAL_KEYS = ("digest", "signature")
CANONICAL = (
    "JSON of the report without digest and signature: keys sorted, separators ',' and ':', "
    "UTF-8, non-ASCII as is"
)


class SealError(ValueError):
    """A signing or public key that cannot be used; str() is one line without the key."""


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _bare(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in SEAL_KEYS}


def digest_of(report: dict[str, Any]) -> str:
    """The hex SHA-256 of the report's canonical bytes."""
    return hashlib.sha256(canonical(_bare(report))).hexdigest()


def signed_bytes(document: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """What the signature signs: a report's canonical bytes, or a list's."""
    if isinstance(document, list):
        return canonical([_bare(r) for r in document])
    return canonical(_bare(document))


def fingerprint(public: ed25519.Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _key_text(ref: SecretStr) -> str:
    """The whole PEM named by the reference (a `file:` secret's first line is not enough)."""
    reference = ref.reference if isinstance(ref, SecretRef) else None
    if reference is None:
        raise SealError("report.signing_key: must be an env: or file: reference")
    if reference.startswith("file:"):
        path = Path(reference[5:]).expanduser()
        try:
            return path.read_text(encoding="ascii")
        except OSError as exc:
            raise SealError(f"report.signing_key: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SealError(f"report.signing_key: {path} is not a PEM file") from None
    name = reference[4:]
    if name not in os.environ:
        raise SealError(f"report.signing_key: environment variable {name} is not set")
    return os.environ[name].replace("\\n", "\n")


def load_signing_key(ref: SecretStr) -> ed25519.Ed25519PrivateKey:
    """The Ed25519 private key of ``report.signing_key`` (PEM, PKCS#8, unencrypted)."""
    text = _key_text(ref)
    try:
        key = serialization.load_pem_private_key(text.encode("ascii", "replace"), password=None)
    except (ValueError, TypeError, exceptions.UnsupportedAlgorithm):
        raise SealError(
            "report.signing_key: not an unencrypted PEM private key (make one with "
            "`openssl genpkey -algorithm ed25519 -out key.pem`)"
        ) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise SealError(f"report.signing_key: an Ed25519 key is needed, not {key_kind(key)}")
    return key


def key_kind(key: object) -> str:
    return type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace("PublicKey", "")


def signature_info(key: ed25519.Ed25519PrivateKey | None) -> dict[str, Any] | None:
    """What the report says of its signature: which key (None: not signed)."""
    if key is None:
        return None
    public = key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "algorithm": "ed25519",
        "signed": "the canonical bytes (as for the digest), detached in FILE.json.sig",
        "public_key": base64.b64encode(raw).decode("ascii"),
        "fingerprint": fingerprint(public),
    }


def seal(report: dict[str, Any], key: ed25519.Ed25519PrivateKey | None) -> dict[str, Any]:
    """Set the report's ``digest`` and ``signature`` (last among its keys)."""
    report["digest"] = None
    report["signature"] = signature_info(key)
    report["digest"] = {"algorithm": "sha256", "canonical": CANONICAL, "value": digest_of(report)}
    return report


def sign(document: dict[str, Any] | list[dict[str, Any]], key: ed25519.Ed25519PrivateKey) -> str:
    """The detached signature of a document: base64 on one line, with a newline."""
    return base64.b64encode(key.sign(signed_bytes(document))).decode("ascii") + "\n"


def public_pem(key: ed25519.Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def load_public_key(data: bytes, origin: str) -> ed25519.Ed25519PublicKey:
    """A PEM public key (or the raw 32 bytes in base64, as the report names it)."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            raw = base64.b64decode(data.strip(), validate=True)
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError, exceptions.UnsupportedAlgorithm, binascii.Error):
        raise SealError(f"{origin}: not an Ed25519 public key (PEM)") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise SealError(f"{origin}: an Ed25519 key is needed, not {key_kind(key)}")
    return key


def read_signature(data: bytes, origin: str) -> bytes:
    """A detached signature: base64 on one line (as `sign` writes it), or the raw 64 bytes."""
    if len(data) == 64:
        return data
    try:
        sig = base64.b64decode(data.strip(), validate=True)
    except (ValueError, binascii.Error):
        raise SealError(f"{origin}: not a signature (base64 of 64 bytes)") from None
    if len(sig) != 64:
        raise SealError(f"{origin}: not a signature (base64 of 64 bytes)")
    return sig


def verify_signature(
    document: dict[str, Any] | list[dict[str, Any]],
    signature: bytes,
    public: ed25519.Ed25519PublicKey,
) -> bool:
    try:
        public.verify(signature, signed_bytes(document))
    except exceptions.InvalidSignature:
        return False
    return True
