"""Runnable scripts that ship with the package (``python -m hf_ada.scripts.<name> --help``).

* ``run_text_classification`` / ``run_clm`` -- Trainer fine-tuning / LM training; ``--optim adan`` works;
* ``train_matryoshka`` -- SentenceTransformerTrainer + MatryoshkaLoss (or a cheap linear head);
* ``build_adanns_index`` -- the same as ``hf-ada index build``;
* ``adapt_adanpc`` -- the same as ``hf-ada adapt``.

A source checkout also has them as ``scripts/<name>.py``. This room may import every method; the methods
never import it. ``_args`` holds the argument plumbing the Trainer scripts share.
"""
