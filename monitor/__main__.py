"""`python -m monitor` is the `availmon` command."""

from monitor.cli import main

raise SystemExit(main())
