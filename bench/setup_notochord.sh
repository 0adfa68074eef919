#!/usr/bin/env bash
# Install the optional benchmark peer Notochord (PyPI `notochord` 0.8.0, MIT, Intelligent
# Instruments Lab) into the project's .venv, for bench/notochord_peer.py. Safe to run again: it
# installs only what is missing or at another version, and says what it did.
#
# notochord 0.8.0 declares torch<2.11, but the project pins torch 2.13.0 (constraints.txt), so it
# is installed with --no-deps and only the packages its model, prep and training code really import
# are added, each pinned:
#   pandas<3   imported by `import notochord` (notochord/perform.py); pytz is pandas 2's own need
#   appdirs    imported by notochord/model.py
#   fire       the command line of notochord.lakh_prep and notochord.train (termcolor is its need)
#   tensorboard  notochord.train logs its losses through torch.utils.tensorboard, which imports
#              tensorboard and, through it, absl-py, protobuf and the rest of its requirements;
#              bench/notochord_peer.py also reads `valid/loss` back with tensorboard
# Not installed: iipyper, sf2utils, toml-file (its interactive apps and command-line front end,
# which also needs sounddevice and libportaudio2); the peer never imports notochord's CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "setup_notochord: no .venv here: run scripts/setup.sh first" >&2
  exit 1
fi
pip=(.venv/bin/pip --disable-pip-version-check)

peer="notochord==0.8.0"
needs=(
  "pandas==2.3.3" "pytz==2026.6"
  "appdirs==1.4.4"
  "fire==0.7.1" "termcolor==3.3.0"
  "tensorboard==2.21.0" "tensorboard-data-server==0.7.2" "absl-py==2.5.1" "grpcio==1.85.1"
  "markdown==3.11.3" "protobuf==6.33.5" "werkzeug==3.1.9"
)

# Print the requirements (NAME==VERSION) that are not installed at exactly that version.
missing() {
  .venv/bin/python - "$@" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

for req in sys.argv[1:]:
    name, want = req.split("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        print(req)
EOF
}

torch_before=$(.venv/bin/python -c 'import torch; print(torch.__version__)')

mapfile -t todo < <(missing "${needs[@]}")
if [ ${#todo[@]} -gt 0 ]; then
  echo "setup_notochord: installing ${todo[*]}"
  "${pip[@]}" install -q -c constraints.txt "${todo[@]}"
else
  echo "setup_notochord: its needs already installed (${needs[*]})"
fi

mapfile -t todo < <(missing "$peer")
if [ ${#todo[@]} -gt 0 ]; then
  echo "setup_notochord: installing $peer (--no-deps: it declares torch<2.11)"
  "${pip[@]}" install -q -c constraints.txt --no-deps "$peer"
  echo "setup_notochord: (pip check will say notochord wants torch<2.11, iipyper, sf2utils" \
    "and toml-file: expected, the peer uses none of those)"
else
  echo "setup_notochord: $peer already installed"
fi

torch_after=$(.venv/bin/python -c 'import torch; print(torch.__version__)')
if [ "$torch_before" != "$torch_after" ]; then
  echo "setup_notochord: torch changed from $torch_before to $torch_after: check constraints.txt" >&2
  exit 1
fi

# Import what the peer uses, not notochord's CLI (that needs sounddevice and PortAudio).
.venv/bin/python -W ignore - <<'EOF'
from importlib.metadata import version

from notochord import Notochord  # noqa: F401
from notochord.lakh_prep import repair_events  # noqa: F401
from torch.utils.tensorboard.writer import SummaryWriter  # noqa: F401
import torch

print(f"setup_notochord: ready (notochord {version('notochord')}, torch {torch.__version__})")
EOF
