"""Generated models under DDP, FSDP2 (generated fsdp_wrap) and tensor parallelism (generated
parallelize), on CPU: 2 processes, gloo. Each rank also runs the single-process model and
checks the distributed outputs and gradients against it.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from archcc.runtime import import_file

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")

WORLD = 2
TINY = dict(vocab_size=61, n_positions=32, n_embd=32, n_head=4, n_layer=2, dropout=0.0)
MODES = ("ddp", "fsdp", "tp")


def _models(gpt2):
    """The single-process reference (forward and backward done) and an identical copy."""
    torch.manual_seed(0)  # every rank: the same weights and the same batch
    ref = gpt2.Model(gpt2.Config(**TINY))
    ids = torch.randint(0, TINY["vocab_size"], (4, 12))
    model = gpt2.Model(gpt2.Config(**TINY))
    model.load_state_dict(ref.state_dict())
    out = ref(ids)
    out.float().pow(2).mean().backward()
    return ref, model, ids, out.detach()


def _full(tensor):
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def _check_grads(model, ref):
    grads = {n: p.grad for n, p in ref.named_parameters()}
    for name, param in model.named_parameters():
        torch.testing.assert_close(_full(param.grad), grads[name], rtol=1e-4, atol=1e-5,
                                   msg=lambda m, n=name: f"{n}: {m}")


def _distribute(gpt2, mode: str, model, rank: int):
    """(wrapped model, rows of the batch this rank feeds)."""
    if mode == "tp":  # every rank sees the whole batch; planned weights are sharded
        from torch.distributed.device_mesh import init_device_mesh

        return gpt2.parallelize(model, init_device_mesh("cpu", (WORLD,))), slice(None)
    rows = slice(rank * 2, rank * 2 + 2)  # data parallel: half the batch each
    if mode == "ddp":
        return torch.nn.parallel.DistributedDataParallel(model), rows
    return gpt2.fsdp_wrap(model), rows


def _worker(rank: int, rendezvous: str, path: str):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=WORLD)
    try:
        gpt2 = import_file(path, "archcc_dist_test.gpt2")
        for mode in MODES:
            ref, model, ids, expected = _models(gpt2)
            wrapped, rows = _distribute(gpt2, mode, model, rank)
            out = wrapped(ids[rows])
            torch.testing.assert_close(_full(out), expected[rows], rtol=1e-4, atol=1e-5,
                                       msg=lambda m, mode=mode: f"{mode} outputs: {m}")
            # mean over the local rows, averaged over ranks = the mean over the whole batch
            out.float().pow(2).mean().backward()
            _check_grads(model, ref)
        # both ranks done with every collective before gloo's threads are torn down: a rank
        # that destroys its group while the other still talks to it aborts in C++
        dist.barrier()
    finally:
        dist.destroy_process_group()
    # Every check passed. Leave without C++ static destructors: gloo's threads sometimes
    # abort the process (SIGABRT, "terminate called without an active exception") at exit,
    # after all the work is done, which spawn would report as a failure.
    os._exit(0)


def test_ddp_fsdp_tp_match_one_process(compiled, tmp_path):
    """One spawn for all three (starting two Python processes is most of the cost)."""
    path = compiled("gpt2").__file__
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), path), nprocs=WORLD)
