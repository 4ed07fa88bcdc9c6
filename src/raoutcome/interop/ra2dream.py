"""The RA2-DREAM Challenge layout (Sun et al. 2022, seeds/000): import a challenge table as a cohort, export
per-joint predictions as a submission.

The challenge ships one row per patient set (one visit: both hands and both feet)::

    Patient_ID, Overall_Tol, Overall_erosion, Overall_narrowing, <one column per joint and kind>

with joint columns named ``<side><part>_<group>_<E|J>__<site>``: side ``L``/``R``, part ``H`` (hand) or
``F`` (foot), ``E`` erosion, ``J`` joint-space narrowing, e.g. ``LH_mcp_E__ip`` (left thumb IP erosion),
``LH_wrist_J__radcar`` (left radiocarpal JSN), ``RF_mtp_E__1``; and one image per part, ``UAB001-LH.jpg``.
:data:`DREAM_COLUMNS` lists the 90 columns in the challenge's order; :func:`dream_column` and
:func:`column_joint` translate to and from this library's joint names (``hand_left:IP``,
:func:`raoutcome.anatomy.joint_name`).

:func:`import_dream` writes a cohort folder (manifest tables, ``cohort.toml`` whose ``root`` is the image
folder, so images are read where they lie) and loads it with :func:`raoutcome.cohort.load`: one call. Each
patient set becomes one patient with one visit ``v0`` at time 0; the overall scores become ``svdh_total``,
``svdh_erosion`` and ``svdh_jsn``; the joint columns the ``joints`` table. :func:`export_dream` writes
per-joint predictions (a ``joints`` table or :func:`raoutcome.training.site_train.joints_frame` output) in
the submission layout, the overall scores as the sums of the joints.
"""
from __future__ import annotations

__all__ = ["DREAM_COLUMNS", "DREAM_JOINT_COLUMNS", "DREAM_OVERALL", "DREAM_VIEWS", "column_joint", "dream_column",
           "export_dream", "import_dream", "read_dream_table"]

import re
from pathlib import Path

import numpy as np
import pandas as pd

from raoutcome import anatomy
from raoutcome.errors import InputError
from raoutcome.io_utils import atomic_write

#: Challenge image suffix of each view (``UAB001-LH.jpg``).
DREAM_VIEWS: dict[str, str] = {"hand_left": "LH", "hand_right": "RH", "foot_left": "LF", "foot_right": "RF"}
#: Overall columns -> visit column.
DREAM_OVERALL: dict[str, str] = {"Overall_Tol": "svdh_total", "Overall_erosion": "svdh_erosion",
                                 "Overall_narrowing": "svdh_jsn"}

# site -> (group, challenge site name), per body part and kind
_HAND_EROSION = {"IP": ("mcp", "ip"), **{f"PIP{i}": ("pip", str(i)) for i in range(2, 6)},
                 **{f"MCP{i}": ("mcp", str(i)) for i in range(1, 6)}, "MC1": ("wrist", "mc1"),
                 "MUL": ("wrist", "mul"), "NAV": ("wrist", "nav"), "LUN": ("wrist", "lunate"),
                 "RAD": ("wrist", "radius"), "ULN": ("wrist", "ulna")}
_HAND_JSN = {**{f"PIP{i}": ("pip", str(i)) for i in range(2, 6)}, **{f"MCP{i}": ("mcp", str(i)) for i in range(1, 6)},
             "CMC3": ("wrist", "cmc3"), "CMC4": ("wrist", "cmc4"), "CMC5": ("wrist", "cmc5"),
             "MNA": ("wrist", "mna"), "CNL": ("wrist", "capnlun"), "RADCAR": ("wrist", "radcar")}
_FOOT = {"IP": ("mtp", "ip"), **{f"MTP{i}": ("mtp", str(i)) for i in range(1, 6)}}
_MAP = {("hand", "erosion"): _HAND_EROSION, ("hand", "jsn"): _HAND_JSN, ("foot", "erosion"): _FOOT,
        ("foot", "jsn"): _FOOT}
_LETTER = {"erosion": "E", "jsn": "J"}


def dream_column(joint: str, kind: str) -> str:
    """The challenge column of ``joint`` (``view:site``) and ``kind``, e.g. ``hand_left:IP``, erosion ->
    ``LH_mcp_E__ip``. Raises ``KeyError`` for a joint the challenge does not score."""
    view, _, site = joint.partition(":")
    group, name = _MAP[(anatomy.body_part(view) or "", kind)][site]
    return f"{DREAM_VIEWS[view]}_{group}_{_LETTER[kind]}__{name}"


def _columns() -> list[str]:
    cols = []
    for kind in ("erosion", "jsn"):
        for view in DREAM_VIEWS:
            cols += [dream_column(anatomy.joint_name(view, s), kind) for s in anatomy.sites_for(view, kind)]
    return cols


#: The 86 joint columns (erosion: hands then feet; JSN alike), then with the four leading columns the 90.
DREAM_JOINT_COLUMNS: tuple[str, ...] = tuple(_columns())
DREAM_COLUMNS: tuple[str, ...] = ("Patient_ID", *DREAM_OVERALL, *DREAM_JOINT_COLUMNS)
_BY_COLUMN = {dream_column(anatomy.joint_name(v, s), k): (anatomy.joint_name(v, s), k)
              for k in ("erosion", "jsn") for v in DREAM_VIEWS for s in anatomy.sites_for(v, k)}


def column_joint(column: str) -> tuple[str, str]:
    """``(joint, kind)`` of a challenge column (``LH_wrist_J__radcar`` -> ``("hand_left:RADCAR", "jsn")``)."""
    try:
        return _BY_COLUMN[column]
    except KeyError:
        raise KeyError(f"{column!r} is not an RA2-DREAM joint column") from None


def read_dream_table(path: str | Path) -> pd.DataFrame:
    """Read a challenge table (CSV) and check it: ``Patient_ID`` present and unique, every other column a
    known challenge column with numeric, non-negative values or blanks. Joint columns may be missing (a
    table of overall scores only). Raises :class:`~raoutcome.errors.InputError` naming file, row, column, value."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: RA2-DREAM table not found")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "Patient_ID" not in table:
        raise InputError(f"{path}: no 'Patient_ID' column (columns: {', '.join(table.columns[:6])} ...)")
    problems = []
    unknown = [c for c in table.columns if c not in DREAM_COLUMNS]
    if unknown:
        problems.append(f"{path}: unknown column(s) {', '.join(unknown)} (expected the RA2-DREAM layout)")
    ids = table["Patient_ID"].str.strip()
    for i in np.flatnonzero((ids == "").to_numpy()):
        problems.append(f"{path}: row {i + 2}, column Patient_ID: empty")
    for i in np.flatnonzero(ids.duplicated().to_numpy() & (ids != "").to_numpy()):
        problems.append(f"{path}: row {i + 2}, column Patient_ID: duplicate value {ids.iloc[i]!r}")
    out = pd.DataFrame({"Patient_ID": ids})
    for col in table.columns:
        if col == "Patient_ID" or col in unknown:
            continue
        raw = table[col].str.strip()
        values = pd.to_numeric(raw.replace({"": None, "NA": None, "NaN": None, "nan": None}), errors="coerce")
        bad = values.isna() & ~raw.isin(["", "NA", "NaN", "nan"]) | (values < 0)
        for i in np.flatnonzero(bad.to_numpy())[:20]:
            problems.append(f"{path}: row {i + 2}, column {col}: value {table[col].iloc[i]!r} is not a "
                            "non-negative number")
        out[col] = values
    if problems:
        raise InputError("\n".join(problems))
    return out


def import_dream(table: str | Path, images: str | Path, out_dir: str | Path, visit_id: str = "v0"):
    """Import a challenge table and its image folder as a cohort (written to ``out_dir``, then loaded).

    Images are found as ``<Patient_ID>-<LH|RH|LF|RF>.<jpg|jpeg|png|dcm>`` in ``images``; a patient set without
    any image is an error. Returns the validated :class:`raoutcome.cohort.Cohort`.
    """
    from raoutcome.cohort import load

    table_path, images, out_dir = Path(table), Path(images).resolve(), Path(out_dir)
    frame = read_dream_table(table_path)
    if not images.is_dir():
        raise InputError(f"{images}: RA2-DREAM image folder not found")
    files = {}
    pattern = re.compile(r"^(?P<pid>.+)-(?P<part>LH|RH|LF|RF)\.(jpe?g|png|dcm)$", re.IGNORECASE)
    for f in sorted(images.iterdir()):
        m = pattern.match(f.name)
        if m:
            files[(m["pid"], m["part"].upper())] = f.name
    view_of = {v: k for k, v in DREAM_VIEWS.items()}
    pids = frame["Patient_ID"].tolist()
    image_rows = [{"patient_id": pid, "visit_id": visit_id, "view": view_of[part], "path": files[(pid, part)]}
                  for pid in pids for part in DREAM_VIEWS.values() if (pid, part) in files]
    have = {r["patient_id"] for r in image_rows}
    lacking = [p for p in pids if p not in have]
    if lacking:
        raise InputError(f"{images}: no image named <Patient_ID>-LH/RH/LF/RF.jpg for patient set(s) "
                         f"{', '.join(lacking[:10])}{' ...' if len(lacking) > 10 else ''}")
    visits = pd.DataFrame({"patient_id": pids, "visit_id": visit_id, "time_years": 0.0})
    for col, target in DREAM_OVERALL.items():
        if col in frame:
            visits[target] = frame[col].to_numpy()
    joint_cols = [c for c in frame.columns if c in _BY_COLUMN]
    joints = frame.melt(id_vars="Patient_ID", value_vars=joint_cols, var_name="column", value_name="score")
    joints = joints.dropna(subset=["score"])
    joints["joint"] = joints["column"].map(lambda c: _BY_COLUMN[c][0])
    joints["kind"] = joints["column"].map(lambda c: _BY_COLUMN[c][1])
    joints = joints.rename(columns={"Patient_ID": "patient_id"}).assign(visit_id=visit_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {"patients": pd.DataFrame({"patient_id": pids}), "visits": visits,
              "images": pd.DataFrame(image_rows, columns=["patient_id", "visit_id", "view", "path"]),
              "events": pd.DataFrame(columns=["patient_id", "event", "time_years", "observed"]),
              "joints": joints[["patient_id", "visit_id", "joint", "kind", "score"]]}
    for name, t in tables.items():
        with atomic_write(out_dir / f"{name}.csv") as fh:
            t.to_csv(fh, index=False)
    with atomic_write(out_dir / "cohort.toml") as fh:
        fh.write(f"# imported from the RA2-DREAM table {table_path.resolve()}\nroot = {str(images)!r}\n")
    return load(out_dir)


def export_dream(joints: pd.DataFrame, path: str | Path, visit_id: str | None = None) -> pd.DataFrame:
    """Write per-joint scores (``patient_id, visit_id, joint, kind, score``) in the submission layout, one row per
    patient (its ``visit_id`` visit, or its only visit), ``Overall_*`` the sums of its joints. Returns the table."""
    j = joints.assign(patient_id=joints["patient_id"].astype(str), visit_id=joints["visit_id"].astype(str))
    if visit_id is not None:
        j = j[j["visit_id"] == str(visit_id)]
    many = j.groupby("patient_id")["visit_id"].nunique()
    if (many > 1).any():
        raise InputError(f"export_dream: patient {many[many > 1].index[0]} has several visits; name one with "
                         "visit_id (the challenge layout holds one visit per patient set)")
    j = j[[(joint, kind) in {v: k for k, v in _BY_COLUMN.items()} for joint, kind in zip(j["joint"], j["kind"])]]
    j = j.assign(column=[dream_column(a, b) for a, b in zip(j["joint"], j["kind"])])
    wide = j.pivot_table(index="patient_id", columns="column", values="score", aggfunc="first")
    wide = wide.reindex(columns=list(DREAM_JOINT_COLUMNS))
    erosion = wide[[c for c in DREAM_JOINT_COLUMNS if "_E__" in c]].sum(1, min_count=1)
    jsn = wide[[c for c in DREAM_JOINT_COLUMNS if "_J__" in c]].sum(1, min_count=1)
    out = pd.DataFrame({"Patient_ID": wide.index, "Overall_Tol": (erosion + jsn).to_numpy(),
                        "Overall_erosion": erosion.to_numpy(), "Overall_narrowing": jsn.to_numpy()})
    out = pd.concat([out, wide.reset_index(drop=True)], axis=1)[list(DREAM_COLUMNS)]
    with atomic_write(Path(path)) as fh:
        out.to_csv(fh, index=False)
    return out
