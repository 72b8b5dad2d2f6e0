"""One rank of a fresh process group for test_torch.py: plain torch.distributed (a TCPStore, gloo, DDP with its default
gradient averaging), no coordinator. It loads the state and the batch an elastic rank recorded for one step, computes
that step's gradients and saves them, so the test can compare them with the elastic group's.

DDP averages gradients over the ranks; the elastic trainer averages over the step's samples. Scaling each rank's mean
loss by ``size * world_size / total`` makes DDP's average the mean over the samples too (0 for a stand-in).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F  # noqa: N812
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from torch_ddp import Net, digits


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--recorded", type=Path, required=True, help="the elastic rank's recording of the step")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    recorded = torch.load(args.recorded)
    store = dist.TCPStore("127.0.0.1", args.port, args.world_size, args.rank == 0, timeout=datetime.timedelta(60))
    dist.init_process_group("gloo", store=store, rank=args.rank, world_size=args.world_size)
    model = Net()
    model.load_state_dict(recorded["model"])
    ddp = DistributedDataParallel(model)
    x_train, y_train, _, _ = digits()
    indices = torch.tensor(recorded["data_indices"], dtype=torch.int64)
    scale = recorded["size"] * args.world_size / recorded["total"]
    (F.cross_entropy(ddp(x_train[indices]), y_train[indices]) * scale).backward()
    torch.save({name: p.grad.clone() for name, p in model.named_parameters()}, args.output)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
