"""`availmon notify test` as a user runs it (a child process) against real receivers on
loopback: a webhook that takes it, a PagerDuty-shaped receiver that gets a trigger and the
resolve of the same key, and a webhook whose receiver is down, which fails that line and
the exit status; nothing it prints holds a secret."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.loopback import free_port

KEY = "0123456789abcdef0123456789abcdef"  # a PagerDuty routing key's shape


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_notify_test_sends_a_marked_test_through_each_notifier(tmp_path: Path) -> None:
    got: dict[str, list[dict[str, Any]]] = {"hook": [], "pd": []}

    async def hook(request: web.Request) -> web.Response:
        got["hook"].append(json.loads(await request.read()))
        return web.json_response({})

    async def pd(request: web.Request) -> web.Response:
        got["pd"].append(json.loads(await request.read()))
        return web.json_response({"status": "success", "dedup_key": "x"}, status=202)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/v2/enqueue", pd)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    down = f"http://127.0.0.1:{free_port()}/hook"
    key_file = tmp_path / "pd-key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/a.db"\n'
        '[[services]]\nname = "s"\n[[services.probes]]\ntype = "http"\nname = "api"\n'
        'url = "http://127.0.0.1:9/"\n'
        f'[[notifiers]]\nname = "pager-hook"\ntype = "webhook"\nurl = "{base}/hook"\n'
        f'[[notifiers]]\nname = "pd"\ntype = "pagerduty"\nurl = "{base}/v2/enqueue"\n'
        f'routing_key = "file:{key_file}"\n'
        f'[[notifiers]]\nname = "gone"\ntype = "webhook"\nurl = "{down}"\nmax_tries = 1\n'
        # the vendor's Sev-1 mailbox: never mailed by a test unless named
        f'[[notifiers]]\nname = "vendor"\ntype = "email"\nhost = "127.0.0.1"\n'
        f'port = {free_port()}\ntls = "none"\nmail_from = "a@x.example"\n'
        'to = ["Sev1@Vendor.example"]\n'
        '[sev1]\nvendor_email = "sev1@vendor.example"\n'
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    try:
        code, out, err = await _cli("notify", "test", "-c", str(config), env=env)
        assert code == 1, (out, err)
        lines = out.splitlines()
        assert len(lines) == 4
        assert lines[0] == (
            "vendor (email): skipped: it mails the vendor's Sev-1 address ([sev1] "
            "vendor_email); name it with --notifier to test it"
        )
        assert lines[1].startswith("pager-hook (webhook): sent trigger in ")
        assert lines[2].startswith("pd (pagerduty): sent trigger and resolve in ")
        assert lines[3].startswith("gone (webhook): FAILED: ")
        assert err == "availmon: 1 of 3 notifiers failed the test: gone\n"
        (hooked,) = got["hook"]
        assert hooked["summary"].startswith("[TEST] availmon notification test of pager-hook")
        assert hooked["incident"]["service"] == "availmon-test" and hooked["test"] is True
        trigger, resolve = got["pd"]
        assert [trigger["event_action"], resolve["event_action"]] == ["trigger", "resolve"]
        assert trigger["dedup_key"] == resolve["dedup_key"]
        assert trigger["dedup_key"].startswith("availmon/test/")
        assert "[TEST]" in trigger["payload"]["summary"]
        assert KEY not in out + err

        # one notifier only; an unknown name is one line and exit 2
        code, out, err = await _cli(
            "notify", "test", "-c", str(config), "--notifier", "pager-hook", env=env
        )
        assert code == 0 and out.startswith("pager-hook (webhook): sent trigger")
        assert len(got["hook"]) == 2 and len(got["pd"]) == 2
        code, out, err = await _cli(
            "notify", "test", "-c", str(config), "--notifier", "nope", env=env
        )
        assert code == 2 and out == ""
        assert err == (
            "availmon: error: --notifier: no notifier 'nope' (configured: pager-hook, pd, gone, "
            "vendor)\n"
        )
        # named, the vendor's notifier is tried (here its mail server is down)
        code, out, err = await _cli(
            "notify", "test", "-c", str(config), "--notifier", "vendor", env=env
        )
        assert code == 1 and out.startswith("vendor (email): FAILED: "), (out, err)
        # a secret that cannot be read is named, not sent without
        key_file.unlink()
        code, out, err = await _cli("notify", "test", "-c", str(config), env=env)
        assert code == 2 and err.count("\n") == 1 and "notifiers" in err and "pd-key" in err
    finally:
        await runner.cleanup()
