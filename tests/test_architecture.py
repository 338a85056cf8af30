"""The shape of the code, as tests: layers point down, no import cycle, docs that exist.

The layers are written as import-linter contracts in pyproject.toml (ARCHITECTURE.md
draws them); `lint-imports` runs here so that the suite, and so CI, enforces them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("monitor", "probes", "alerting")


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_no_import_cycle_anywhere() -> None:
    # every import counts: module level, inside functions and under TYPE_CHECKING
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for a, b in (("x.a", "x.b"), ("x.b", "x.c"), ("x.c", "x.a"), ("x.c", "x.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["x.a", "x.b", "x.c"]]


def test_code_cites_only_files_in_the_repository() -> None:
    """Comments and docstrings point at files a newcomer can open, and at sections of
    ARCHITECTURE.md that exist."""
    cited = re.compile(r"\b([A-Z][A-Z_]+\.md)\b")
    section = re.compile(r'ARCHITECTURE\.md "([^"]+)"')
    outside = re.compile(r"\bDESIGN(\.md|'s| \")")
    headings = set(re.findall(r"^#+ (.+)$", (ROOT / "ARCHITECTURE.md").read_text(), re.M))
    missing = set()
    files = [p for d in (*PACKAGES, "bench", "tests", "grafana") for p in (ROOT / d).rglob("*")]
    for path in [*files, ROOT / "README.md"]:
        if path.suffix not in (".py", ".md", ".yml", ".toml") or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        for name in cited.findall(text):
            if not (ROOT / name).exists() and not (path.parent / name).exists():
                missing.add(f"{where}: {name}")
        missing.update(
            f"{where}: section {s!r}" for s in section.findall(text) if s not in headings
        )
        missing.update(f"{where}: DESIGN{m}" for m in outside.findall(text))
    assert sorted(missing) == []


#: submodules of dependencies that their documentation presents as public
PUBLIC_SUBMODULES = {
    "aiohttp.web",
    "aiohttp.test_utils",
    "aiosmtpd.smtp",
    "aiosmtpd.controller",
    "apscheduler.schedulers.asyncio",
    "apscheduler.triggers.cron",
    "apscheduler.triggers.interval",
    "cryptography.x509",
    "cryptography.x509.oid",
    "cryptography.hazmat.primitives",
    "cryptography.hazmat.primitives.asymmetric",
    "email.header",
    "email.message",
    "email.utils",
    "importlib.resources",
    "collections.abc",
    "concurrent.futures",
    "logging.handlers",
    "xml.etree.ElementTree",
    "urllib.parse",
    "psycopg.conninfo",  # documented: psycopg.org/psycopg3/docs/api/conninfo.html
    # dnspython's public API is its modules (dnspython.readthedocs.io, "Reference Manual")
    "dns.asyncquery",
    "dns.exception",
    "dns.flags",
    "dns.message",
    "dns.rcode",
    "dns.rdataclass",
    "dns.rdatatype",
    "dns.rdtypes.ANY.TXT",
    "dns.rrset",
}
#: private attributes of dependencies that code has been tempted by
PRIVATE_ATTRIBUTES = {
    "_retry_connection",
    "_value",
    "_server",
    "_SelectorSocketTransport",
    "_read_ready_cb",
    "_call_connection_lost",
}


def _private_uses(path: Path) -> list[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        modules: list[str] = []
        names: list[str] = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
            names = [a.name for a in node.names]
        for module in modules:
            top = module.split(".")[0]
            if top in PACKAGES or top in ("tests", "__future__"):
                continue
            if any(part.startswith("_") for part in module.split(".")):
                found.append(f"{line}: imports {module}")
            elif "." in module and module not in PUBLIC_SUBMODULES:
                found.append(f"{line}: imports {module}")
            found += [f"{line}: imports {module}.{n}" for n in names if n.startswith("_")]
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            found.append(f"{line}: .{node.attr}")
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in PRIVATE_ATTRIBUTES
        ):
            found.append(f"{line}: {node.value!r}")
    return found


def test_private_names_of_dependencies_only_in_compat_modules() -> None:
    """A dependency's non-public names are used in one guarded module per library
    (probes/compat_aiohttp.py, probes/compat_asyncio.py) and nowhere else."""
    uses = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name.startswith("compat_"):
                continue
            found = _private_uses(path)
            if found:
                uses[str(path.relative_to(ROOT))] = found
    assert uses == {}


def test_every_imported_distribution_is_declared() -> None:
    """What the packages import from outside the standard library is a dependency in
    pyproject.toml, not something another dependency happens to bring."""
    import ast
    import tomllib

    declared = {
        re.split(r"[<>=!\[ ]", d, maxsplit=1)[0].lower().replace("_", "-")
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    # import name → distribution name, where they differ
    distribution = {
        "prometheus_client": "prometheus-client",
        "pydantic_settings": "pydantic-settings",
        "yaml": "pyyaml",
        "dns": "dnspython",
    }
    missing = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    tops = [a.name.split(".")[0] for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    if top in sys.stdlib_module_names or top in PACKAGES or top == "__future__":
                        continue
                    if distribution.get(top, top).lower().replace("_", "-") not in declared:
                        missing.add(f"{path.relative_to(ROOT)}: {top}")
    assert sorted(missing) == []
