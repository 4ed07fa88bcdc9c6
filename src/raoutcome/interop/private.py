"""The private side of a pull or a scoring run: pseudonym key, re-identification mapping, progress ledger.

Everything that links a pseudonym back to a patient lives in one folder, separate from every
output (default: ``<cohort>.private`` beside the cohort, ``<run>.pacs-private`` beside a run),
created 0700 with files 0600:

- ``key`` — 32 random bytes; pseudonyms are ``HMAC-SHA256(key, value)``, so they are stable across
  pulls and cannot be recomputed without the key (a plain hash of a patient ID could be);
- ``state.sqlite`` — the ledger: patients, studies (original UID, date), instances pulled or refused
  (with the reason), studies scored (with the SR's UID). SQLite commits are atomic, so a crash loses
  at most the instance or study in flight, and lookups keep memory flat whatever the archive size;
- ``mapping.csv`` — the re-identification table (pseudonym, patient ID, study key, study UID, date),
  rewritten atomically at the end of a pull.
"""
from __future__ import annotations

__all__ = ["PrivateStore"]

import csv
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from pathlib import Path

from raoutcome.io_utils import atomic_write

_SCHEMA = """
CREATE TABLE IF NOT EXISTS patients (pseudonym TEXT PRIMARY KEY, patient_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS studies (study_key TEXT PRIMARY KEY, study_uid TEXT NOT NULL, pseudonym TEXT,
                                    study_date TEXT);
CREATE TABLE IF NOT EXISTS instances (sop_key TEXT PRIMARY KEY, study_key TEXT NOT NULL, status TEXT NOT NULL,
                                      view TEXT, path TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS scored (study_key TEXT PRIMARY KEY, status TEXT NOT NULL, sr_uid TEXT, n_images INTEGER,
                                   reason TEXT, rank INTEGER, at REAL);
"""


class PrivateStore:
    """Key, mapping and ledger in one 0700 folder (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        key_path = self.folder / "key"
        if not key_path.exists():
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        self._key = bytes.fromhex(key_path.read_text().strip())
        db = self.folder / "state.sqlite"
        new = not db.exists()
        self.db = sqlite3.connect(db, timeout=60, isolation_level=None)
        if new:
            os.chmod(db, 0o600)
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: every commit survives a crash of the process (what resumability needs);
        # only a power cut can lose the last commits, which a rerun redoes.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def _mac(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()

    def pseudonym(self, patient_id: str) -> str:
        return "P" + self._mac("patient", patient_id)[:12].upper()

    def study_key(self, study_uid: str) -> str:
        return "S" + self._mac("study", study_uid)[:12].upper()

    def sop_key(self, sop_uid: str) -> str:
        return "I" + self._mac("sop", sop_uid)[:16].upper()

    def uid(self, original: str) -> str:
        """A replacement UID (2.25 + 128-bit keyed hash), the same for the same original."""
        return "2.25." + str(int(self._mac("uid", original)[:32], 16))

    # ledger ------------------------------------------------------------------------------
    def remember_study(self, study_uid: str, patient_id: str, study_date: str) -> tuple[str, str]:
        pseudo, key = self.pseudonym(patient_id), self.study_key(study_uid)
        self.db.execute("INSERT OR IGNORE INTO patients VALUES (?, ?)", (pseudo, patient_id))
        self.db.execute("INSERT OR REPLACE INTO studies VALUES (?, ?, ?, ?)", (key, study_uid, pseudo, study_date))
        return pseudo, key

    def instance_status(self, sop_uid: str) -> tuple[str | None, str | None]:
        """(status, relative path) of an instance in the ledger; (None, None) when unknown."""
        row = self.db.execute("SELECT status, path FROM instances WHERE sop_key = ?",
                              (self.sop_key(sop_uid),)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def record_instance(self, sop_uid: str, study_key: str, status: str, view: str | None = None,
                        path: str | None = None, reason: str | None = None) -> None:
        self.db.execute("INSERT OR REPLACE INTO instances VALUES (?, ?, ?, ?, ?, ?)",
                        (self.sop_key(sop_uid) if sop_uid else f"{study_key}-study", study_key, status, view, path,
                         reason))

    def scored_status(self, study_key: str) -> str | None:
        row = self.db.execute("SELECT status FROM scored WHERE study_key = ?", (study_key,)).fetchone()
        return row[0] if row else None

    def record_scored(self, study_key: str, status: str, sr_uid: str | None, n_images: int, reason: str | None,
                      rank: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO scored VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (study_key, status, sr_uid, n_images, reason, rank, time.time()))

    def write_mapping(self) -> Path:
        path = self.folder / "mapping.csv"
        rows = self.db.execute("SELECT s.pseudonym, p.patient_id, s.study_key, s.study_uid, s.study_date "
                               "FROM studies s LEFT JOIN patients p ON p.pseudonym = s.pseudonym ORDER BY 1, 5")
        with atomic_write(path, newline="") as fh:
            os.chmod(fh.name, 0o600)
            writer = csv.writer(fh)
            writer.writerow(["pseudonym", "patient_id", "study_key", "study_uid", "study_date"])
            writer.writerows(rows)
        os.chmod(path, 0o600)
        return path

    def close(self) -> None:
        self.db.close()
