"""Where a PACS is and how to log in, without secrets on the command line or in logs.

The server is named by a URL: ``http(s)://host[:port]/dicom-web`` for DICOMweb, or
``dicom://CALLED_AET@host:port?calling=RAOUTCOME&retrieve=get|move&move_port=11113`` for DIMSE.
Credentials come from the environment (``RAOUTCOME_PACS_USER`` + ``RAOUTCOME_PACS_PASSWORD`` for
HTTP basic auth, or ``RAOUTCOME_PACS_TOKEN`` for a bearer token) or from a TOML file
(``username``/``password`` or ``token``; path from ``--credentials`` or
``RAOUTCOME_PACS_CREDENTIALS``) that only its owner may read (mode 0600 or stricter). A URL with a
user or password in it is refused: it would end up in shell histories and process lists.
"""
from __future__ import annotations

__all__ = ["ServerSpec", "server_spec", "PacsError"]

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from raoutcome.errors import InputError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


class PacsError(InputError):
    """The server, its answer or its settings are unusable; the message names the study when there is one."""


@dataclass(frozen=True)
class ServerSpec:
    """A parsed server URL plus credentials. ``repr`` never shows a secret."""

    url: str
    kind: str                      # dicomweb | dimse
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None   # PEM file of trusted CAs (TLS); None: the system store
    verify_tls: bool = True
    timeout_s: float = 60.0
    max_bytes: int = 512 * 2**20   # largest answer accepted (one instance, one search page)
    host: str = ""
    port: int = 0
    called_aet: str = ""
    calling_aet: str = "RAOUTCOME"
    retrieve: str = "get"          # DIMSE: get (C-GET) | move (C-MOVE to our own storage SCP)
    move_port: int = 0

    @property
    def auth_kind(self) -> str:
        return "bearer" if self.token else "basic" if self.username else "none"


def _read_file(path: Path) -> dict:
    if not path.is_file():
        raise PacsError(f"{path}: credentials file not found")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PacsError(f"{path}: credentials file is readable by others (mode {mode:04o}); "
                        f"run `chmod 600 {path}`")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise PacsError(f"{path}: credentials file is not valid TOML ({type(err).__name__})") from None
    unknown = set(data) - {"username", "password", "token"}
    if unknown:
        raise PacsError(f"{path}: unknown key(s) {sorted(unknown)} (expected username/password or token)")
    return {k: str(v) for k, v in data.items()}


def server_spec(url: str, credentials: str | Path | None = None, ca_bundle: str | Path | None = None,
                insecure: bool = False, timeout_s: float = 60.0, max_bytes: int | None = None) -> ServerSpec:
    """Parse ``url`` and gather credentials from the environment or a 0600 file."""
    parts = urlsplit(url)
    if parts.password or (parts.scheme in ("http", "https") and parts.username):
        raise PacsError("the server URL holds a user name or password; put them in RAOUTCOME_PACS_USER / "
                        "RAOUTCOME_PACS_PASSWORD or a 0600 credentials file instead")
    secrets: dict[str, str] = {}
    cred_path = credentials or os.environ.get("RAOUTCOME_PACS_CREDENTIALS")
    if cred_path:
        secrets = _read_file(Path(cred_path))
    else:
        env = {"username": "RAOUTCOME_PACS_USER", "password": "RAOUTCOME_PACS_PASSWORD", "token": "RAOUTCOME_PACS_TOKEN"}
        secrets = {k: os.environ[v] for k, v in env.items() if os.environ.get(v)}
    if ("username" in secrets) != ("password" in secrets):
        raise PacsError("credentials: give both a user name and a password (or a token)")
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise PacsError(f"{ca_bundle}: CA bundle not found")
    common = dict(username=secrets.get("username"), password=secrets.get("password"), token=secrets.get("token"),
                  ca_bundle=str(ca_bundle) if ca_bundle else None, verify_tls=not insecure, timeout_s=timeout_s)
    if max_bytes:
        common["max_bytes"] = int(max_bytes)
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise PacsError(f"server URL has no host: {url!r}")
        return ServerSpec(url=url.rstrip("/"), kind="dicomweb", host=parts.hostname, port=parts.port or 0, **common)
    if parts.scheme == "dicom":
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if not parts.hostname or not parts.port:
            raise PacsError(f"DIMSE URL needs host and port: dicom://AET@host:port (got {url!r})")
        called = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else "ANY-SCP"
        retrieve = query.get("retrieve", "get")
        if retrieve not in ("get", "move"):
            raise PacsError(f"retrieve={retrieve!r}: expected get (C-GET) or move (C-MOVE)")
        return ServerSpec(url=url, kind="dimse", host=parts.hostname, port=parts.port, called_aet=called,
                          calling_aet=query.get("calling", "RAOUTCOME"), retrieve=retrieve,
                          move_port=int(query.get("move_port", 0)), **common)
    raise PacsError(f"server URL must start with http://, https:// (DICOMweb) or dicom:// (DIMSE): {url!r}")
