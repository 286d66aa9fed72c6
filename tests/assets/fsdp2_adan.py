"""Train a tiny MLP with Adan under torch FSDP2 (``fully_shard``) on CPU/gloo, or in one process.

``torchrun --nproc_per_node 2 fsdp2_adan.py OUT_STEM [max_grad_norm,...]`` shards the parameters
(DTensors) across two processes; ``python fsdp2_adan.py OUT_STEM [max_grad_norm,...]`` runs the same
training in one process on the full batch. Both train once per ``max_grad_norm`` of the comma list (one
launch for every setting) and write the final full weights to ``OUT_STEM-<max_grad_norm>.safetensors``.
"""

import os
import sys

import torch
import torch.distributed as dist
from safetensors.torch import save_file

from hf_ada import Adan


def train(out: str, max_grad_norm: float, distributed: bool, rank: int, world: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    if distributed:
        from torch.distributed.fsdp import fully_shard

        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer)
        fully_shard(model)
        assert all(hasattr(p, "full_tensor") for p in model.parameters()), "parameters are not sharded"
    opt = Adan(model.parameters(), lr=1e-2, weight_decay=0.02, max_grad_norm=max_grad_norm)
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        x, y = torch.randn(8, 8, generator=gen), torch.randn(8, 4, generator=gen)
        if distributed:
            x, y = x.chunk(world)[rank], y.chunk(world)[rank]
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    state = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().contiguous() for k, v in model.state_dict().items()}
    if rank == 0:
        state["world_size"] = torch.tensor(world)
        save_file(state, out)


def main():
    stem, norms = sys.argv[1], sys.argv[2].split(",") if len(sys.argv) > 2 else ["0"]
    distributed = "WORLD_SIZE" in os.environ
    rank, world = 0, 1
    if distributed:
        dist.init_process_group("gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    for norm in norms:
        train(f"{stem}-{norm}.safetensors", float(norm), distributed, rank, world)
    if distributed:  # every rank done with its collectives before the group goes (else gloo can abort at exit)
        dist.barrier()
        dist.destroy_process_group()
        # skip interpreter teardown: gloo's worker threads can abort the process there ("terminate called
        # without an active exception") although all work and output are complete
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
