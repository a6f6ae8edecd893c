"""Tests of vos.infra.distributed's collectives in one process and in two gloo processes."""

import os
import socket

import torch
import torch.multiprocessing as mp

from vos.infra.distributed import (DistContext, all_gather_objects, all_reduce_sum, broadcast_buffers, cleanup,
                             init_distributed, shard)


def test_single_process_collectives_return_their_input():
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    state = {"torch": torch.get_rng_state(), "step": 3}
    norm = torch.nn.BatchNorm1d(2)
    broadcast_buffers(norm, ctx)  # nothing to do in one process
    assert norm.running_mean.tolist() == [0.0, 0.0]
    assert all_gather_objects(state, ctx) == [state]
    values = torch.tensor([1.0, 2.0])
    assert torch.equal(all_reduce_sum(values, ctx), values)
    assert shard(list(range(5)), ctx) == [0, 1, 2, 3, 4]


def _two_process_worker(rank: int, port: int, results) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    ctx = init_distributed("cpu")
    try:
        state = {"rank": rank, "rng": torch.Generator().manual_seed(100 + rank).get_state()}
        gathered = all_gather_objects(state, ctx)
        total = all_reduce_sum(torch.tensor([float(rank + 1)]), ctx)
        norm = torch.nn.BatchNorm1d(3)
        norm.running_mean.fill_(rank + 1.0)  # statistics that differ between processes
        with torch.no_grad():
            norm.weight.fill_(rank + 1.0)
        broadcast_buffers(norm, ctx)
        results[rank] = (gathered, float(total), shard(list(range(5)), ctx),
                         norm.running_mean.tolist(), norm.weight.tolist())
    finally:
        cleanup(ctx)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_gather_in_rank_order():
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_two_process_worker, args=(_free_port(), results), nprocs=2, join=True)
        results = dict(results)
    for rank in (0, 1):
        gathered, total, mine, running_mean, weight = results[rank]
        assert [entry["rank"] for entry in gathered] == [0, 1]  # every process sees both, in rank order
        for entry in gathered:  # the RNG states arrive intact
            assert torch.equal(entry["rng"], torch.Generator().manual_seed(100 + entry["rank"]).get_state())
        assert total == 3.0
        assert mine == list(range(rank, 5, 2))
        assert running_mean == [1.0, 1.0, 1.0]  # rank 0's buffers everywhere
        assert weight == [rank + 1.0] * 3  # parameters are not buffers: left alone
