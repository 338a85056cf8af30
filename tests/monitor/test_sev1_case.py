"""A real daemon, the simulator, a webhook pager and an SMTP sink for the vendor's support
address: when a Critical Issue opens, its Sev-1 case sheet (alerting/case.py) is on its
timeline, in the trigger page and in the email to the vendor, and the API serves it and
records the vendor's callback."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from monitor.config import load
from monitor.daemon import Daemon
from monitor.demo import simulated_config
from monitor.simulator import Simulator
from tests.loopback import JsonReceiver, mail_sink, until

pytestmark = [pytest.mark.slow]

SEV1 = """
[sev1]
company = "Acme Mail Ltd"
contact_name = "Dana Oncall"
contact_phone = "+44 20 7946 0000"
contact_email = "oncall@acme.example"
account_id = "sub-4242"
vendor_phone = "+1 800 555 0199"
vendor_email = "sev1@vendor.example"
"""


async def test_a_critical_issue_carries_its_case_sheet_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AVAILMON_TEST_TOKEN", "case-token")
    pager = JsonReceiver()
    hook_url = await pager.start()
    pages = pager.received
    sim = Simulator(tls=False, api_key="k", smtp_password="k")
    await sim.start()
    d: Daemon | None = None
    try:
        with mail_sink() as (mail, port):
            path = simulated_config(
                sim, tmp_path, page_url=hook_url, api_key="k",
                monitor_lines='api_token = "env:AVAILMON_TEST_TOKEN"\n',
            )  # fmt: skip
            path.write_text(
                path.read_text()
                + SEV1
                + '\n[[notifiers]]\nname = "vendor-support"\ntype = "email"\n'
                f'host = "127.0.0.1"\nport = {port}\ntls = "none"\n'
                'mail_from = "availmon@acme.example"\nto = ["sev1@vendor.example"]\n'
                'tiers = ["critical"]\n'
            )
            d = Daemon(load(path), config_path=path)
            await d.start()
            sim.set_fault("api", "5xx", status=503)
            await until(
                "the trigger page", lambda: any(p["event"] == "trigger" for p in pages), 400
            )
            trigger = next(p for p in pages if p["event"] == "trigger")
            case_text = trigger["case"]
            assert case_text.startswith("SEV-1 CASE: call +1 800 555 0199")
            for value in ("Acme Mail Ltd", "Dana Oncall", "+44 20 7946 0000", "sub-4242"):
                assert value in case_text
            assert "HTTP 503" in case_text and "every API call of simulated" in case_text
            assert "X-Availmon-Attempt" in case_text  # sample ids quoted

            await until("the vendor's email", lambda: bool(mail.messages), 300)
            body = mail.messages[0].content
            assert isinstance(body, bytes)
            assert b"SEV-1 CASE" in body and b"HTTP 503" in body
            assert mail.messages[0].rcpt_tos == ["sev1@vendor.example"]

            base = f"http://127.0.0.1:{d.http_port}"
            ident = trigger["incident"]["id"]
            auth = {"Authorization": "Bearer case-token"}
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/api/v1/incidents/{ident}/case") as r:
                    assert r.status == 200
                    case = await r.json()
                assert case["stored"] is True and case["callback"] is None
                assert "HTTP 503" in case["description"]
                async with http.get(f"{base}/api/v1/incidents/{ident}/case?format=text") as r:
                    assert r.headers["Content-Type"].startswith("text/plain")
                    assert (await r.text()).startswith("SEV-1 CASE")
                async with http.get(f"{base}/api/v1/incidents/{ident}/case?format=pdf") as r:
                    assert r.status == 400
                async with http.post(
                    f"{base}/api/v1/incidents/{ident}/callback", headers=auth, json={}
                ) as r:
                    assert r.status == 400
                async with http.post(
                    f"{base}/api/v1/incidents/{ident}/callback",
                    headers=auth,
                    json={"by": "Sam at Vendor", "note": "case 77"},
                ) as r:
                    assert r.status == 200
                async with http.get(f"{base}/api/v1/incidents/{ident}") as r:
                    kinds = [e["kind"] for e in (await r.json())["timeline"]]
                async with http.get(f"{base}/api/v1/incidents/{ident}/case") as r:
                    case = await r.json()
            assert case["callback"]["by"] == "Sam at Vendor" and case["callback"]["within"]
            # the sheet is on the timeline once, right after the opening
            assert kinds.count("case_sheet") == 1
            assert kinds.index("case_sheet") == kinds.index("opened") + 1
            assert "vendor_callback" in kinds
            # one page: the trigger went to the pager once, the sheet did not page again
            assert [p["event"] for p in pages].count("trigger") == 1
            sim.set_fault("api", "ok")
    finally:
        if d is not None:
            await d.stop()
        await sim.stop()
        await pager.stop()
