#!/usr/bin/env bash
# The whole test suite: style (ruff), types (mypy), then pytest (unit, pipeline and integration
# tests; the fixtures start their own JACK dummy server). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check agent tests bench performances layouts
.venv/bin/mypy
# pytest exits 5 when it collected no tests: that is a failure here, never hidden.
.venv/bin/python -m pytest "$@"
