"""Good and deliberately bad configs under tests/testdata, through the CLI's check-config."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import HttpProbeConfig, load
from monitor.schema import ConfigError
from tests.loopback import minimal_config, run_cli

DATA = Path(__file__).resolve().parent.parent / "testdata"
GOOD = sorted((DATA / "good").glob("*.toml"))
BAD = sorted((DATA / "bad").glob("*.toml"))


def _expected_error(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# error: "), f"{path.name} must say what error it expects"
    return first.removeprefix("# error: ")


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AVAILMON_TEST_TOKEN", "s3cret-token-value")
    monkeypatch.setenv("AVAILMON_TEST_PD_KEY", "s3cretpagerdutykey0123456789abcd")
    monkeypatch.setenv("AVAILMON_TEST_SLACK_URL", "https://hooks.slack.com/services/T0/B0/s3cret")
    monkeypatch.delenv("AVAILMON_SURELY_UNSET_VARIABLE", raising=False)


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_configs_load(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load(path)
    assert settings.services
    assert main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: ok")
    assert "s3cret" not in out
    if settings.services[0].blocklists:
        # 3 IPs on 3 zones and 3 domains on the 3 default domain zones
        assert "  blocklists: sparkpost-us/lists: 18 queries every 300 s to 127.0.0.1:53" in out


def _preflight_only(path: Path) -> bool:
    """A case the model accepts and only constructing the part rejects."""
    return path.read_text().splitlines()[1].startswith("# stage: preflight")


@pytest.fixture
def _run_must_not_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """`availmon run` on a bad config must stop before the daemon starts."""

    async def started(self: object) -> None:
        raise AssertionError("the daemon started on a bad config")

    monkeypatch.setattr("monitor.daemon.Daemon.run", started)


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
@pytest.mark.usefixtures("_run_must_not_start")
def test_bad_configs_fail_with_one_line_naming_the_field(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same one line and exit 2 from `check-config` and from `run`, nothing else."""
    if not _preflight_only(path):
        with pytest.raises(ConfigError) as exc:
            load(path)
        message = str(exc.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: ")
        assert _expected_error(path) in message
    lines = []
    for command in ("check-config", "run"):
        assert main([command, "-c", str(path)]) == 2, command
        captured = capsys.readouterr()
        assert captured.out == "", command
        err = captured.err
        assert err.count("\n") == 1, (command, err)
        assert err.startswith(f"availmon: error: {path}: "), (command, err)
        assert _expected_error(path) in err, (command, err)
        lines.append(err)
    assert lines[0] == lines[1]


def test_secrets_are_masked_everywhere() -> None:
    settings = load(DATA / "good" / "full.toml")
    dumped = settings.model_dump_json()
    assert "s3cret" not in dumped
    assert "s3cret" not in repr(settings)
    token = settings.monitor.api_token
    assert token is not None and token.get_secret_value() == "s3cret-token-value"


def test_secret_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-file\nignored second line\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[services]]\nname = "s"\n[[services.probes]]\ntype = "http"\nname = "api"\n'
        f'url = "https://x/"\nheaders = {{ Authorization = "file:{secret}" }}\n'
    )
    header = load(cfg).services[0].probes[0].headers["Authorization"]  # type: ignore[attr-defined]
    assert header.get_secret_value() == "from-a-file"


def test_missing_config_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", "-c", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "SPARKPOST_API_KEY",
        "SPARKPOST_EU_API_KEY",
        "PAGERDUTY_ROUTING_KEY",
        "AVAILMON_API_TOKEN",
    ):
        monkeypatch.setenv(name, "x")
    settings = load(DATA.parent.parent / "config.example.toml")
    assert [s.name for s in settings.services] == ["sparkpost-us", "sparkpost-eu"]
    assert settings.services[0].channels == ["api", "smtp"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["report", "-c", "x.toml", "--month", "2026-13"], "--month"),
        (["simulate", "--http-port", "99999"], "--http-port"),
        (["demo", "--duration", "-1"], "--duration"),
        (["bogus"], "invalid choice"),
        (["incidents", "-c", "x.toml", "ack", "notanumber", "--by", "me"], "invalid int"),
    ],
    ids=["bad-month", "bad-port", "negative-duration", "unknown-command", "bad-incident-id"],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err


def test_a_failed_start_is_one_line_and_leaks_nothing(tmp_path: Path) -> None:
    """The listener's port is taken: `run` says so in one line, exit 2, and closes what it
    had opened (no "Unclosed client session" from aiohttp)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = minimal_config(
            tmp_path / "c.toml",
            f"sqlite:///{tmp_path}/a.db",
            listen=f"127.0.0.1:{port}",
            extra='[[notifiers]]\ntype = "webhook"\nname = "hook"\nurl = "http://127.0.0.1:9/hook"\n',
        )
        done = run_cli("run", "-c", str(cfg))
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "availmon: error:" in line]
    assert errors == [
        f"availmon: error: monitor.listen: cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    ]
    assert "Traceback" not in done.stderr
    assert "Unclosed" not in done.stderr


@pytest.mark.parametrize(
    ("mode", "value", "warned"),
    [
        (0o644, "sk-literal-key-123456", True),
        (0o600, "sk-literal-key-123456", False),
        (0o644, "env:AVAILMON_TEST_TOKEN", False),
    ],
    ids=["readable-literal", "private-literal", "readable-reference"],
)
def test_a_readable_config_with_a_literal_secret_draws_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int, value: str, warned: bool
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[services]]\nname = "s"\n[[services.probes]]\ntype = "http"\nname = "api"\n'
        f'url = "https://x/"\nheaders = {{ Authorization = "{value}" }}\n'
    )
    cfg.chmod(mode)
    assert main(["check-config", "-c", str(cfg)]) == 0
    err = capsys.readouterr().err
    if warned:
        assert err.count("\n") == 1
        assert err.startswith(f"availmon: warning: {cfg} is readable by others (mode 644)")
        assert "services[0].probes[0].headers.Authorization" in err
        assert "sk-literal" not in err  # the warning names the field, never the value
    else:
        assert err == ""


# ------------------------------------------------------------------ the environment


def test_the_environment_wins_over_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = minimal_config(
        tmp_path / "c.toml",
        "sqlite:///file.db",
        listen="127.0.0.1:9310",
        extra='[report]\ndir = "from-file"\n',
    )
    assert load(path).monitor.listen == "127.0.0.1:9310"
    monkeypatch.setenv("AVAILMON_MONITOR__LISTEN", "127.0.0.1:9311")
    monkeypatch.setenv("AVAILMON_STORE__URL", "sqlite:///env.db")
    monkeypatch.setenv("availmon_report__dir", "from-env")  # names are case-insensitive
    settings = load(path)
    assert settings.monitor.listen == "127.0.0.1:9311"
    assert settings.store.url.endswith("env.db")
    assert str(settings.report.dir).endswith("from-env")
    # what the environment does not name still comes from the file
    assert [s.name for s in settings.services] == ["s"]
    assert settings.services[0].probes[0].name == "api"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "AVAILMON_MONITOR__LISTEN",
            "nonsense",
            "environment AVAILMON_MONITOR__LISTEN: monitor.listen:",
        ),
        (
            "AVAILMON_MONITOR__MAX_LAUNCH_LAG_MS",
            "-5",
            "environment AVAILMON_MONITOR__MAX_LAUNCH_LAG_MS:",
        ),
        ("AVAILMON_SERVICES", "[not json", "environment AVAILMON_SERVICES: not valid JSON"),
    ],
)
def test_a_bad_environment_value_is_one_line_naming_the_variable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    expected: str,
) -> None:
    path = minimal_config(tmp_path / "c.toml", "sqlite:///x.db", listen="127.0.0.1:9310")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(err.value).startswith(expected), str(err.value)
    assert "\n" not in str(err.value)
    done = run_cli("check-config", "-c", str(path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"availmon: error: {err.value}"], done.stderr


def test_relative_paths_are_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "etc"
    home.mkdir()
    (home / "key.txt").write_text("k3y\n")
    (home / "ca.pem").write_text("not read at load\n")
    path = minimal_config(
        home / "availmon.toml",
        "sqlite:///data/availmon.db",
        extra='headers = { Authorization = "file:key.txt" }\n[report]\ndir = "reports"\n',
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load(path)
    assert settings.store.url == f"sqlite:///{home / 'data' / 'availmon.db'}"
    assert Path(settings.report.dir) == home / "reports"
    probe = settings.services[0].probes[0]
    assert isinstance(probe, HttpProbeConfig)
    assert probe.headers["Authorization"].get_secret_value() == "k3y"
    with_ca = minimal_config(home / "ca.toml", "sqlite:///x.db", extra='ca_file = "ca.pem"\n')
    ca_probe = load(with_ca).services[0].probes[0]
    assert isinstance(ca_probe, HttpProbeConfig) and ca_probe.ca_file == home / "ca.pem"
    # absolute ones and :memory: stay as written
    absolute = minimal_config(tmp_path / "abs.toml", f"sqlite:///{tmp_path}/x.db")
    assert load(absolute).store.url == f"sqlite:///{tmp_path}/x.db"
    memory = minimal_config(tmp_path / "mem.toml", "sqlite:///:memory:")
    assert load(memory).store.url == "sqlite:///:memory:"
    done = run_cli("check-config", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert f"store:   {home / 'data' / 'availmon.db'}" in done.stdout
    assert f"reports: {home / 'reports'}" in done.stdout


def test_commands_that_never_use_a_secret_do_not_need_it(tmp_path: Path) -> None:
    extra = (
        'headers = { Authorization = "env:AVAILMON_SURELY_UNSET_KEY" }\n'
        '[[notifiers]]\ntype = "pagerduty"\nname = "pd"\n'
        'routing_key = "env:AVAILMON_SURELY_UNSET_PD"\n'
    )
    path = minimal_config(tmp_path / "c.toml", f"sqlite:///{tmp_path / 'a.db'}", extra=extra)
    listed = run_cli("incidents", "-c", str(path), "list")
    assert listed.returncode == 0, listed.stderr
    windows = run_cli("maintenance", "-c", str(path), "list")
    assert windows.returncode == 0, windows.stderr
    # the daemon does use them: every missing one is named, on one line
    checked = run_cli("check-config", "-c", str(path))
    assert checked.returncode == 2
    [line] = checked.stderr.splitlines()
    assert "AVAILMON_SURELY_UNSET_KEY" in line and "AVAILMON_SURELY_UNSET_PD" in line
