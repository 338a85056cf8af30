"""The `availmon` command (also `python -m monitor`).

Every bad input (argument, config, month, incident id) ends with one line on stderr,
``availmon: error: <what and where>``, and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo

from alerting.model import IncidentState, Severity
from monitor import __version__
from monitor.config import Settings, load
from monitor.schema import ConfigError

EXIT_USAGE = 2
#: the config `availmon run` writes when it is given none (monitor/demo.py run_embedded)
EMBEDDED_CONFIG = "availmon-data/config.toml"


class UsageError(Exception):
    """Bad input from the command line; str() is the one line to print."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"availmon: error: {message} (see: {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def _month(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        raise argparse.ArgumentTypeError(f"expected YYYY-MM, got {value!r}")
    return value


def _positive(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if f <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
    return f


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="availmon", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--version", action="version", version=f"availmon {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_config(sp: argparse.ArgumentParser, required: bool = True) -> None:
        sp.add_argument(
            "-c",
            "--config",
            default=os.environ.get("AVAILMON_CONFIG"),
            help="config file (TOML); default: env AVAILMON_CONFIG, else "
            f"{EMBEDDED_CONFIG} (what `availmon run` without one writes) if it exists",
        )

    def also_config(*parsers: argparse.ArgumentParser) -> None:
        """`-c` after the action too (`availmon incidents list -c FILE`); SUPPRESS keeps
        the value given before it when it is not given again."""
        for p in parsers:
            p.add_argument("-c", "--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    run = sub.add_parser(
        "run", help="run the daemon (no -c: embedded defaults against the built-in simulator)"
    )
    with_config(run, required=False)
    run.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=None,
        help="log lines as text, or one JSON object a line (default: monitor.log_format)",
    )

    demo = sub.add_parser(
        "demo", help="simulated platform + daemon + scripted outage, then a summary"
    )
    demo.add_argument(
        "--duration", type=_positive, default=60.0, help="seconds of scenario (default 60)"
    )
    demo.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object last"
    )
    demo.add_argument(
        "--workdir", type=Path, default=None, help="folder for config, store, reports"
    )
    demo.add_argument(
        "--scenario", type=Path, default=None, help="scenario TOML (default: built-in)"
    )
    demo.add_argument("--no-view", action="store_true", help="no live terminal view")

    sim = sub.add_parser("simulate", help="run only the simulated email platform (HTTP API + SMTP)")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--http-port", type=_port, default=8025)
    sim.add_argument("--smtp-port", type=_port, default=2525)
    sim.add_argument("--no-tls", action="store_true", help="do not offer STARTTLS")
    sim.add_argument("--api-key", default=None, help="require this API key (Authorization header)")
    sim.add_argument("--smtp-password", default=None, help="require SMTP AUTH with this password")
    sim.add_argument("--scenario", type=Path, default=None, help="scenario TOML to play")
    sim.add_argument(
        "--dns-port", type=_port, default=0, help="the DNSBL zone's port, UDP and TCP (0: any free)"
    )

    chk = sub.add_parser("check-config", help="validate a config file")
    with_config(chk)

    rep = sub.add_parser(
        "report",
        help="monthly availability report",
        description="The monthly report (--month), or `report verify FILE.json` to check a "
        "report's digest and signature, or `report public-key` to print the signing key's "
        "public half for the vendor.",
    )
    with_config(rep)
    rep.add_argument("--service", default=None, help="one service (default: all)")
    rep.add_argument("--month", type=_month, default=None, help="YYYY-MM in the report time zone")
    rep.add_argument("--format", choices=["json", "csv", "md", "html"], default="json")
    rep.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    rep.add_argument(
        "--from",
        dest="source",
        type=Path,
        default=None,
        metavar="FILE.json",
        help="render a JSON report written before (its digest checked) instead of building "
        "one: the HTML, Markdown or CSV then show that file's digest",
    )
    rep.add_argument(
        "--evidence",
        type=Path,
        default=None,
        metavar="FILE.csv",
        help="also write every stored attempt of the month's unavailable seconds as CSV",
    )
    rep.add_argument(
        "--signature",
        type=Path,
        default=None,
        metavar="FILE.sig",
        help="where to write the JSON report's detached signature (report.signing_key; "
        "default: the output file + .sig)",
    )
    rsub = rep.add_subparsers(dest="action", parser_class=_Parser, metavar="{verify,public-key}")
    ver = rsub.add_parser(
        "verify",
        help="check a JSON report's SHA-256 digest and, if signed, its Ed25519 signature",
        description="One line: OK, or what does not match. Exit 0 when everything checked "
        "matches, 1 on a mismatch, 2 on a file that cannot be read.",
    )
    ver.add_argument("file", type=Path, metavar="FILE.json")
    ver.add_argument(
        "--signature", dest="verify_signature", type=Path, default=None, metavar="FILE.sig",
        help="the detached signature (default: FILE.json.sig when it exists)",
    )  # fmt: skip
    ver.add_argument(
        "--public-key", type=Path, default=None, metavar="FILE.pem",
        help="the signer's Ed25519 public key (default: the one the report names)",
    )  # fmt: skip
    pub = rsub.add_parser(
        "public-key", help="print the public key of report.signing_key (PEM), for the vendor"
    )
    pub.add_argument(
        "-c", "--config", default=argparse.SUPPRESS, help="config file (as for `report`)"
    )

    exp = sub.add_parser(
        "export",
        help="the SLO as OpenSLO v1 or Sloth prometheus/v1 YAML",
        description="Write each service's SLO (slo_target_percent, the seconds not "
        "unavailable of every second but maintenance) for an SLO tool: `openslo` one OpenSLO "
        "v1 SLO a service (Timeslices of 1 s, a calendar month in report.timezone), `sloth` "
        "one Sloth prometheus/v1 spec a service. Several documents are separated by ---.",
    )
    with_config(exp)
    exp.add_argument("format", choices=["openslo", "sloth"])
    exp.add_argument("--service", default=None, help="one service (default: all)")
    exp.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")

    mig = sub.add_parser(
        "migrate",
        help="copy a whole history into a new store (e.g. SQLite to PostgreSQL)",
        description="Copy every verdict run, attempt count and evidence, incident with its "
        "timeline, outbox row and maintenance window into an empty store, ids included, and "
        "verify the row counts. A PostgreSQL password comes from the URL or libpq "
        "(PGPASSWORD, a passfile).",
    )
    mig.add_argument("--from", dest="source", required=True, metavar="URL", help="sqlite:///…")
    mig.add_argument("--to", dest="target", required=True, metavar="URL", help="postgresql://…")

    inc = sub.add_parser("incidents", help="list, show, acknowledge and resolve incidents")
    with_config(inc)
    isub = inc.add_subparsers(dest="action", required=True, parser_class=_Parser)
    il = isub.add_parser("list")
    il.add_argument("--service")
    il.add_argument("--state", choices=list(IncidentState))
    il.add_argument("--severity", choices=list(Severity))
    il.add_argument("--json", action="store_true")
    ish = isub.add_parser("show")
    ish.add_argument("id", type=int)
    ish.add_argument("--json", action="store_true", help="the whole record as JSON")
    ia = isub.add_parser("ack")
    ia.add_argument("id", type=int)
    ia.add_argument("--by", required=True)
    ir = isub.add_parser("resolve")
    ir.add_argument("id", type=int)
    ir.add_argument("--by", required=True)
    ir.add_argument("--note", default="")
    inote = isub.add_parser("note")
    inote.add_argument("id", type=int)
    inote.add_argument("--by", required=True)
    inote.add_argument("--text", required=True)
    icase = isub.add_parser("case", help="the Sev-1 case sheet of a Critical Issue")
    icase.add_argument("id", type=int)
    icase.add_argument("--json", action="store_true")
    icb = isub.add_parser(
        "callback", help="record the vendor's callback on a Critical Issue (not the on-call ack)"
    )
    icb.add_argument("id", type=int)
    icb.add_argument("--by", required=True, help="who called back from the vendor")
    icb.add_argument("--at", help="when (ISO-8601 with offset, or epoch); default now")
    icb.add_argument("--note", default="")

    also_config(il, ish, ia, ir, inote, icase, icb)

    ntf = sub.add_parser("notify", help="prove the paging path: a test through each notifier")
    with_config(ntf)
    nsub = ntf.add_subparsers(dest="action", required=True, parser_class=_Parser)
    nt = nsub.add_parser("test", help="send a clearly marked test notification")
    nt.add_argument(
        "--notifier", action="append", default=[], metavar="NAME", help="only this one (repeat)"
    )
    also_config(nt)

    mnt = sub.add_parser(
        "maintenance", help="scheduled maintenance windows (excluded from the SLA)"
    )
    with_config(mnt)
    msub = mnt.add_subparsers(dest="action", required=True, parser_class=_Parser)
    ma = msub.add_parser("add")
    ma.add_argument("--service", default="*", help="service name, or * for all (default)")
    ma.add_argument("--start", required=True, help="ISO-8601 or epoch seconds")
    ma.add_argument("--end", required=True, help="ISO-8601 or epoch seconds")
    ma.add_argument("--reason", default="")
    ml = msub.add_parser("list")
    ml.add_argument("--service", default=None)
    mr = msub.add_parser("remove")
    mr.add_argument("id", type=int)
    also_config(ma, ml, mr)
    return p


def _settings(args: argparse.Namespace) -> Settings:
    if not args.config and Path(EMBEDDED_CONFIG).is_file():
        args.config = EMBEDDED_CONFIG  # the no-config `availmon run` in this folder
    if not args.config:
        raise UsageError(
            "--config: a config file is required (or set AVAILMON_CONFIG; `availmon run` "
            f"without one writes {EMBEDDED_CONFIG})"
        )
    return load(args.config)


def _checked_settings(args: argparse.Namespace) -> Settings:
    """The config as `run` needs it: parsed, then every part constructed (the same checks
    for `run` and `check-config`, monitor/preflight.py)."""
    from monitor.preflight import preflight, secret_warnings

    settings = _settings(args)
    asyncio.run(preflight(settings, str(args.config)))
    for warning in secret_warnings(settings, str(args.config)):
        sys.stderr.write(f"availmon: warning: {warning}\n")
    return settings


def _setup_logging(level: str = "INFO", fmt: str | None = None) -> None:
    from monitor.logs import setup

    setup(level, "json" if fmt == "json" else "text")


def _open_store(settings: Settings) -> Any:
    from monitor.store import open_store

    return open_store(settings.store.url, settings.store.password_value())


# --------------------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace) -> int:
    from monitor.daemon import Daemon

    if not args.config:
        from monitor.demo import run_embedded

        _setup_logging(fmt=args.log_format)
        return asyncio.run(run_embedded())
    settings = _checked_settings(args)
    _setup_logging(settings.monitor.log_level, args.log_format or settings.monitor.log_format)
    asyncio.run(Daemon(settings, config_path=args.config).run())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from monitor.demo import run_demo

    if not args.json:
        _setup_logging("WARNING")
    return asyncio.run(
        run_demo(
            duration=args.duration,
            as_json=args.json,
            workdir=args.workdir,
            scenario_path=args.scenario,
            view=not args.no_view and not args.json,
        )
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    from monitor.simulator import load_scenario, serve

    _setup_logging()
    scenario = None
    if args.scenario is not None:
        try:
            scenario = load_scenario(args.scenario)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--scenario: {exc}") from None
    try:
        asyncio.run(
            serve(
                args.host,
                args.http_port,
                args.smtp_port,
                tls=not args.no_tls,
                api_key=args.api_key,
                smtp_password=args.smtp_password,
                scenario=scenario,
                dns_port=args.dns_port,
            )
        )
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}: {exc.strerror}") from None
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    s = _checked_settings(args)
    probes = sum(len(x.probes) for x in s.services)
    print(
        f"{args.config}: ok ({len(s.services)} services, {probes} probes, "
        f"{len(s.notifiers)} notifiers, vantage {s.monitor.vantage})"
    )
    # where the data will go, resolved: a relative path is the config file's folder's
    store = s.store.url
    if store.startswith("sqlite:///") and store != "sqlite:///:memory:":
        store = str(Path(store[len("sqlite:///") :]).resolve())
    print(f"  store:   {store}")
    print(f"  reports: {Path(s.report.dir).resolve()}")
    for svc in s.services:
        for b in svc.blocklists:
            if b.enabled:
                print(
                    f"  blocklists: {svc.name}/{b.name}: {len(b.pairs())} queries every "
                    f"{b.interval_seconds:g} s to {b.resolver}"
                    + (" (Spamhaus DQS)" if b.dqs_key is not None else "")
                )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    if args.action == "verify":
        return _report_verify(args)
    if args.action == "public-key":
        return _report_public_key(args)
    if args.source is not None:
        return _report_from(args)
    if args.month is None:
        raise UsageError("the following arguments are required: --month")
    from monitor.reports import build_report, render
    from monitor.reports.seal import load_signing_key, sign

    s = _settings(args)
    names = [args.service] if args.service else [x.name for x in s.services]
    for n in names:
        if n not in [x.name for x in s.services]:
            raise UsageError(f"--service: unknown service {n!r}")
    if args.signature is not None and s.report.signing_key is None:
        raise UsageError("--signature: no report.signing_key is configured")
    if args.signature is not None and args.format != "json":
        raise UsageError("--signature: only the JSON report is signed (--format json)")
    store = _open_store(s)
    try:
        try:
            reports = [
                build_report(store, s, n, args.month, vantage=s.monitor.vantage) for n in names
            ]
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if args.evidence is not None:
            _write_evidence(store, reports, args.evidence, s.monitor.vantage)
    finally:
        store.close()
    text = render(reports, args.format)
    if args.output:
        _write_file(args.output, text, "-o")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    key = None if s.report.signing_key is None else load_signing_key(s.report.signing_key)
    if key is not None and args.format == "json":
        target = args.signature or (
            args.output.with_name(args.output.name + ".sig") if args.output else None
        )
        document = json.loads(text)
        if target is None:
            sys.stderr.write("availmon: no signature written (give -o or --signature)\n")
        else:
            _write_file(target, sign(document, key), "--signature")
            sys.stderr.write(f"availmon: signature written to {target}\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from monitor.export import openslo_documents, sloth_specs, to_yaml

    s = _settings(args)
    names = [args.service] if args.service else None
    build = openslo_documents if args.format == "openslo" else sloth_specs
    try:
        text = to_yaml(build(s, names))
    except ValueError as exc:
        raise UsageError(f"--service: {exc}" if args.service else str(exc)) from None
    if args.output:
        _write_file(args.output, text, "-o")
    else:
        sys.stdout.write(text)
    return 0


def _report_from(args: argparse.Namespace) -> int:
    """`availmon report --from FILE.json --format html`: the same report in another format,
    so that every format of a claim shows the digest of the one JSON file."""
    from monitor.reports import REPORT_KEYS, render
    from monitor.reports.seal import digest_of

    for flag, value in (("--month", args.month), ("--evidence", args.evidence)):
        if value is not None:
            raise UsageError(f"{flag}: not with --from (the report is the file's)")
    if args.signature is not None:
        raise UsageError("--signature: not with --from (sign when the report is made)")
    path: Path = args.source
    _, reports = _json_reports(path, "--from", "--from: ")
    for r in reports:
        missing = [k for k in REPORT_KEYS if not isinstance(r, dict) or k not in r]
        if missing:
            raise UsageError(f"--from: {path}: not a report of this availmon (no {missing[0]})")
        if not isinstance(r["digest"], dict) or digest_of(r) != r["digest"].get("value"):
            raise UsageError(
                f"--from: {path}: the digest of {r['service']} {r['month']} does not match: "
                "changed after it was made (availmon report verify says more)"
            )
    text = render(reports, args.format)
    if args.output:
        _write_file(args.output, text, "-o")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _write_file(path: Path, text: str, flag: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{flag}: cannot write {path}: {exc.strerror}") from None


def _write_evidence(store: Any, reports: list[dict[str, Any]], path: Path, vantage: str) -> None:
    from monitor.reports.evidence import write_evidence_csv

    try:
        with path.open("w", encoding="utf-8", newline="") as out:
            rows, seconds = write_evidence_csv(store, reports, out, vantage)
    except OSError as exc:
        raise UsageError(f"--evidence: cannot write {path}: {exc.strerror}") from None
    sys.stderr.write(
        f"availmon: evidence: {rows} attempts of {seconds} unavailable seconds written to {path}\n"
    )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{what}: cannot read {path}: {exc.strerror}") from None


def _report_verify(args: argparse.Namespace) -> int:
    """`availmon report verify FILE.json`: one line, exit 0 (OK), 1 (mismatch), 2 (bad input)."""
    from monitor.reports.seal import (
        SealError,
        digest_of,
        fingerprint,
        load_public_key,
        read_signature,
        verify_signature,
    )

    path: Path = args.file
    document, reports = _json_reports(path, "FILE.json", "")
    if not reports or not all(
        isinstance(r, dict) and isinstance(r.get("digest"), dict) for r in reports
    ):
        raise UsageError(f"{path}: not an availmon report with a digest")
    for r in reports:
        stated = r["digest"].get("value")
        if digest_of(r) != stated:
            print(
                f"{path}: MISMATCH: the digest of {r.get('service')} {r.get('month')} is "
                f"{digest_of(r)}, the report states {stated}: it was changed after it was made"
            )
            return 1
    digests = ", ".join(str(r["digest"]["value"]) for r in reports)
    sig_path: Path | None = args.verify_signature
    if sig_path is None:
        default = path.with_name(path.name + ".sig")
        sig_path = default if default.exists() else None
    if sig_path is None:
        if args.public_key is not None:
            raise UsageError(f"--signature: no signature given and no {path.name}.sig beside it")
        if any(r.get("signature") for r in reports):
            print(
                f"{path}: OK: sha256 {digests} matches; signature not checked (the report is "
                f"signed: give --signature, default {path.name}.sig beside it)"
            )
        else:
            print(f"{path}: OK: sha256 {digests} matches; not signed (no signature checked)")
        return 0
    try:
        signature = read_signature(_read(sig_path, "--signature"), str(sig_path))
        if args.public_key is not None:
            public = load_public_key(_read(args.public_key, "--public-key"), str(args.public_key))
            whose = f"key {fingerprint(public)} ({args.public_key})"
        else:
            named = [r.get("signature") for r in reports]
            if not all(isinstance(n, dict) and n.get("public_key") for n in named):
                raise UsageError(f"--public-key: {path} names no signing key; give the signer's")
            keys = {str(n["public_key"]) for n in named if isinstance(n, dict)}
            if len(keys) != 1:
                raise UsageError(f"--public-key: {path} names several keys; give the signer's")
            public = load_public_key(keys.pop().encode("ascii"), f"{path}: signature.public_key")
            whose = f"key {fingerprint(public)} (named in the report: compare it with the signer's)"
    except SealError as exc:
        raise UsageError(str(exc)) from None
    if not verify_signature(document, signature, public):
        print(f"{path}: MISMATCH: the signature {sig_path} is not {whose}'s over this report")
        return 1
    print(f"{path}: OK: sha256 {digests} matches; signature {sig_path} valid, {whose}")
    return 0


def _report_public_key(args: argparse.Namespace) -> int:
    from monitor.reports.seal import SealError, fingerprint, load_signing_key, public_pem

    s = _settings(args)
    if s.report.signing_key is None:
        raise UsageError("report.signing_key: not configured (nothing signs the reports)")
    try:
        key = load_signing_key(s.report.signing_key)
    except SealError as exc:
        raise UsageError(str(exc)) from None
    sys.stdout.write(public_pem(key))
    sys.stderr.write(f"availmon: {fingerprint(key.public_key())}\n")
    return 0


def _print_incident_table(rows: Sequence[dict[str, Any]]) -> None:
    print(
        f"{'ID':>5}  {'SERVICE':<16} {'SEVERITY':<12} {'STATE':<13} {'OPENED (UTC)':<20} UNAVAIL-S"
    )
    from datetime import datetime

    for r in rows:
        opened = datetime.fromtimestamp(r["opened_at"], UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{r['id']:>5}  {r['service']:<16} {r['severity']:<12} {r['state']:<13} "
            f"{opened:<20} {r.get('unavailable_seconds', 0)}"
        )


def _incident_text(shown: dict[str, Any], tz: ZoneInfo) -> str:
    """`incidents show` for a person: the incident, its timeline and its notifications,
    times in the report's zone."""
    from datetime import datetime

    def when(t: float | None) -> str:
        if t is None:
            return "-"
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S %Z")

    i = shown["incident"]
    label = "Critical Issue" if i["severity"] == "critical" else "Non-Critical Issue"
    lines = [f"{label} #{i['id']} — {i['service']} — {i['state']}", i["summary"] or "", ""]
    rows = [
        ("opened", when(i["opened_at"])),
        ("acknowledged", f"{when(i['acknowledged_at'])} by {i['acknowledged_by']}")
        if i["acknowledged_at"]
        else ("acknowledge by", when(i["ack_due_at"])),
        ("recovered", when(i["recovered_at"])),
        ("resolved", f"{when(i['resolved_at'])} by {i['resolved_by']}")
        if i["resolved_at"]
        else ("resolved", "-"),
        ("unavailable", f"{i['unavailable_seconds']} s, from {when(i['first_unavailable'])}"
         f" to {when(i['last_unavailable'])}"),
        ("dedup key", i["dedup_key"]),
    ]  # fmt: skip
    lines += [f"  {k:<15} {v}" for k, v in rows]
    lines += ["", "timeline:"]
    for e in shown["timeline"]:
        data = ", ".join(f"{k}={v}" for k, v in e["data"].items() if k not in ("notify", "seq"))
        lines.append(f"  {when(e['at'])}  {e['kind']:<18} {data}")
    lines += ["", "notifications:"]
    for n in shown["notifications"] or []:
        tail = f"sent {when(n['sent_at'])}" if n["sent_at"] else f"{n['state']}"
        error = f" — {n['last_error']}" if n["last_error"] else ""
        lines.append(
            f"  {n['notifier']:<14} {n['event']:<12} {n['tier'] or '-':<10} {tail}"
            f" ({n['tries']} tries){error}"
        )
    if not shown["notifications"]:
        lines.append("  none (no notifier for its tier)")
    return "\n".join(lines)


def _instant(value: str, name: str) -> int:
    from monitor.api import BadRequest, parse_instant

    try:
        return parse_instant(value, name, need_offset=True)
    except BadRequest as exc:
        raise UsageError(str(exc)) from None


def _json_reports(path: Path, what: str, prefix: str) -> tuple[Any, list[Any]]:
    """A JSON report file as read, and its reports (one, or a list of them); one line if
    it is not JSON."""
    try:
        document = json.loads(_read(path, what).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{prefix}{path}: not a JSON report: {exc}") from None
    return document, document if isinstance(document, list) else [document]


def cmd_notify(args: argparse.Namespace) -> int:
    from alerting.notifytest import test_notifiers
    from monitor.clock import SystemClock
    from monitor.schema import unresolved_secrets

    s = _settings(args)
    if not s.notifiers:
        raise UsageError(f"{args.config}: no [[notifiers]] configured: nothing to test")
    known = [n.name for n in s.notifiers]
    unknown = [n for n in args.notifier if n not in known]
    if unknown:
        raise UsageError(f"--notifier: no notifier {unknown[0]!r} (configured: {', '.join(known)})")
    chosen = [n for n in s.notifiers if not args.notifier or n.name in args.notifier]
    vendor = (s.sev1.vendor_email or "").lower()
    if vendor and not args.notifier:
        # a test must not open a real Sev-1 case at the vendor: only when asked by name
        for n in [n for n in chosen if vendor in [a.lower() for a in getattr(n, "to", [])]]:
            chosen.remove(n)
            print(
                f"{n.name} ({n.type}): skipped: it mails the vendor's Sev-1 address "
                "([sev1] vendor_email); name it with --notifier to test it"
            )
    missing = [m for m in unresolved_secrets(s) if m.startswith("notifiers")]
    if missing:
        raise ConfigError(f"{args.config}: secrets not available: {'; '.join(missing)}")
    results = asyncio.run(test_notifiers(chosen, SystemClock()))
    for r in results:
        print(r.line())
    failed = [r for r in results if not r.ok]
    if failed:
        sys.stderr.write(
            f"availmon: {len(failed)} of {len(results)} notifiers failed the test: "
            f"{', '.join(r.notifier for r in failed)}\n"
        )
        return 1
    return 0


def cmd_incidents(args: argparse.Namespace) -> int:
    from alerting.case import NotCritical, case_view, render_text
    from alerting.incidents import Incidents, IncidentStateError
    from monitor.clock import SystemClock
    from monitor.store.base import NotFound

    s = _settings(args)
    store = _open_store(s)
    inc = Incidents(s, store, SystemClock())
    try:
        if args.action == "list":
            rows = inc.list(args.service, args.state, args.severity)
            if args.json:
                print(json.dumps(rows, default=str))
            else:
                _print_incident_table(rows)
        elif args.action == "show":
            shown = inc.show(args.id)
            if args.json:
                print(json.dumps(shown, indent=2, default=str, ensure_ascii=False))
            else:
                print(_incident_text(shown, ZoneInfo(s.report.timezone)))
        elif args.action == "ack":
            inc.ack(args.id, args.by)
            print(f"incident {args.id} acknowledged by {args.by}")
        elif args.action == "resolve":
            inc.resolve(args.id, args.by, args.note)
            print(f"incident {args.id} resolved by {args.by}")
        elif args.action == "note":
            inc.note(args.id, args.by, args.text)
            print(f"note added to incident {args.id}")
        elif args.action == "case":
            case = case_view(s, store, args.id, time.time())
            if args.json:
                print(json.dumps(case, indent=2, default=str, ensure_ascii=False))
            else:
                print(render_text(case))
        elif args.action == "callback":
            at = None if args.at is None else float(_instant(args.at, "--at"))
            event = inc.callback(args.id, args.by, at, args.note)
            within = "within" if event.data["within"] else "LATER than"
            minutes = s.sev1.callback_minutes
            print(
                f"incident {args.id}: the vendor's callback by {args.by} recorded, {within} "
                f"the {minutes:g}-minute promise"
            )
    except NotCritical as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except NotFound:
        raise UsageError(f"id: no incident {args.id}") from None
    except IncidentStateError as exc:
        raise UsageError(str(exc)) from None
    return 0


def cmd_maintenance(args: argparse.Namespace) -> int:
    from datetime import datetime

    from monitor.api import BadRequest, overlap_warnings, parse_instant
    from monitor.store.base import NotFound

    s = _settings(args)
    store = _open_store(s)
    if args.action == "add":
        if args.service != "*" and args.service not in [x.name for x in s.services]:
            raise UsageError(f"--service: unknown service {args.service!r}")
        try:
            start = parse_instant(args.start, "--start", need_offset=True)
            end = parse_instant(args.end, "--end", need_offset=True)
        except BadRequest as exc:
            raise UsageError(str(exc)) from None
        if end <= start:
            raise UsageError("--end: must be after --start")
        existing = store.list_maintenance(None, start, end)
        for warning in overlap_warnings(existing, args.service, start, end):
            sys.stderr.write(f"availmon: warning: {warning}\n")
        w = store.add_maintenance(args.service, start, end, args.reason, "cli")
        print(f"maintenance window {w.id} added")
    elif args.action == "list":
        print(
            f"{'ID':>4}  {'SERVICE':<16} {'START (UTC)':<25}    {'END (UTC)':<25}  SOURCE  REASON"
        )
        for w in store.list_maintenance(args.service):
            a = datetime.fromtimestamp(w.start, UTC).isoformat()
            b = datetime.fromtimestamp(w.end, UTC).isoformat()
            print(f"{w.id:>4}  {w.service:<16} {a:<25} .. {b:<25}  {w.source:<6}  {w.reason}")
    elif args.action == "remove":
        try:
            store.remove_maintenance(args.id)
        except NotFound:
            raise UsageError(f"id: no maintenance window {args.id}") from None
        print(f"maintenance window {args.id} removed")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from monitor.store import open_store
    from monitor.store.copy import copy_history
    from monitor.store.guard import GuardedStore
    from monitor.store.sql import SqlEngine

    if args.source == args.target:
        raise UsageError("--to: the same store as --from")

    def engine(url: str, flag: str) -> Any:
        try:
            store = open_store(url)
        except Exception as exc:
            raise UsageError(f"{flag}: {exc}") from None
        raw = store.wrapped if isinstance(store, GuardedStore) else store
        if not isinstance(raw, SqlEngine):
            raise UsageError(f"{flag}: {url.partition('://')[0]}:// stores cannot be copied")
        return raw

    source = engine(args.source, "--from")
    target = engine(args.target, "--to")
    try:
        copied = copy_history(source, target)
    finally:
        source.close()
        target.close()
    for table, n in copied.items():
        print(f"{table:16} {n:>10} rows")
    print(f"copied and verified: {sum(copied.values())} rows in {len(copied)} tables")
    return 0


COMMANDS = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "demo": cmd_demo,
    "simulate": cmd_simulate,
    "check-config": cmd_check_config,
    "report": cmd_report,
    "export": cmd_export,
    "incidents": cmd_incidents,
    "maintenance": cmd_maintenance,
    "notify": cmd_notify,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (UsageError, ConfigError) as exc:
        sys.stderr.write(f"availmon: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from monitor.daemon import DaemonError
        from monitor.store.base import StoreError

        if isinstance(exc, (DaemonError, StoreError)):
            sys.stderr.write(f"availmon: error: {exc}\n")
            return EXIT_USAGE
        raise


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
