#!/usr/bin/env python3
"""Check the shared libraries of a frozen one-folder app (Linux): every ELF file's libraries must
resolve (directly or through other libraries), and each one that a bundled file needs directly and
takes from the system (not from the bundle) must come from a Debian package that the .deb declares
in ``Depends`` (or from the few base packages every Debian system has).

    python3 packaging/check_libs.py dist/nodeview packaging/debian-control.in

Exit 0 when all is well; 1 with one line per problem otherwise:
  * ``not found``: a library no bundled file and no installed package provides (install it on the
    build machine and declare it, or make PyInstaller bundle it);
  * ``undeclared``: a system library from a package missing from Depends (a clean target machine
    would not have it: add the package to packaging/debian-control.in).
Only a bundled file's direct dependencies (DT_NEEDED) need a declared package: a system library's
own dependencies come with its package. Uses ldd, readelf (binutils) and dpkg-query only (no
third-party python packages).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

# Present on every Debian system (priority required/essential); need not be declared.
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}


def elf_files(root: Path) -> list[Path]:
    found = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            with open(path, "rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    found.append(path)
    return found


def ldd(path: Path, libdir: Path) -> list[tuple[str, str | None]]:
    """(soname, resolved path or None) for each library ``path`` needs, resolved as at run time:
    the frozen app's bootloader puts its library folder (``_internal``) on LD_LIBRARY_PATH; the
    file's own folder stands in for its ``$ORIGIN`` RPATH."""
    env = dict(os.environ, LD_LIBRARY_PATH=f"{libdir}:{path.parent}")
    out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env).stdout
    libs = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) => (not found|(\S+) \(0x[0-9a-f]+\))", line)
        if m:
            libs.append((m.group(1), None if m.group(2) == "not found" else m.group(3)))
    return libs


def direct_needs(path: Path) -> set[str]:
    """The DT_NEEDED entries of ``path`` (its own dependencies, not those of its dependencies)."""
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
    return set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out))


def declared_depends(control: Path) -> set[str]:
    text = control.read_text()
    m = re.search(r"^Depends:(.*(?:\n[ \t].*)*)", text, re.MULTILINE)
    if not m:
        return set()
    names = set()
    for item in m.group(1).replace("\n", " ").split(","):
        for alt in item.split("|"):
            name = alt.strip().split(" ")[0].split(":")[0]
            if name:
                names.add(name)
    return names


def owning_package(path: str, cache: dict[str, str | None]) -> str | None:
    real = os.path.realpath(path)
    if real not in cache:
        owner = None
        for candidate in (path, real):
            res = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
            if res.returncode == 0:
                owner = res.stdout.split(":")[0].strip()
                break
            # /lib is a symlink to /usr/lib on Debian 12 (merged /usr): dpkg knows one spelling
            alt = candidate.replace("/usr/lib/", "/lib/", 1) if candidate.startswith("/usr/lib/") else (
                candidate.replace("/lib/", "/usr/lib/", 1) if candidate.startswith("/lib/") else None)
            if alt:
                res = subprocess.run(["dpkg-query", "-S", alt], capture_output=True, text=True)
                if res.returncode == 0:
                    owner = res.stdout.split(":")[0].strip()
                    break
        cache[real] = owner
    return cache[real]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root, control = Path(argv[0]).resolve(), Path(argv[1])
    depends = declared_depends(control)
    allowed = depends | BASE_PACKAGES
    cache: dict[str, str | None] = {}
    libdir = root / "_internal" if (root / "_internal").is_dir() else root
    problems: dict[str, list[str]] = {}  # problem -> the files that have it
    used: dict[str, set[str]] = {}
    files = elf_files(root)
    for f in files:
        rel = str(f.relative_to(root))
        direct = direct_needs(f)
        for soname, resolved in ldd(f, libdir):
            if resolved is None:
                problems.setdefault(f"not found: {soname}", []).append(rel)
                continue
            if Path(resolved).resolve().is_relative_to(root) or soname not in direct:
                continue  # bundled, or a system library's own dependency (its package declares it)
            pkg = owning_package(resolved, cache)
            if pkg is None:
                problems.setdefault(f"undeclared: {soname} ({resolved}) belongs to no Debian package", []).append(rel)
            elif pkg not in allowed:
                problems.setdefault(f"undeclared: {soname} from package {pkg}: add {pkg} to Depends", []).append(rel)
            else:
                used.setdefault(pkg, set()).add(soname)
    for problem, needers in sorted(problems.items()):
        more = f" and {len(needers) - 1} more" if len(needers) > 1 else ""
        print(f"check_libs: {problem} (needed by {needers[0]}{more})", file=sys.stderr)
    print(f"check_libs: {len(files)} ELF files; system libraries from {len(used)} package(s): "
          + ", ".join(f"{p} ({', '.join(sorted(s))})" for p, s in sorted(used.items())))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
