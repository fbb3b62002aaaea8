#!/usr/bin/env bash
# Set up NodeView on Debian 12 (Python 3.11): the apt packages Qt and the tests need, a virtual
# environment in .venv, and the package in editable mode with the requested extras.
#   bash scripts/bootstrap.sh [EXTRAS]     EXTRAS defaults to "dev" (e.g. "dev,train")
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-dev}"
PYTHON="${PYTHON:-python3}"

# Qt's xcb platform plugin, OpenGL/EGL, fonts, and Xvfb for screenshot tests.
APT_PACKAGES=(
  python3-venv python3-pip
  xvfb xauth
  libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-cursor0
  libxcb-shape0 libxcb-randr0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0
  libgl1 libegl1 libglib2.0-0 libdbus-1-3 libfontconfig1 fontconfig fonts-dejavu-core
  orthanc dicom3tools  # a real PACS for the networking tests; dciodvfy validates the DICOM objects we write
  orthanc-dicomweb  # Orthanc's DICOMweb plugin: the QIDO/WADO/STOW-RS tests talk to it
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing apt packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.nodeview-installed-$EXTRAS"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/constraints.txt -nt "$stamp" ]; then
  echo "bootstrap: installing nodeview[$EXTRAS] into .venv (versions pinned by scripts/constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]" -c scripts/constraints.txt
  touch "$stamp"
fi
