#!/usr/bin/env bash
# Build NodeView's installers from a clean checkout (Linux; see packaging/README.md for Windows/macOS):
#   dist/nodeview/                               the one-folder app (PyInstaller)
#   dist/nodeview-VERSION-linux-x86_64.tar.gz    the same folder, archived
#   dist/nodeview_VERSION_amd64.deb              installs to /opt/nodeview, /usr/bin/nodeview, .desktop, icon
#
#   bash packaging/build.sh [--model PATH.onnx] [--with-demo] [--no-deb] [--app-only]
#     --model M     bundle M as the default model (resources/models/nodeview-nodule.onnx in the app;
#                   M's card M.md too if there is one). Without it the repository's default model
#                   must exist, or the build fails.
#     --with-demo   also bundle the demo study resources/demo (65 MB)
#     --no-deb      no .deb (its xz compression takes minutes)
#     --app-only    only dist/nodeview: no .tar.gz, no .deb (what CI smoke-tests)
#
# Installs its own build dependencies (apt packages and a venv in build/venv made from the system
# Python 3.11, with the viewer's runtime and PyInstaller, never torch), checks every bundled ELF
# file's libraries (packaging/check_libs.py: none unresolved, every system one from a package the
# .deb declares) and writes build/build-report.json (times and sizes).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
DEFAULT_MODEL="resources/models/nodeview-nodule.onnx"
MODEL="$DEFAULT_MODEL"
WITH_DEMO=0
MAKE_DEB=1
MAKE_TAR=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL="$2"; shift 2 ;;
    --with-demo) WITH_DEMO=1; shift ;;
    --no-deb) MAKE_DEB=0; shift ;;
    --app-only) MAKE_DEB=0; MAKE_TAR=0; shift ;;
    *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
fail() { echo "build.sh: FAILED: $*" >&2; exit 1; }
if [ ! -f "$MODEL" ]; then
  [ "$MODEL" = "$DEFAULT_MODEL" ] && fail "the default model $DEFAULT_MODEL is missing: export one (training/README.md) or pass --model PATH.onnx to bundle another ONNX model as the default"
  fail "no ONNX model at $MODEL (--model)"
fi
T0=$(date +%s.%N)

# --- build machine: the libraries the frozen Qt plugins link against, and packaging tools
APT=(python3-venv binutils dpkg-dev file xvfb xauth
     libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0 libxcb-cursor0
     libxcb-shape0 libxcb-randr0 libxcb-xkb1 libxkbcommon0 libxkbcommon-x11-0
     libgl1 libegl1 libglib2.0-0 libdbus-1-3 libfontconfig1 fontconfig fonts-dejavu-core)
missing=()
for p in "${APT[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- build venv: the viewer's runtime + PyInstaller (pyproject's "package" extra)
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || fail "$PYTHON is not Python 3.11 (set PYTHON=...)"
if [ ! -x build/venv/bin/python ]; then "$PYTHON" -m venv build/venv; fi
stamp=build/venv/.nodeview-package
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/constraints.txt -nt "$stamp" ]; then
  build/venv/bin/python -m pip install -q --upgrade pip
  build/venv/bin/python -m pip install -q ".[package]" -c scripts/constraints.txt  # the tested versions
  touch "$stamp"
else
  build/venv/bin/python -m pip install -q --no-deps --force-reinstall . >/dev/null  # this checkout's code
fi
if build/venv/bin/python -c "import torch" 2>/dev/null; then fail "torch is installed in build/venv: the app must not bundle it"; fi
if build/venv/bin/python -c "import distributed" 2>/dev/null; then fail "Dask is installed in build/venv: the app must not bundle it"; fi
VERSION=$(build/venv/bin/python -c "import nodeview; print(nodeview.__version__)")

# --- staged resources: the model (as the default model's name), its card, fonts, icons, demo
STAGE="$ROOT/build/stage"
rm -rf "$STAGE"; mkdir -p "$STAGE/resources/models" "$STAGE/resources/icons"
cp "$MODEL" "$STAGE/resources/models/nodeview-nodule.onnx"
card="${MODEL%.onnx}.md"; [ -f "$card" ] && cp "$card" "$STAGE/resources/models/nodeview-nodule.md"
# the proposal re-ranker beside the model (used only with the nodule model it was calibrated for)
reranker="$(dirname "$MODEL")/nodeview-reranker.onnx"; [ -f "$reranker" ] && cp "$reranker" "$STAGE/resources/models/"
# the proposal ranker's learned weights (data, checked by sha256 on load): the proposer needs them with any model
cp resources/models/nodeview-proposal-ranker.json "$STAGE/resources/models/"
cp -r resources/fonts "$STAGE/resources/fonts"
cp resources/icons/nodeview.svg "$STAGE/resources/icons/"
QT_QPA_PLATFORM=offscreen build/venv/bin/python packaging/render_icon.py resources/icons/nodeview.svg "$STAGE/resources/icons/nodeview.png" 256
[ "$WITH_DEMO" = 1 ] && cp -r resources/demo "$STAGE/resources/demo"

# --- freeze
T1=$(date +%s.%N)
rm -rf dist/nodeview
NODEVIEW_STAGE="$STAGE" build/venv/bin/pyinstaller --noconfirm --log-level WARN \
  --distpath dist --workpath build/pyinstaller packaging/nodeview.spec
T2=$(date +%s.%N)
APPDIR=dist/nodeview
[ -x "$APPDIR/nodeview" ] || fail "PyInstaller produced no $APPDIR/nodeview"
for mod in torch dask distributed pyarrow; do  # server/training libraries never ride along
  if [ -e "$APPDIR/_internal/$mod" ]; then fail "the frozen app bundles $mod"; fi
done

# --- Python's own libraries carry their symbol tables when Python was built from source (pyenv:
# ~20 MB). Strip only those: the wheels' libraries are patchelf-ed by auditwheel, and strip breaks
# them ("ELF load command address/offset not page-aligned"), so PyInstaller's strip=True is off.
for f in "$APPDIR"/_internal/libpython3*.so* "$APPDIR"/_internal/python3*/lib-dynload/*.so; do
  [ -f "$f" ] && [ ! -L "$f" ] && readelf -S "$f" 2>/dev/null | grep -q '\.symtab' && strip --strip-unneeded "$f" || true
done

# --- every bundled ELF file must resolve its libraries on this machine, and each system library
# it needs directly must come from a package the .deb declares (packaging/debian-control.in)
build/venv/bin/python packaging/check_libs.py "$APPDIR" packaging/debian-control.in \
  || fail "unresolved or undeclared libraries (above): install them on the build machine, or add their package to packaging/debian-control.in"

# --- .tar.gz
TAR=""
if [ "$MAKE_TAR" = 1 ]; then
  TAR="dist/nodeview-$VERSION-linux-x86_64.tar.gz"
  tar -C dist -czf "$TAR" nodeview
fi

# --- .deb (xz), installs under /opt/nodeview
DEB=""
if [ "$MAKE_DEB" = 1 ]; then
  PKG="build/deb/nodeview_${VERSION}_amd64"
  rm -rf "$PKG"; mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" \
    "$PKG/usr/share/icons/hicolor/scalable/apps" "$PKG/usr/share/icons/hicolor/256x256/apps" "$PKG/usr/share/doc/nodeview"
  cp -a "$APPDIR" "$PKG/opt/nodeview"
  ln -s /opt/nodeview/nodeview "$PKG/usr/bin/nodeview"
  cp packaging/nodeview.desktop "$PKG/usr/share/applications/"
  cp resources/icons/nodeview.svg "$PKG/usr/share/icons/hicolor/scalable/apps/nodeview.svg"
  cp "$STAGE/resources/icons/nodeview.png" "$PKG/usr/share/icons/hicolor/256x256/apps/nodeview.png"
  cp resources/fonts/LICENSE-DejaVu.txt "$PKG/usr/share/doc/nodeview/"
  [ -f LICENSE ] && cp LICENSE "$PKG/usr/share/doc/nodeview/copyright"
  SIZE_KB=$(du -sk "$PKG" | cut -f1)
  sed -e "s/@VERSION@/$VERSION/" -e "s/@SIZE@/$SIZE_KB/" packaging/debian-control.in > "$PKG/DEBIAN/control"
  DEB="dist/nodeview_${VERSION}_amd64.deb"
  dpkg-deb --root-owner-group -Zxz -z9 --build "$PKG" "$DEB" >/dev/null
fi
T3=$(date +%s.%N)

build/venv/bin/python - "$T0" "$T1" "$T2" "$T3" "$APPDIR" "$TAR" "$DEB" <<'PY'
import json, os, sys
t0, t1, t2, t3 = map(float, sys.argv[1:5])
appdir, tar, deb = sys.argv[5:8]
def tree(p):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs if not os.path.islink(os.path.join(d, f)))
report = {
    "seconds": {"setup": round(t1 - t0, 1), "pyinstaller": round(t2 - t1, 1), "archives": round(t3 - t2, 1), "total": round(t3 - t0, 1)},
    "one_folder_mb": round(tree(appdir) / 1e6, 1),
    "tar_gz_mb": round(os.path.getsize(tar) / 1e6, 1) if tar else None,
    "deb_mb": round(os.path.getsize(deb) / 1e6, 1) if deb else None,
}
os.makedirs("build", exist_ok=True)
json.dump(report, open("build/build-report.json", "w"), indent=1)
print(json.dumps(report))
PY
echo "build.sh: OK: $APPDIR ${TAR} ${DEB}"
