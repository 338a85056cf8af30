"""Print pyproject.toml's runtime dependencies pinned to their lower bounds (`>=X` → `==X`),
for the virtualenv in which .ci/run proves those bounds (.ci/run-lowest)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
    m = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", dep)
    if m is None:
        raise SystemExit(f"{dep!r}: every dependency needs a '>=' lower bound")
    print(f"{m.group(1)}=={m.group(2)}")
