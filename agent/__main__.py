"""`python -m agent`: the same as the `stage-agent` command."""

from agent.cli import main

raise SystemExit(main())
