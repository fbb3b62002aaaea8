"""A real Orthanc PACS for the networking tests (issue 23): started by a fixture on 127.0.0.1 with a
generated configuration, free ports and temporary storage; stopped by its pid. Skips (with the
reason) only when the Orthanc binary is absent; ``scripts/bootstrap.sh`` installs it. When the DICOMweb
plugin (Debian ``orthanc-dicomweb``) is installed it is loaded too, under ``/dicom-web/``
(:attr:`Orthanc.dicomweb_url`); the DICOMweb tests skip, saying so, when it is not."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ORTHANC_AET = "ORTHANCTEST"
#: where Debian's orthanc-dicomweb puts the plugin (``dpkg -L orthanc-dicomweb``)
DICOMWEB_PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",)


def dicomweb_plugin() -> str | None:
    """The DICOMweb plugin's path, or None when orthanc-dicomweb is not installed."""
    found = [p for p in DICOMWEB_PLUGINS if os.path.isfile(p)]
    found += sorted(str(p) for p in Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*"))  # other layouts
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Orthanc:
    dicom_port: int
    http_port: int
    aet: str
    process: subprocess.Popen[bytes]
    log: Path
    dicomweb: bool = False

    @property
    def dicomweb_url(self) -> str | None:
        """The DICOMweb base URL (QIDO/WADO/STOW-RS), or None without the plugin."""
        return f"http://127.0.0.1:{self.http_port}/dicom-web" if self.dicomweb else None

    def rest(self, path: str, body: Any = None, method: str | None = None) -> Any:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        with urllib.request.urlopen(req, timeout=60) as rsp:
            raw = rsp.read()
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw

    def node(self):  # type: ignore[no-untyped-def]
        from nodeview.core.pacs import PacsNode

        return PacsNode(self.aet, "127.0.0.1", self.dicom_port)


def start_orthanc(root: Path, modalities: dict[str, list[Any]]) -> Orthanc:
    exe = shutil.which("Orthanc")
    if exe is None:
        pytest.skip("the Orthanc binary is not installed (Debian package orthanc; scripts/bootstrap.sh installs it)")
    dicom_port, http_port = free_port(), free_port()
    root.mkdir(parents=True, exist_ok=True)
    plugin = dicomweb_plugin()
    config = {
        "Name": "nodeview-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "DicomAet": ORTHANC_AET,
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "DicomCheckCalledAet": True,  # an unknown called AE title is rejected (tested)
        "DicomCheckModalityHost": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomModalities": modalities,
        "DicomScuTimeout": 10,
        "DicomAssociationCloseDelay": 0,
        "StableAge": 1,
        "SyncStorageArea": False,  # temporary storage: no fsync per instance (stores 80 images faster)
        "Plugins": [plugin] if plugin else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "ConcurrentJobs": 2,
        "HttpTimeout": 30,
        "LimitFindResults": 0,
        "LimitFindInstances": 0,
    }
    cfg = root / "config.json"
    cfg.write_text(json.dumps(config, indent=1))
    log = root / "orthanc.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([exe, str(cfg)], stdout=fh, stderr=subprocess.STDOUT, cwd=root)
    server = Orthanc(dicom_port, http_port, ORTHANC_AET, proc, log, dicomweb=plugin is not None)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            server.rest("/system")
            return server
        time.sleep(0.2)
    stop_orthanc(server)
    raise RuntimeError("Orthanc did not open its HTTP port within 60 s")


def stop_orthanc(server: Orthanc) -> None:
    if server.process.poll() is None:
        os.kill(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)
