#!/usr/bin/env bash
# Set up everything stage-agent needs on a Debian-like machine: system packages (JACK, mosquitto,
# liblo tools, ALSA library, Chromium for the report test) and a virtual environment in .venv with
# the project installed.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium: the headless browser tests/integration/test_report_browser.py looks at reports with.
apt_packages=(jackd2 mosquitto mosquitto-clients liblo-tools libasound2 chromium)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  # jackd2 asks whether to enable realtime limits; answer "no" for a headless install.
  echo "jackd2 jackd/tweak_rt_limits boolean false" | $sudo debconf-set-selections
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
# constraints.txt pins torch to the CPU build; never install torch unpinned.
.venv/bin/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
echo "setup: ready (.venv/bin/stage-agent)"
