"""The local cache of studies retrieved from a PACS (Qt-free).

Layout: ``ROOT/<sha1(StudyInstanceUID)[:16]>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`` plus a
``.nodeview-cache.json`` marker written when a retrieve completes (study UID, series retrieved,
instance count, time; never patient data). A study without the marker is incomplete (cancelled or
failed) and is not shown as cached. :meth:`StudyCache.enforce_limit` removes the least recently
used complete studies (marker time, updated when a study is opened) until the cache fits its size
limit; :meth:`StudyCache.clear` empties it. Only folders with NodeView's layout are ever removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = ".nodeview-cache.json"
DEFAULT_LIMIT_BYTES = 20 * 1024**3


def default_cache_dir() -> Path:
    """``NODEVIEW_CACHE_DIR``, else ``$XDG_CACHE_HOME/nodeview/pacs`` (``~/.cache/nodeview/pacs``)."""
    env = os.environ.get("NODEVIEW_CACHE_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "nodeview" / "pacs"


@dataclass(frozen=True)
class CachedStudy:
    study_uid: str
    folder: Path
    n_instances: int
    size_bytes: int
    last_used: float


class StudyCache:
    def __init__(self, root: str | os.PathLike[str] | None = None, limit_bytes: int = DEFAULT_LIMIT_BYTES) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.limit_bytes = int(limit_bytes)

    def folder(self, study_uid: str) -> Path:
        return self.root / hashlib.sha1(study_uid.encode()).hexdigest()[:16]

    def is_cached(self, study_uid: str) -> bool:
        return (self.folder(study_uid) / MARKER).is_file()

    def mark_complete(self, study_uid: str, series_uids: list[str], n_instances: int) -> None:
        folder = self.folder(study_uid)
        doc = {"study_uid": study_uid, "series": series_uids, "instances": n_instances, "retrieved": time.time()}
        tmp = folder / (MARKER + ".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, folder / MARKER)

    def instances(self, study_uid: str) -> int:
        """How many instances the completed retrieve of this study brought (0: not cached)."""
        try:
            return int(json.loads((self.folder(study_uid) / MARKER).read_text()).get("instances", 0))
        except (OSError, ValueError, TypeError):
            return 0

    def is_current(self, study_uid: str, n_on_pacs: int | None) -> bool:
        """Cached, and holding at least as many instances as the PACS now lists (None: unknown)."""
        return self.is_cached(study_uid) and (n_on_pacs is None or self.instances(study_uid) >= n_on_pacs)

    def touch(self, study_uid: str) -> None:
        marker = self.folder(study_uid) / MARKER
        if marker.is_file():
            os.utime(marker)

    def studies(self) -> list[CachedStudy]:
        out: list[CachedStudy] = []
        if not self.root.is_dir():
            return out
        for folder in sorted(self.root.iterdir()):
            marker = folder / MARKER
            if not marker.is_file():
                continue
            try:
                doc = json.loads(marker.read_text())
            except (OSError, ValueError):
                continue
            out.append(
                CachedStudy(
                    str(doc.get("study_uid", "")), folder, int(doc.get("instances", 0)), _size(folder),
                    marker.stat().st_mtime,
                )
            )  # fmt: skip
        return out

    def size_bytes(self) -> int:
        return sum(_size(f) for f in self._own_folders())

    def _own_folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [f for f in self.root.iterdir() if f.is_dir() and len(f.name) == 16 and _is_hex(f.name)]

    def enforce_limit(self, keep: str | None = None) -> list[str]:
        """Remove least recently used complete studies (never ``keep``) and incomplete leftovers
        until the cache fits; the study UIDs removed."""
        removed: list[str] = []
        for folder in self._own_folders():  # incomplete retrieves (no marker) go first
            if not (folder / MARKER).exists() and (keep is None or folder != self.folder(keep)):
                shutil.rmtree(folder, ignore_errors=True)
        total = self.size_bytes()
        for study in sorted(self.studies(), key=lambda s: s.last_used):
            if total <= self.limit_bytes:
                break
            if study.study_uid == keep:
                continue
            shutil.rmtree(study.folder, ignore_errors=True)
            total -= study.size_bytes
            removed.append(study.study_uid)
        return removed

    def clear(self) -> int:
        """Remove every cached study; the number of folders removed."""
        folders = self._own_folders()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        return len(folders)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total
