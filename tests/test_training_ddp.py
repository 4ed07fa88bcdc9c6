"""DistributedDataParallel on CPU: 2 processes (gloo) split the patients and end with identical weights."""
from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, cohort_root: str, out: str, port: int) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "LOCAL_RANK": str(rank), "WORLD_SIZE": str(WORLD), "GLOO_SOCKET_IFNAME": "lo"})
    torch.set_num_threads(1)
    from pathlib import Path

    from raoutcome.cohort import load
    from raoutcome.imaging.cache import ImageCache
    from raoutcome.imaging.dataset import Augment, PatientSequences
    from raoutcome.training.config import TrainConfig
    from raoutcome.training.distributed import init_from_env, shutdown
    from raoutcome.training.trainer import fit

    cfg = TrainConfig({"model": {"encoder": "test_efficientnet", "image_size": 32, "d_model": 16,
                                 "attention_heads": 2, "layers": 1},
                       "train": {"epochs": 2, "batch_patients": 2, "num_workers": 0, "lr": 0.003}})
    cohort = load(cohort_root)
    device = torch.device("cpu")
    dist = init_from_env(device)
    assert dist.enabled and dist.rank == rank
    cache = ImageCache(Path(out) / "cache", 32)
    ids = cohort.patient_ids
    train = PatientSequences(cohort, cache, ids[:6], augment=Augment(), seed=1)
    val = PatientSequences(cohort, cache, ids[6:])
    records = []
    result = fit(cfg.model_spec(), cfg, train, val, Path(out) / "member", seed=1, device=device, dist=dist,
                 on_epoch_end=lambda e, r: records.append(r))
    params = {k: v.detach().clone() for k, v in result.model.named_parameters()}
    torch.save({"params": params, "steps": [r["steps"] for r in records]}, Path(out) / f"rank{rank}.pt")
    shutdown(dist)


def test_two_gloo_processes_end_with_identical_weights(tiny_cohort, tmp_path):
    import raoutcome.training  # noqa: F401 - imported once here, inherited by the forked workers

    torch.manual_seed(1)
    # fork: the children inherit the imported modules (spawn would import torch + timm twice more)
    mp.start_processes(_worker, args=(str(tiny_cohort), str(tmp_path), _free_port()), nprocs=WORLD, join=True,
                       start_method="fork")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["steps"] == r1["steps"] == [2, 2]  # 6 patients, 2 ranks, 2 per step: 3 patients -> 2 steps each
    for name, value in r0["params"].items():
        assert torch.equal(value, r1["params"][name]), name
    # rank 0 wrote the checkpoint; it holds the same weights
    saved = torch.load(tmp_path / "member" / "checkpoint.pt", weights_only=True)["model"]
    for name, value in r0["params"].items():
        assert torch.equal(value, saved[name]), name
    # and training moved them away from the initialisation
    from raoutcome.models import LongitudinalOutcomeModel, ModelSpec

    torch.manual_seed(1)
    init = LongitudinalOutcomeModel(ModelSpec.from_dict(torch.load(tmp_path / "member" / "best.pt",
                                                                    weights_only=True)["spec"]))
    moved = [not torch.equal(p, r0["params"][n]) for n, p in init.named_parameters()]
    assert sum(moved) > len(moved) // 2
