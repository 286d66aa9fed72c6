"""Embed a text column and build an AdANNS index under a launcher (or in one process), for the sharding tests.

``torchrun --nproc_per_node 2 sharded_embed_build.py MODEL_DIR OUT SHARDS [--init-group] [--num-shards N]``:
every rank embeds its shards through ``hf_ada.adanns.embed`` (sharded because ``WORLD_SIZE`` > 1), rank 0
saves the embedded column (``OUT/vectors.npy``) and builds + saves the index from the memory-mapped shards
(``OUT/index``); each rank writes ``OUT/rank-R.json`` (rank, world size, rows it got back). ``--init-group``
initialises a gloo process group first (the ``torch.distributed`` path); without it the launcher's
environment alone gives the ranks.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
from datasets import Dataset

from hf_ada.adanns import embed
from hf_ada.adanns.sharding import build_index, world

TEXTS = [f"package {w}{i} provides {v} tools for {u}" + " extra" * (i % 5) for i, (w, v, u) in
         enumerate(zip("abcdefghijklmnopqrstuvwx" * 12, ["network", "audio", "image", "text"] * 72,
                       ["admins", "users", "devs"] * 96))]  # 288 rows (PQ codebooks train on >= 256)
SETTINGS = dict(d_cluster=8, d_search=16, nlist=4, nprobe=2, pq_bytes=4, d_pq=32, d_rerank=32, rerank_k=20,
                train_size=288, auto_tune=0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("shards")
    parser.add_argument("--init-group", action="store_true")
    parser.add_argument("--num-shards", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.init_group:
        torch.distributed.init_process_group("gloo")
    rank, size = world()
    ds = embed(Dataset.from_dict({"text": TEXTS}), args.model, "text", batch_size=8, shards_dir=args.shards,
               num_shards=args.num_shards, show_progress=False)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"rank-{rank}.json"), "w") as f:
        json.dump({"rank": rank, "world_size": size, "rows": len(ds), "columns": ds.column_names}, f)
    if rank == 0:
        np.save(os.path.join(args.out, "vectors.npy"), np.asarray(ds.with_format("numpy")["embeddings"]))
    build_index(ds, "embeddings", os.path.join(args.out, "index"), **SETTINGS)
    if args.init_group:
        _leave_group()


def _leave_group() -> None:
    """Leave the gloo group once every rank is done, then exit without interpreter teardown (gloo's
    worker threads can abort a process there after all work is complete)."""
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
