"""A process for test_torch.py: joins the task, forms torch's process group with dtruntime.torch.init_process_group,
sums the ranks with an allreduce, and prints what it saw as one JSON line."""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from dtruntime import Worker
from dtruntime.torch import init_process_group


def main() -> int:
    with Worker() as worker, init_process_group(worker) as group:
        total = torch.tensor([float(group.rank)])
        dist.all_reduce(total)
        print(
            json.dumps(
                {
                    "worker_id": worker.worker_id,
                    "coordinator_rank": worker.rank,
                    "group_rank": group.rank,
                    "torch_rank": dist.get_rank(),
                    "torch_world_size": dist.get_world_size(),
                    "membership_epoch": group.membership_epoch,
                    "rank_sum": total.item(),
                    "store": group.store_address,
                    "connections": group.connections,
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
