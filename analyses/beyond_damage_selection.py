"""Method selection for ``beyond_damage`` on the selection seed (1): rejection rates of its options per world.

Reproduces the selection table of docs/beyond_damage.md. Uses the worlds of
``analyses/false_discovery.py`` but its own seed layout: replicate ``r`` at size
``n`` draws ``SeedSequence([1, 1000 n + r])`` (planted worlds ``1000 n + 500 + r``),
a fresh population per size. A variant is ``damage`` (``beyond_damage`` with the
retest and its defaults) or ``sharp_spline``, options appended as
``:key=value`` (``damage:damage_basis=tensor:calibration_interactions=0``,
``damage:calibration=mean``). Runs used for the table (about 25 minutes on the
shared machine, one core each)::

    V=damage:calibration=mean,damage:damage_basis=tensor:calibration_interactions=0,\\
    damage:damage_basis=tensor,damage:calibration_interactions=0,damage,sharp_spline
    NULL=linear/exact/null,curved/exact/null,erosion/exact/null,linear/nonlinear/null,\\
    curved/nonlinear/null,erosion/nonlinear/null
    python analyses/beyond_damage_selection.py 1000 25 partial_r2_f,cox_lrt $NULL $V out/sel_n1000.csv
    python analyses/beyond_damage_selection.py 200 25 partial_r2_f,cox_lrt $NULL $V out/sel_n200.csv
    python analyses/beyond_damage_selection.py 400 25 partial_r2_f,cox_lrt \\
        linear/exact/planted,curved/exact/planted,erosion/exact/planted $V out/sel_power.csv
"""
from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from false_discovery import draw_population, world_data  # noqa: E402


def run(data, retest, variant: str, tests: tuple[str, ...]) -> pd.DataFrame:
    """One variant's result table (see the module docstring for the variant syntax)."""
    from raoutcome.analysis.incremental import beyond_damage, beyond_sharp

    kw = dict(outcome_images={"haq": "pred_haq"}, tests=tests)
    name, *opts = variant.split(":")
    options = {}
    for opt in opts:
        key, value = opt.split("=")
        options[key] = int(value) if value.isdigit() else value
    if "calibration_interactions" in options:
        options["calibration_interactions"] = bool(options["calibration_interactions"])
    if name == "sharp_spline":
        return beyond_sharp(data, "pred_risk", **kw)
    return beyond_damage(data, "pred_risk", retest=retest, **options, **kw)


def main(argv: list[str]) -> None:
    n, replicates, tests = int(argv[0]), int(argv[1]), tuple(argv[2].split(","))
    worlds = [tuple(w.split("/")) for w in argv[3].split(",")]
    variants, out = argv[4].split(","), Path(argv[5])
    rows, started = [], time.time()
    for r in range(replicates):
        planted = any(kind == "planted" for *_, kind in worlds)
        pop = draw_population(n, np.random.SeedSequence([1, 1000 * n + (500 if planted else 0) + r]))
        for link, reader, kind in worlds:
            data, retest = world_data(pop, link, reader, kind == "planted")
            for variant in variants:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    table = run(data, retest, variant, tests)
                for test in tests:
                    hit = table[table["test"] == test]
                    rows.append(dict(r=r, link=link, reader=reader, kind=kind, variant=variant, test=test,
                                     p=float(hit["p_value"].iloc[0]) if len(hit) else np.nan))
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out, index=False)
        print(f"{r + 1}/{replicates} ({time.time() - started:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    rates = table.groupby(["kind", "link", "reader", "test", "variant"])["p"].agg(lambda p: 100 * (p < 0.05).mean())
    print(rates.unstack("variant").round(0).to_string())


if __name__ == "__main__":
    main(sys.argv[1:])
