"""A third-party style Trainer script that knows nothing about hf-ada (it never imports it).

It trains a tiny BERT classifier, built from a config, on fixed synthetic data, and writes the final
and initial weights (``final.safetensors``, ``initial.safetensors``) and ``world.json`` (world size, optimizer class, the optimizer steps this launch ran) to ``--output_dir``.
Run it through the launcher: ``python -m hf_ada.run tests/assets/plain_trainer_script.py --optim adan ...``.
"""

import json
import os
import sys

import torch
from datasets import Dataset
from safetensors.torch import save_file
from transformers import (BertConfig, BertForSequenceClassification, HfArgumentParser, Trainer, TrainerCallback,
                          TrainingArguments)


class StepCounter(TrainerCallback):
    """Counts the optimizer steps this launch runs (a resumed run runs only the steps after its checkpoint)."""

    steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def main():
    (args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    model = BertForSequenceClassification(config)
    initial = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (64, 8), generator=gen)
    labels = (ids[:, 0] % 3).tolist()
    data = Dataset.from_dict({"input_ids": ids.tolist(), "labels": labels})
    counter = StepCounter()
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[counter])
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    # FSDP2 holds DTensor shards: gather the full tensors (a collective call, so on every rank)
    state = {
        k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().contiguous()
        for k, v in trainer.model.state_dict().items()
    }
    if trainer.is_world_process_zero():
        os.makedirs(args.output_dir, exist_ok=True)
        save_file(state, os.path.join(args.output_dir, "final.safetensors"))
        save_file(initial, os.path.join(args.output_dir, "initial.safetensors"))
        optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
        with open(os.path.join(args.output_dir, "world.json"), "w") as f:
            json.dump({"world_size": args.world_size, "optimizer": type(optimizer).__name__, "steps_run": counter.steps,
                       "wrapped_model": type(trainer.model_wrapped).__name__,
                       "sharded": any(hasattr(p, "full_tensor") for p in trainer.model.parameters()),
                       "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]},
                      f, default=str)
    # tear the process group down explicitly: leaving it to interpreter exit can abort a gloo worker
    # ("terminate called without an active exception") after training has finished
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        # skip interpreter teardown: gloo's worker threads can abort the process there ("terminate called
        # without an active exception") although all work and output are complete
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
