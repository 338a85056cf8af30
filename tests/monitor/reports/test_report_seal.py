"""A report a vendor can check: the digest and the detached Ed25519 signature through
`availmon report` and `availmon report verify`, the evidence CSV, and the one-line refusals
(an empty month, a bad key, a file that is not a report)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from monitor.cli import main
from monitor.clock import FakeClock
from monitor.config import Settings, load
from monitor.reports.evidence import EVIDENCE_COLUMNS
from monitor.reports.schedule import ReportJob
from monitor.reports.seal import digest_of
from monitor.store import open_store
from probes.base import Outcome
from tests.monitor.reports.conftest import Feeder, Pattern, T

START = T("2026-05-10T00:00:00Z")


def _pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _config(tmp_path: Path, signing: str | None = 'signing_key = "file:key.pem"') -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[monitor]
vantage = "v1"
[store]
url = "sqlite:///{tmp_path / "availmon.db"}"
[report]
dir = "reports"
formats = ["json", "md"]
{signing or ""}
[[services]]
name = "mail"
[[services.probes]]
type = "http"
name = "api-1"
url = "http://127.0.0.1:1/"
attempts_per_second = 2
[[services.probes]]
type = "smtp"
name = "smtp-1"
host = "127.0.0.1"
attempts_per_second = 1
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    k = Ed25519PrivateKey.generate()
    (tmp_path / "key.pem").write_bytes(_pem(k))
    (tmp_path / "key.pem").chmod(0o600)
    return k


def _feed(settings: Settings) -> None:
    """May 2026: a 20 s API outage (5xx), a 5 s SMTP one (hangs), 10 s of it maintenance."""
    store = open_store(settings.store.url)
    try:
        Feeder(settings, store).run(
            START,
            START + 600,
            Pattern()
            .add("api", START + 100, START + 120, Outcome.SERVER_ERROR)
            .add("smtp", START + 300, START + 305, Outcome.TIMEOUT),
        )
        store.add_maintenance("mail", START + 110, START + 120, "window")
    finally:
        store.close()


@pytest.fixture
def config(tmp_path: Path, key: Ed25519PrivateKey) -> Iterator[Path]:
    path = _config(tmp_path)
    _feed(load(path))
    yield path


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_signed_report_verifies_and_any_change_is_found(
    tmp_path: Path, config: Path, key: Ed25519PrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "mail-2026-05.json"
    code, out, err = _cli(
        capsys, "report", "-c", str(config), "--month", "2026-05", "-o", str(report)
    )
    assert code == 0 and out == "", err
    sig = tmp_path / "mail-2026-05.json.sig"
    assert f"signature written to {sig}" in err
    code, pem, err = _cli(capsys, "report", "public-key", "-c", str(config))
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in pem and _pem(key).decode().splitlines()[1] not in pem + err
    public = tmp_path / "vendor.pem"
    public.write_text(pem)

    data = json.loads(report.read_text())
    assert data["signature"]["algorithm"] == "ed25519"
    assert data["digest"]["value"] == digest_of(data)
    code, out, err = _cli(capsys, "report", "verify", str(report), "--public-key", str(public))
    assert (code, err) == (0, "")
    assert out.count("\n") == 1 and out.startswith(
        f"{report}: OK: sha256 {data['digest']['value']}"
    )
    assert "signature" in out and data["signature"]["fingerprint"] in out
    # without --public-key: the key the report names, said to be compared
    code, out, _ = _cli(capsys, "report", "verify", str(report))
    assert code == 0 and "named in the report" in out

    # one unavailable second fewer, digest left: the digest no longer matches
    forged = dict(data, unavailable_seconds={**data["unavailable_seconds"], "service": 14})
    report.write_text(json.dumps(forged, indent=2))
    code, out, err = _cli(capsys, "report", "verify", str(report), "--public-key", str(public))
    assert code == 1 and err == "" and out.count("\n") == 1
    assert "MISMATCH: the digest of mail 2026-05" in out
    # the digest recomputed too: now the signature is not the key's
    forged["digest"] = {**data["digest"], "value": digest_of(forged)}
    report.write_text(json.dumps(forged))
    code, out, _ = _cli(capsys, "report", "verify", str(report), "--public-key", str(public))
    assert code == 1 and "MISMATCH: the signature" in out
    # the true report, checked against another key: refused
    report.write_text(json.dumps(data))
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    code, out, _ = _cli(capsys, "report", "verify", str(report), "--public-key", str(other))
    assert code == 1 and "MISMATCH" in out
    code, out, _ = _cli(capsys, "report", "verify", str(report), "--public-key", str(public))
    assert code == 0
    # a signed report without its .sig: the digest checked, the signature said unchecked
    sig.unlink()
    code, out, _ = _cli(capsys, "report", "verify", str(report))
    assert code == 0 and "signature not checked (the report is signed" in out


def test_an_unsigned_report_verifies_its_digest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, signing=None)
    _feed(load(config))
    code, text, _ = _cli(capsys, "report", "-c", str(config), "--month", "2026-05")
    assert code == 0
    data = json.loads(text)
    assert data["signature"] is None
    path = tmp_path / "r.json"
    path.write_text(text)
    code, out, _ = _cli(capsys, "report", "verify", str(path))
    digest = data["digest"]["value"]
    assert code == 0
    assert out == f"{path}: OK: sha256 {digest} matches; not signed (no signature checked)\n"
    path.write_text(text.replace('"met": true', '"met": false'))
    code, out, _ = _cli(capsys, "report", "verify", str(path))
    assert code == 1 and "MISMATCH" in out
    # every format prints the digest of its build's JSON report (the monthly job renders
    # them all from one build: test_the_monthly_job_signs_what_it_writes...)
    for fmt in ("md", "csv", "html"):
        code, shown, _ = _cli(
            capsys, "report", "-c", str(config), "--month", "2026-05", "--format", fmt
        )
        assert code == 0 and re.search(r"\b[0-9a-f]{64}\b", shown), fmt


def test_every_format_rendered_from_the_json_file_shows_its_digest(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.json"
    assert main(["report", "-c", str(config), "--month", "2026-05", "-o", str(report)]) == 0
    digest = json.loads(report.read_text())["digest"]["value"]
    for fmt in ("html", "md", "csv", "json"):
        code, shown, _ = _cli(capsys, "report", "--from", str(report), "--format", fmt)
        assert code == 0 and digest in shown, fmt
    code, again, _ = _cli(capsys, "report", "--from", str(report), "--format", "json")
    assert json.loads(again) == json.loads(report.read_text())
    # a changed file is refused, not rendered with a digest that no longer holds
    report.write_text(report.read_text().replace('"met": true', '"met": false'))
    code, out, err = _cli(capsys, "report", "--from", str(report), "--format", "html")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "the digest of mail 2026-05 does not match" in err
    code, out, err = _cli(capsys, "report", "--from", str(report), "--month", "2026-05")
    assert code == 2 and "--month: not with --from" in err


def test_the_evidence_csv_holds_every_attempt_of_the_counted_seconds(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "evidence.csv"
    code, text, err = _cli(
        capsys, "report", "-c", str(config), "--month", "2026-05", "--evidence", str(out)
    )
    assert code == 0, err
    report = json.loads(text)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert tuple(rows[0]) == EVIDENCE_COLUMNS
    # 10 API seconds counted (the other 10 in maintenance) × 2 attempts, 5 SMTP × 1
    assert report["unavailable_seconds"]["service"] == 15
    assert len(rows) == 10 * 2 + 5
    assert f"25 attempts of 15 unavailable seconds written to {out}" in err
    assert sorted({int(r["second"]) - START for r in rows}) == [
        *range(100, 110),
        *range(300, 305),
    ]
    first = next(r for r in rows if r["channel"] == "api")
    assert first["attempt_id"] == f"api-1:{START + 100}:0@v1"
    assert (first["outcome"], first["status"], first["vantage"], first["probe"]) == (
        "server_error",
        "503",
        "v1",
        "api-1",
    )
    assert first["time"] == "2026-05-10T00:01:40+00:00"
    assert json.loads(first["detail"]) == {"status": 503}
    hung = [r for r in rows if r["channel"] == "smtp"]
    assert {(r["outcome"], r["error"], r["stage"]) for r in hung} == {
        ("timeout", "SMTPTimeoutError", "banner")
    }
    # every attempt id the report quotes is in the export
    quoted = {e["attempt_id"] for o in report["outages"] for e in o["evidence"]}
    assert quoted and quoted <= {r["attempt_id"] for r in rows}


def test_an_empty_month_is_refused_with_one_line(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for month in ("2026-04", "2027-01"):
        out = tmp_path / f"{month}.json"
        code, text, err = _cli(
            capsys, "report", "-c", str(config), "--month", month, "-o", str(out)
        )
        assert (code, text) == (2, "")
        assert (
            err == f"availmon: error: no second of mail is stored for {month}: nothing to report\n"
        )
        assert not out.exists() and not out.with_name(out.name + ".sig").exists()


async def test_the_monthly_job_signs_what_it_writes_and_skips_an_empty_month(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load(config)
    store = open_store(settings.store.url)
    try:
        job = ReportJob(settings, store, FakeClock(T("2026-06-01T00:05:00Z")), send_email=False)
        paths = await job.run_month("2026-05")
        assert await job.run_month("2026-04") == []
    finally:
        store.close()
    names = sorted(p.name for p in paths)
    assert names == [
        "availmon-2026-05-mail.json",
        "availmon-2026-05-mail.json.sig",
        "availmon-2026-05-mail.md",
    ]
    json_path = next(p for p in paths if p.suffix == ".json")
    code, out, _ = _cli(capsys, "report", "verify", str(json_path))
    assert code == 0 and "signature" in out and "valid" in out
    # the Markdown of the same build prints the JSON's digest
    digest = json.loads(json_path.read_text())["digest"]["value"]
    assert f"| SHA-256 of the JSON report | {digest} |" in json_path.with_suffix(".md").read_text()
    assert not (tmp_path / "reports" / "2026-04").exists()


#: id → (what to write first, the arguments, the line expected)
BAD_INPUT: dict[str, tuple[str | None, str, str]] = {
    "missing": (
        None,
        "report verify {tmp}/missing.json",
        "FILE.json: cannot read {tmp}/missing.json: No such file or directory",
    ),
    "not-json": ("notjson", "report verify {tmp}/r.json", "{tmp}/r.json: not a JSON report: "),
    "no-digest": (
        "nodigest",
        "report verify {tmp}/r.json",
        "{tmp}/r.json: not an availmon report with a digest",
    ),
    "bad-signature": (
        "badsig",
        "report verify {tmp}/r.json --signature {tmp}/bad.sig",
        "{tmp}/bad.sig: not a signature (base64 of 64 bytes)",
    ),
    "bad-public-key": (
        "badpub",
        "report verify {tmp}/r.json --signature {tmp}/r.json.sig --public-key {tmp}/bad.pem",
        "{tmp}/bad.pem: not an Ed25519 public key (PEM)",
    ),
    "no-month": (None, "report -c {cfg}", "the following arguments are required: --month"),
    "sign-md": (
        None,
        "report -c {cfg} --month 2026-05 --format md --signature {tmp}/x.sig",
        "--signature: only the JSON report is signed (--format json)",
    ),
}


@pytest.mark.parametrize(("setup", "args", "message"), BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path,
    config: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str | None,
    args: str,
    message: str,
) -> None:
    report = tmp_path / "r.json"
    if setup == "notjson":
        report.write_text("{not json")
    elif setup == "nodigest":
        report.write_text('{"service": "mail"}')
    elif setup in ("badsig", "badpub"):
        assert main(["report", "-c", str(config), "--month", "2026-05", "-o", str(report)]) == 0
        (tmp_path / "bad.sig").write_text("not base64!\n")
        (tmp_path / "bad.pem").write_text(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
    capsys.readouterr()
    fill = {"tmp": str(tmp_path), "cfg": str(config)}
    code, out, err = _cli(capsys, *(a.format(**fill) for a in args.split()))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("availmon: error: "), err
    assert message.format(**fill) in err


@pytest.mark.parametrize(
    ("key_text", "message"),
    [
        ("literal", "report.signing_key: must be a reference"),
        ("rsa", "report.signing_key: an Ed25519 key is needed"),
        ("garbage", "report.signing_key: not an unencrypted PEM private key"),
        ("missing", "report.signing_key: cannot read"),
    ],
)
def test_a_bad_signing_key_is_one_line_naming_the_field_never_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key_text: str, message: str
) -> None:
    rsa_pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    signing = {
        "literal": 'signing_key = "-----BEGIN PRIVATE KEY-----"',
        "rsa": 'signing_key = "file:key.pem"',
        "garbage": 'signing_key = "file:key.pem"',
        "missing": 'signing_key = "file:absent.pem"',
    }[key_text]
    if key_text == "rsa":
        (tmp_path / "key.pem").write_bytes(rsa_pem)
    elif key_text == "garbage":
        (tmp_path / "key.pem").write_text(
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n"
        )
    config = _config(tmp_path, signing=signing)
    commands = [["check-config", "-c", str(config)], ["report", "public-key", "-c", str(config)]]
    if key_text != "literal":
        _feed(load(config))
        commands.append(["report", "-c", str(config), "--month", "2026-05"])
    for command in commands:
        code, out, err = _cli(capsys, *command)
        assert (code, out) == (2, ""), command
        assert err.count("\n") == 1 and err.startswith("availmon: error: "), (command, err)
        assert message in err, (command, err)
        assert "c2VjcmV0" not in err and not re.search(r"MII[A-Za-z0-9+/]{20}", err)
