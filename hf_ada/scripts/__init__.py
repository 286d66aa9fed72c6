"""The runnable scripts: ``python -m hf_ada.scripts.NAME --help``, the same files as ``scripts/NAME.py``.

* ``run_text_classification`` / ``run_clm`` -- Trainer fine-tuning / LM training; ``--optim adan`` works;
* ``train_matryoshka`` -- SentenceTransformerTrainer + MatryoshkaLoss (or a cheap linear head);
* ``build_adanns_index`` -- ``hf-ada index build``; ``adapt_adanpc`` -- ``hf-ada adapt``.

The scripts are kept once, in the top-level ``scripts/`` folder of the repository, where a checkout's users
read and copy them (like transformers' examples). The wheel installs that folder here, and in a checkout
this package reads it from there, so ``python -m hf_ada.scripts.NAME`` and ``accelerate launch -m
hf_ada.scripts.NAME`` run the same file either way. Their argument handling lives in :mod:`hf_ada.commands`.
"""

from __future__ import annotations

from pathlib import Path

_CHECKOUT_SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
if (_CHECKOUT_SCRIPTS.parent / "pyproject.toml").is_file() and (_CHECKOUT_SCRIPTS / "run_clm.py").is_file():
    __path__.append(str(_CHECKOUT_SCRIPTS))  # a source checkout: the scripts live in ./scripts
