#!/usr/bin/env bash
# Install what tests/test_html_browser.py needs: Debian's chromium and the playwright Python
# package, driven with executable_path=/usr/bin/chromium. Never runs `playwright install`:
# that downloads a browser build of its own, which this project's machines cannot fetch.
#
#   scripts/install_browser.sh          # as root (CI), from anywhere; uses .venv when present
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLAYWRIGHT_VERSION="${PLAYWRIGHT_VERSION:-1.65.2}"

if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY="$(command -v python3)"
"$PY" -c "import playwright" 2>/dev/null || \
  "$PY" -m pip install --disable-pip-version-check -q "playwright==$PLAYWRIGHT_VERSION"

chromium --version
"$PY" -c "import playwright; print('playwright', __import__('importlib.metadata').metadata.version('playwright'))"
