"""A throwaway Orthanc PACS on the loopback interface, for the tests and the benchmark.

Starts the Debian ``orthanc`` binary (``apt-get install orthanc orthanc-dicomweb``) with its own
config and storage in a temporary folder, HTTP (REST + DICOMweb) and DICOM on free ports bound to
127.0.0.1 only, basic auth on, our AE registered for C-MOVE, and stops it (only the process it
started) on exit. :func:`available` says why it cannot run when the binary or plugin is missing.

:class:`TlsProxy` puts a real TLS endpoint (Python's ``ssl``, i.e. OpenSSL, with a given certificate)
in front of it, as a hospital's TLS-terminating reverse proxy does: Debian's Orthanc 1.10.1 crashes
(SIGSEGV) on the first HTTPS request when its own ``SslEnabled`` is used, so the HTTPS round trip is
tested through the proxy.
"""
from __future__ import annotations

__all__ = ["available", "Orthanc", "TlsProxy", "self_signed_certificate", "ORTHANC_BINARY", "DICOMWEB_PLUGIN"]

import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ORTHANC_BINARY = "Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def available() -> str | None:
    """None when Orthanc and its DICOMweb plugin are installed, else the reason."""
    if shutil.which(ORTHANC_BINARY) is None:
        return "the Orthanc binary is not installed (apt-get install orthanc orthanc-dicomweb)"
    if not DICOMWEB_PLUGIN.exists():
        return f"the Orthanc DICOMweb plugin is missing ({DICOMWEB_PLUGIN}; apt-get install orthanc-dicomweb)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Orthanc:
    """``with Orthanc() as pacs:`` — ``pacs.dicomweb_url``, ``pacs.dimse_url(...)``, ``pacs.upload(path)``."""

    user, password = "raoutcome", "test-secret"

    def __init__(self, folder: str | Path | None = None, start_timeout_s: float = 30.0):
        reason = available()
        if reason:
            raise RuntimeError(reason)
        self._tmp = tempfile.TemporaryDirectory(prefix="orthanc-") if folder is None else None
        self.folder = Path(folder or self._tmp.name)
        self.http_port, self.dicom_port, self.move_port = _free_port(), _free_port(), _free_port()
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    def dimse_url(self, retrieve: str = "get") -> str:
        return (f"dicom://ORTHANC@127.0.0.1:{self.dicom_port}?calling=RAOUTCOME&retrieve={retrieve}"
                f"&move_port={self.move_port}")

    def __enter__(self) -> "Orthanc":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        config = {
            "Name": "raoutcome-test", "StorageDirectory": str(self.folder / "db"),
            "IndexDirectory": str(self.folder / "db"), "HttpPort": self.http_port, "DicomPort": self.dicom_port,
            "HttpBindAddress": "127.0.0.1", "DicomBindAddress": "127.0.0.1", "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True, "RegisteredUsers": {self.user: self.password},
            "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomAet": "ORTHANC", "DicomCheckCalledAet": False, "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {"raoutcome": ["RAOUTCOME", "127.0.0.1", self.move_port]},
            "HttpCompressionEnabled": False, "StableAge": 1, "ConcurrentJobs": 1, "LimitFindResults": 0,
            "LimitFindInstances": 0, "OverwriteInstances": False,
        }
        path = self.folder / "orthanc.json"
        path.write_text(json.dumps(config))
        self._log = open(self.folder / "orthanc.log", "wb")
        self.proc = subprocess.Popen([ORTHANC_BINARY, str(path)], stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start (code {self.proc.returncode}); "
                                   f"log: {(self.folder / 'orthanc.log').read_text()[-2000:]}")
            try:
                self.get("/system")
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {self.start_timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # REST helpers ------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        import base64
        import urllib.request

        req = urllib.request.Request(self.http_url + path, data=body, method=method)
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        if content_type:
            req.add_header("Content-Type", content_type)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=30) as resp:
            data = resp.read()
        return json.loads(data) if data else None

    def get(self, path: str):
        return self._request("GET", path)

    def upload(self, path: str | Path) -> dict:
        return self._request("POST", "/instances", Path(path).read_bytes(), "application/dicom")

    def upload_bytes(self, data: bytes) -> dict:
        return self._request("POST", "/instances", data, "application/dicom")

    def instances_of_study(self, study_uid: str) -> list[dict]:
        """Every instance of a study, as Orthanc's simplified tags (for checks in tests)."""
        found = self._request("POST", "/tools/find", json.dumps(
            {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}, "Expand": True}).encode(),
            "application/json")
        return found

    def file(self, orthanc_id: str) -> bytes:
        import base64
        import urllib.request

        req = urllib.request.Request(f"{self.http_url}/instances/{orthanc_id}/file")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=30) as resp:
            return resp.read()


def self_signed_certificate(folder: str | Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway self-signed certificate for ``host`` (``openssl req -x509``): (certificate, key) PEM files."""
    folder = Path(folder)
    key, cert = folder / "tls-key.pem", folder / "tls-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


class TlsProxy:
    """``with TlsProxy(cert, key, upstream_port) as proxy:`` — HTTPS on ``proxy.port`` (127.0.0.1), every
    connection decrypted and forwarded byte for byte to ``127.0.0.1:upstream_port`` (one thread pair each)."""

    def __init__(self, certificate: str | Path, key: str | Path, upstream_port: int):
        import ssl

        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(certificate), str(key))
        self.upstream = ("127.0.0.1", upstream_port)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self._closed = False

    def url(self, path: str = "/dicom-web") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> "TlsProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        self.sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        import ssl

        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):  # the client refused our certificate: nothing to forward
            raw.close()
            return
        up = socket.create_connection(self.upstream, timeout=60)

        def pump(src, dst):
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        back = threading.Thread(target=pump, args=(up, tls), daemon=True)
        back.start()
        pump(tls, up)
        back.join(timeout=60)
        tls.close()
        up.close()
