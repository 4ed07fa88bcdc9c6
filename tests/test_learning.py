"""raoutcome.training.learning: the one restart loop, with the hooks the image route's resume needs."""
from __future__ import annotations

from raoutcome.training.learning import RESTART_STRIDE, fit_until_learned, restart_seed


def _fit_stalling_until(good_seed: int, calls: list):
    def fit(seed: int, last: bool) -> tuple[str, dict]:
        calls.append((seed, last))
        stalled = seed != good_seed
        return f"model {seed}", {"seed": seed, "stalled": stalled, "moved": 0.01 if stalled else 0.4, "history": [{}] * 2}
    return fit


def test_restart_seed_strides():
    assert restart_seed(5, 0) == 5 and restart_seed(5, 2) == 5 + 2 * RESTART_STRIDE
    assert restart_seed(5, 2, stride=104729) == 5 + 2 * 104729


def test_each_abandoned_attempt_reaches_on_abandon_before_the_next_starts():
    calls, seen = [], []
    good = restart_seed(3, 2, 11)

    def on_abandon(attempt: dict, record: dict) -> None:
        seen.append((attempt["seed"], record["moved"], len(calls)))

    model, rec = fit_until_learned(_fit_stalling_until(good, calls), 3, restarts=4, stride=11, on_abandon=on_abandon)
    assert model == f"model {good}" and rec["restarts"] == 2
    assert [c[0] for c in calls] == [3, 14, 25] and not any(last for _, last in calls)
    assert seen == [(3, 0.01, 1), (14, 0.01, 2)]  # persisted after its own fit, before the next one
    # the last attempt is never abandoned (it is kept, stalled or not)
    seen.clear()
    model, rec = fit_until_learned(_fit_stalling_until(-1, []), 3, restarts=1, stride=11, on_abandon=on_abandon)
    assert [s for s, _, _ in seen] == [3] and rec["stalled"] and rec["seed"] == 14


def test_a_resumed_loop_goes_on_with_the_attempt_it_was_in_and_keeps_the_abandoned_ones():
    earlier = [{"seed": 3, "stalled": True, "criterion": [4.0, 3.99]}]  # as the killed session recorded it
    calls, logs = [], []
    model, rec = fit_until_learned(_fit_stalling_until(-1, calls), 3, restarts=2, name="fold_0", log=logs.append,
                                   stride=11, abandoned=earlier)
    assert calls == [(14, False), (25, True)]  # attempt 0 is not trained again
    assert rec["attempts"][0] == earlier[0] and [a["seed"] for a in rec["attempts"]] == [3, 14, 25]
    assert rec["restarts"] == 2 and rec["stalled"] and model == "model 25"
    assert logs[0].startswith("WARNING FOLD_0 STALLED WITH SEED 14 (validation loss moved 1.0 % in 2 epochs)")
    assert "RESTARTING WITH SEED 25 (restart 2 of 2)" in logs[0] and "no restart left" in logs[1]
    # every attempt already abandoned (no restart left): one last attempt, never a crash
    calls.clear()
    model, rec = fit_until_learned(_fit_stalling_until(-1, calls), 3, restarts=1, stride=11, abandoned=earlier * 2)
    assert calls == [(25, True)] and rec["restarts"] == 2
