"""Talking to a PACS: search, retrieve and store over DICOMweb (dicomweb-client) or DIMSE (pynetdicom).

Both transports offer the same four calls, so pull and score never know which one they use:

- :meth:`studies` — the studies with an image of the asked modalities since a date, optionally of
  one patient (QIDO-RS ``/studies`` or C-FIND at STUDY level), streamed page by page (DICOMweb
  ``limit``/``offset``);
- :meth:`instances` — the instances of one study (QIDO-RS ``/studies/{uid}/instances`` or C-FIND
  SERIES then IMAGE level), filtered by modality and body part;
- :meth:`retrieve` — one instance (WADO-RS, or C-GET / C-MOVE to our own storage SCP);
- :meth:`store` — one instance (STOW-RS or C-STORE); :meth:`has_instance` says whether one is there.

Every answer is checked before use: its HTTP content type must be the one asked for, its size at
most ``ServerSpec.max_bytes`` (read in chunks and cut off, never loaded whole first), and the
attributes the caller relies on must be present and match what was asked. A bad answer raises
:class:`~raoutcome.interop.credentials.PacsError` naming the study (by its pseudonymous key when the
caller gives one, never by patient data). Secrets never reach a message: errors quote the URL path,
not headers.
"""
from __future__ import annotations

__all__ = ["StudyRef", "InstanceRef", "connect", "DicomWebServer", "DimseServer"]

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from pydicom.dataset import Dataset

from raoutcome.interop.credentials import PacsError, ServerSpec

_PAGE = 200


@dataclass(frozen=True)
class StudyRef:
    study_uid: str
    patient_id: str
    study_date: str  # YYYYMMDD ('' when the server gives none)


@dataclass(frozen=True)
class InstanceRef:
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str = ""
    body_part: str = ""


def connect(spec: ServerSpec, label: Callable[[str], str] = lambda uid: uid):
    """A server client for ``spec``; ``label(study_uid)`` names a study in error messages."""
    if spec.kind == "dicomweb":
        return DicomWebServer(spec, label)
    return DimseServer(spec, label)


def _date_range(since: dt.date | None) -> str | None:
    return f"{since:%Y%m%d}-" if since else None


# --------------------------------------------------------------------------------------- DICOMweb
def _guarded_session(spec: ServerSpec):
    """A requests Session that checks content type and caps the size of every answer."""
    import requests

    class GuardedSession(requests.Session):
        def request(self, method, url, **kwargs):  # noqa: D401 - requests API
            kwargs["stream"] = True
            kwargs.setdefault("timeout", spec.timeout_s)
            resp = super().request(method, url, **kwargs)
            # UIDs in the path are the study's identifiers: messages show the resource, not them
            path = re.sub(r"\d+(\.\d+)+", "{uid}", requests.utils.urlparse(url).path)
            if resp.status_code >= 400 or resp.status_code == 204:
                resp._content = resp.raw.read(65536, decode_content=True) or b""
                resp._content_consumed = True
                return resp
            accept = str((kwargs.get("headers") or {}).get("Accept", "") or self.headers.get("Accept", ""))
            ctype = resp.headers.get("Content-Type", "")
            try:
                _check_type(method, path, accept, ctype)
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > spec.max_bytes:
                    raise _TooLarge(f"{method} {path}: answer of {int(declared)} bytes exceeds the limit of "
                                    f"{spec.max_bytes} bytes")
                chunks, total = [], 0
                for chunk in resp.iter_content(1 << 16):
                    total += len(chunk)
                    if total > spec.max_bytes:
                        raise _TooLarge(f"{method} {path}: answer larger than the limit of {spec.max_bytes} bytes")
                    chunks.append(chunk)
            except (_TooLarge, _WrongType) as err:
                # Hand dicomweb-client an error status it does not retry; _call reads the reason back.
                resp.close()
                resp.status_code = 502
                resp.reason = "refused by raoutcome"
                resp._raoutcome_error = str(err)
                resp._content = b""
                resp._content_consumed = True
                return resp
            resp._content = b"".join(chunks)
            resp._content_consumed = True
            return resp

    session = GuardedSession()
    if spec.token:
        session.headers["Authorization"] = f"Bearer {spec.token}"
    elif spec.username:
        session.auth = (spec.username, spec.password)
    session.verify = spec.ca_bundle if (spec.verify_tls and spec.ca_bundle) else spec.verify_tls
    session.trust_env = False  # no proxy or netrc from the environment: talk to the named server only
    return session


class _TooLarge(Exception):
    pass


class _WrongType(Exception):
    pass


def _check_type(method: str, path: str, accept: str, ctype: str) -> None:
    """Refuse an answer whose media type is not what the request accepted."""
    got = ctype.split(";", 1)[0].strip().lower()
    if method == "POST":  # STOW-RS answers in JSON or XML, or nothing
        ok = got in ("", "application/dicom+json", "application/json", "application/dicom+xml", "text/xml",
                     "application/xml")
    elif "multipart/related" in accept:
        ok = got == "multipart/related" and "application/dicom" in ctype.lower()
    elif "json" in accept:
        ok = got in ("application/dicom+json", "application/json")
    else:
        ok = True
    if not ok:
        raise _WrongType(f"{method} {path}: wrong content type {ctype or '(none)'!r} for an answer to Accept {accept!r}")


class DicomWebServer:
    """QIDO-RS / WADO-RS / STOW-RS through :class:`dicomweb_client.DICOMwebClient`."""

    def __init__(self, spec: ServerSpec, label: Callable[[str], str] = lambda uid: uid):
        from dicomweb_client.api import DICOMwebClient

        self.spec, self.label = spec, label
        self.client = DICOMwebClient(url=spec.url, session=_guarded_session(spec))
        # retry only what the server says is transient (429, 408, 503, 504), briefly
        self.client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=250)

    def _call(self, what: str, study_uid: str | None, fn, *args, **kwargs):
        import requests

        where = f"study {self.label(study_uid)}: " if study_uid else ""
        try:
            return fn(*args, **kwargs)
        except (_TooLarge, _WrongType) as err:
            raise PacsError(f"{where}{what}: {err}") from None
        except requests.HTTPError as err:
            refused = getattr(err.response, "_raoutcome_error", None)
            if refused:
                raise PacsError(f"{where}{what}: {refused}") from None
            code = err.response.status_code if err.response is not None else "?"
            raise PacsError(f"{where}{what}: server answered HTTP {code}") from None
        except requests.exceptions.SSLError as err:
            raise PacsError(f"{where}{what}: TLS verification failed ({type(err).__name__})") from None
        except requests.RequestException as err:
            raise PacsError(f"{where}{what}: cannot reach the server ({type(err).__name__})") from None
        except PacsError:
            raise
        except Exception as err:  # noqa: BLE001 - a malformed answer of any kind
            raise PacsError(f"{where}{what}: malformed answer ({type(err).__name__}: {str(err)[:200]})") from None

    def studies(self, since: dt.date | None, modalities: Sequence[str],
                patient_id: str | None = None) -> Iterator[StudyRef]:
        seen: set[str] = set()
        for modality in modalities:
            offset = 0
            while True:
                filters = {"ModalitiesInStudy": modality}
                if since:
                    filters["StudyDate"] = _date_range(since)
                if patient_id:
                    filters["PatientID"] = patient_id
                page = self._call("QIDO-RS study search", None, self.client.search_for_studies,
                                  search_filters=filters, fields=["PatientID", "StudyDate"],
                                  limit=_PAGE, offset=offset)
                if not isinstance(page, list):
                    raise PacsError("QIDO-RS study search: the answer is not a JSON array")
                for item in page:
                    ds = _from_json(item, "QIDO-RS study search", None)
                    uid = _need(ds, "StudyInstanceUID", "QIDO-RS study search", None)
                    if uid in seen:
                        continue
                    seen.add(uid)
                    yield StudyRef(uid, str(ds.get("PatientID", "")), str(ds.get("StudyDate", "")))
                if len(page) < _PAGE:
                    break
                offset += len(page)
            if len(seen) > 100_000:  # bounded memory: a study listed again later is skipped by the ledger
                seen.clear()

    def instances(self, study_uid: str, modalities: Sequence[str], body_parts: Sequence[str] = ()) -> list[InstanceRef]:
        page = self._call("QIDO-RS instance search", study_uid, self.client.search_for_instances,
                          study_instance_uid=study_uid, fields=["Modality", "BodyPartExamined", "SeriesInstanceUID"])
        if not isinstance(page, list):
            raise PacsError(f"study {self.label(study_uid)}: QIDO-RS instance search: the answer is not a JSON array")
        out = []
        for item in page:
            ds = _from_json(item, "QIDO-RS instance search", self.label(study_uid))
            ref = InstanceRef(study_uid, _need(ds, "SeriesInstanceUID", "QIDO-RS instance search", self.label(study_uid)),
                              _need(ds, "SOPInstanceUID", "QIDO-RS instance search", self.label(study_uid)),
                              str(ds.get("Modality", "")), str(ds.get("BodyPartExamined", "")).upper())
            if _keep(ref, modalities, body_parts):
                out.append(ref)
        return out

    def retrieve(self, ref: InstanceRef) -> Dataset:
        ds = self._call("WADO-RS retrieve", ref.study_uid, self.client.retrieve_instance,
                        ref.study_uid, ref.series_uid, ref.sop_uid)
        return _check_retrieved(ds, ref, self.label(ref.study_uid))

    def store(self, ds: Dataset) -> None:
        self._call("STOW-RS store", str(ds.StudyInstanceUID), self.client.store_instances, [ds],
                   study_instance_uid=str(ds.StudyInstanceUID))

    def has_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> bool:
        page = self._call("QIDO-RS instance search", study_uid, self.client.search_for_instances,
                          study_instance_uid=study_uid, series_instance_uid=series_uid,
                          search_filters={"SOPInstanceUID": sop_uid})
        return any(_from_json(i, "QIDO-RS", self.label(study_uid)).get("SOPInstanceUID") == sop_uid
                   for i in (page or []))

    def close(self) -> None:
        self.client._session.close()


def _from_json(item, what: str, label: str | None) -> Dataset:
    where = f"study {label}: " if label else ""
    if not isinstance(item, dict):
        raise PacsError(f"{where}{what}: an answer item is not a DICOM JSON object")
    try:
        return Dataset.from_json(item)
    except Exception as err:  # noqa: BLE001
        raise PacsError(f"{where}{what}: malformed DICOM JSON ({type(err).__name__})") from None


def _need(ds: Dataset, keyword: str, what: str, label: str | None) -> str:
    value = ds.get(keyword)
    if not value:
        where = f"study {label}: " if label else ""
        raise PacsError(f"{where}{what}: the answer lacks {keyword}")
    return str(value)


def _keep(ref: InstanceRef, modalities: Sequence[str], body_parts: Sequence[str]) -> bool:
    if ref.modality and modalities and ref.modality.upper() not in {m.upper() for m in modalities}:
        return False
    if body_parts and ref.body_part and ref.body_part.upper() not in {b.upper() for b in body_parts}:
        return False
    return True


def _check_retrieved(ds, ref: InstanceRef, label: str) -> Dataset:
    if not isinstance(ds, Dataset):
        raise PacsError(f"study {label}: retrieve: the answer is not a DICOM instance")
    for keyword, expected in (("StudyInstanceUID", ref.study_uid), ("SeriesInstanceUID", ref.series_uid),
                              ("SOPInstanceUID", ref.sop_uid)):
        got = ds.get(keyword)
        if got is None:
            raise PacsError(f"study {label}: retrieve: the instance lacks {keyword}")
        if str(got) != expected:
            raise PacsError(f"study {label}: retrieve: the server sent another instance ({keyword} differs)")
    return ds


# --------------------------------------------------------------------------------------- DIMSE
class DimseServer:
    """C-FIND (study root), C-GET or C-MOVE, C-STORE through :mod:`pynetdicom`."""

    def __init__(self, spec: ServerSpec, label: Callable[[str], str] = lambda uid: uid):
        self.spec, self.label = spec, label

    # association helpers
    def _ae(self):
        from pynetdicom import AE, StoragePresentationContexts, build_role
        from pynetdicom.sop_class import (StudyRootQueryRetrieveInformationModelFind,
                                          StudyRootQueryRetrieveInformationModelGet,
                                          StudyRootQueryRetrieveInformationModelMove)

        ae = AE(ae_title=self.spec.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.spec.timeout_s
        ae.maximum_pdu_size = 0
        return ae, (StudyRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelGet,
                    StudyRootQueryRetrieveInformationModelMove, StoragePresentationContexts, build_role)

    def _associate(self, purpose: str, study_uid: str | None = None, store_sop: str | None = None):
        ae, (find, get, move, storage, build_role) = self._ae()
        roles = []
        handlers = []
        if purpose == "find":
            ae.add_requested_context(find)
        elif purpose == "get":
            ae.add_requested_context(get)
            for cx in storage[:120]:  # leave room for the Q/R context (at most 128 contexts)
                ae.add_requested_context(cx.abstract_syntax)
                roles.append(build_role(cx.abstract_syntax, scp_role=True))
        elif purpose == "move":
            ae.add_requested_context(move)
        elif purpose == "store":
            ae.add_requested_context(store_sop)
        self._received: list[Dataset] = []
        if purpose == "get":
            from pynetdicom import evt

            handlers = [(evt.EVT_C_STORE, self._on_store)]
        assoc = ae.associate(self.spec.host, self.spec.port, ae_title=self.spec.called_aet,
                             ext_neg=roles or None, evt_handlers=handlers or None)
        if not assoc.is_established:
            where = f"study {self.label(study_uid)}: " if study_uid else ""
            raise PacsError(f"{where}DIMSE {purpose}: association with {self.spec.called_aet}@{self.spec.host}:"
                            f"{self.spec.port} rejected or failed")
        return assoc

    def _on_store(self, event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        total = sum(len(v.value) for v in ds.values() if hasattr(v, "value") and isinstance(v.value, bytes))
        if total > self.spec.max_bytes:
            self._too_large = True
            return 0xA700  # out of resources
        self._received.append(ds)
        return 0x0000

    def _find(self, query: Dataset, study_uid: str | None, what: str) -> Iterator[Dataset]:
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

        assoc = self._associate("find", study_uid)
        try:
            for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
                if not status:
                    raise PacsError(f"{'study ' + self.label(study_uid) + ': ' if study_uid else ''}{what}: "
                                    "no answer from the server (timeout or aborted association)")
                code = int(status.Status)
                if code in (0xFF00, 0xFF01):
                    if identifier is not None:
                        yield identifier
                elif code != 0x0000:
                    raise PacsError(f"{'study ' + self.label(study_uid) + ': ' if study_uid else ''}{what}: "
                                    f"C-FIND failed with status 0x{code:04X}")
        finally:
            assoc.release()

    def studies(self, since: dt.date | None, modalities: Sequence[str],
                patient_id: str | None = None) -> Iterator[StudyRef]:
        """C-FIND answers are collected per modality before yielding (the association is released
        before any retrieve), so memory grows with the number of matching studies of one modality."""
        seen: set[str] = set()
        for modality in modalities:
            q = Dataset()
            q.QueryRetrieveLevel = "STUDY"
            q.StudyInstanceUID = ""
            q.PatientID = patient_id or ""
            q.StudyDate = _date_range(since) or ""
            q.ModalitiesInStudy = modality
            for ds in list(self._find(q, None, "C-FIND study search")):
                uid = _need(ds, "StudyInstanceUID", "C-FIND study search", None)
                if uid not in seen:
                    seen.add(uid)
                    yield StudyRef(uid, str(ds.get("PatientID", "")), str(ds.get("StudyDate", "")))

    def instances(self, study_uid: str, modalities: Sequence[str], body_parts: Sequence[str] = ()) -> list[InstanceRef]:
        label = self.label(study_uid)
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = ""
        q.Modality = ""
        q.BodyPartExamined = ""
        out = []
        for series in list(self._find(q, study_uid, "C-FIND series search")):
            series_uid = _need(series, "SeriesInstanceUID", "C-FIND series search", label)
            qi = Dataset()
            qi.QueryRetrieveLevel = "IMAGE"
            qi.StudyInstanceUID = study_uid
            qi.SeriesInstanceUID = series_uid
            qi.SOPInstanceUID = ""
            for inst in list(self._find(qi, study_uid, "C-FIND image search")):
                ref = InstanceRef(study_uid, series_uid, _need(inst, "SOPInstanceUID", "C-FIND image search", label),
                                  str(series.get("Modality", "")), str(series.get("BodyPartExamined", "")).upper())
                if _keep(ref, modalities, body_parts):
                    out.append(ref)
        return out

    def _ident(self, ref: InstanceRef) -> Dataset:
        q = Dataset()
        q.QueryRetrieveLevel = "IMAGE"
        q.StudyInstanceUID, q.SeriesInstanceUID, q.SOPInstanceUID = ref.study_uid, ref.series_uid, ref.sop_uid
        return q

    def retrieve(self, ref: InstanceRef) -> Dataset:
        label = self.label(ref.study_uid)
        self._too_large = False
        if self.spec.retrieve == "move":
            received = self._move(ref)
        else:
            from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

            assoc = self._associate("get", ref.study_uid)
            try:
                for status, _ in assoc.send_c_get(self._ident(ref), StudyRootQueryRetrieveInformationModelGet):
                    if not status:
                        raise PacsError(f"study {label}: C-GET: no answer from the server")
            finally:
                assoc.release()
            received = self._received
        if self._too_large:
            raise PacsError(f"study {label}: C-GET: instance larger than the limit of {self.spec.max_bytes} bytes")
        if len(received) != 1:
            raise PacsError(f"study {label}: retrieve: expected one instance, received {len(received)}")
        return _check_retrieved(received[0], ref, label)

    def _move(self, ref: InstanceRef) -> list[Dataset]:
        """C-MOVE to ourselves: a storage SCP on ``move_port`` receives the instance."""
        from pynetdicom import AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

        label = self.label(ref.study_uid)
        if not self.spec.move_port:
            raise PacsError("C-MOVE needs move_port=N in the server URL (our storage SCP's port)")
        self._received = []
        ae, _ = self._ae()
        ae.supported_contexts = AllStoragePresentationContexts
        scp = ae.start_server(("127.0.0.1" if self.spec.host in ("127.0.0.1", "localhost") else "",
                               self.spec.move_port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)])
        try:
            assoc = self._associate("move", ref.study_uid)
            try:
                for status, _ in assoc.send_c_move(self._ident(ref), self.spec.calling_aet,
                                                   StudyRootQueryRetrieveInformationModelMove):
                    if not status:
                        raise PacsError(f"study {label}: C-MOVE: no answer from the server")
                    code = int(status.Status)
                    if code not in (0x0000, 0xFF00, 0xB000):
                        raise PacsError(f"study {label}: C-MOVE failed with status 0x{code:04X}")
            finally:
                assoc.release()
        finally:
            scp.shutdown()
        return self._received

    def store(self, ds: Dataset) -> None:
        label = self.label(str(ds.StudyInstanceUID))
        assoc = self._associate("store", str(ds.StudyInstanceUID), store_sop=str(ds.SOPClassUID))
        try:
            status = assoc.send_c_store(ds)
        finally:
            assoc.release()
        if not status or int(status.Status) not in (0x0000, 0xB000, 0xB007, 0xB006):
            code = int(status.Status) if status else None
            raise PacsError(f"study {label}: C-STORE failed (status {code if code is None else f'0x{code:04X}'})")

    def has_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> bool:
        q = self._ident(InstanceRef(study_uid, series_uid, sop_uid))
        return any(str(d.get("SOPInstanceUID", "")) == sop_uid for d in self._find(q, study_uid, "C-FIND"))

    def close(self) -> None:
        pass
