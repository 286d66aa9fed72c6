"""The Gradio app: three tabs over the sessions of :mod:`~hf_ada.ui.search`, :mod:`~hf_ada.ui.adapt` and
:mod:`~hf_ada.ui.train`.

``build_app(search=..., adapt=..., train=...)`` takes a loaded session, an error message (shown in its tab
instead), or ``None`` (the tab explains how to give one). Every handler turns bad input into a message in
the page; an unexpected failure is shown in one line and its traceback goes to the console log only.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import render
from .adapt import AdaptSession, Stream
from .search import SearchSession
from .sources import UIError, describe_error
from .train import TrainRun

logger = logging.getLogger(__name__)

__all__ = ["build_app", "launch", "offline_gradio_env", "CSS"]

CSS = """
.hfada-error { border: 1px solid #dc2626; background: #fef2f2; color: #991b1b; padding: 8px 12px; border-radius: 6px; }
.hfada-note { border: 1px solid #d1d5db; background: #f9fafb; padding: 8px 12px; border-radius: 6px; }
.hfada-table { border-collapse: collapse; width: 100%; font-size: 14px; }
.hfada-table th, .hfada-table td { border-bottom: 1px solid #e5e7eb; padding: 4px 8px; text-align: left;
  vertical-align: top; }
.hfada-chart svg .grid { stroke: #e5e7eb; }
.hfada-chart svg .tick { font-size: 11px; fill: #6b7280; }
.hfada-chart svg .hfada-chart-title { font-size: 13px; fill: #111827; }
.hfada-legend { font-size: 14px; margin: 4px 0 8px 56px; }
.hfada-legend-item { margin-right: 16px; }
.hfada-meta { font-size: 14px; color: #374151; margin: 6px 0; }
"""


def offline_gradio_env() -> None:
    """Turn off what Gradio would fetch from the internet (analytics, version checks); call before importing it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("GRADIO_SSR_MODE", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def _import_gradio() -> Any:
    offline_gradio_env()
    try:
        import gradio as gr
    except ImportError as err:
        raise ImportError(f"the web interface needs gradio ({err}): pip install 'hf-ada[ui]'") from err
    return gr


def _guarded(handler: Callable[..., Any], outputs: int) -> Callable[..., Any]:
    """``handler`` with failures turned into a message in its first output (others left empty)."""

    def call(*args: Any) -> Any:
        try:
            return handler(*args)
        except UIError as err:
            text = render.message(str(err))
        except Exception as err:  # noqa: BLE001 - never a traceback in the page
            logger.exception("hf-ada ui: %s failed", getattr(handler, "__name__", "a handler"))
            text = render.message(f"unexpected error: {describe_error(err)}")
        return text if outputs == 1 else (text, *[""] * (outputs - 1))

    call.__name__ = getattr(handler, "__name__", "call")
    return call


def _guarded_stream(handler: Callable[..., Iterator[Any]], outputs: int) -> Callable[..., Iterator[Any]]:
    def call(*args: Any) -> Iterator[Any]:
        try:
            yield from handler(*args)
        except UIError as err:
            yield (render.message(str(err)), *[""] * (outputs - 1))
        except Exception as err:  # noqa: BLE001
            logger.exception("hf-ada ui: the stream run failed")
            yield (render.message(f"unexpected error: {describe_error(err)}"), *[""] * (outputs - 1))

    return call


def _not_loaded(gr: Any, error: str | None, elem_id: str, hint: str) -> None:
    """A tab whose input did not load: the error, or how to give the input."""
    gr.HTML(render.message(error) if error else render.message(hint, "note"), elem_id=elem_id)


# ---------------------------------------------------------------------------------------------- Search
def _search_tab(gr: Any, session: SearchSession | str | None) -> None:
    if not isinstance(session, SearchSession):
        _not_loaded(gr, session, "search-status", "no index loaded: start the app with --index FOLDER_OR_REPO "
                    "[--dataset FILE] (or run `hf-ada demo` first to get one)")
        return
    gr.Markdown(session.summary(), elem_id="search-summary")
    labels = session.plan_labels()
    with gr.Row():
        query = gr.Textbox(label="query", placeholder="type a query and press Enter (#ROW: the rows nearest to a "
                           "stored row)", elem_id="search-query", scale=4)
        k = gr.Slider(1, min(50, session.index.num_rows), value=min(10, session.index.num_rows), step=1, label="k",
                      elem_id="search-k", scale=1)
    if len(labels) > 1:
        plan = gr.Slider(1, len(labels), value=session.default_position() + 1, step=1, elem_id="search-plan",
                         label=f"plan, by compute: 1 = fewest FLOPs ... {len(labels)} = most (measured when the "
                               "index was tuned: the recall / compute front and the index's own choice)")
        plan_text = gr.Markdown(labels[session.default_position()], elem_id="search-plan-label")
        plan.change(lambda p: labels[int(p) - 1], inputs=plan, outputs=plan_text)
    else:
        plan = gr.State(None)
        gr.Markdown(f"_one plan: {labels[0]}_" if labels else "_the index was not tuned: every search uses its "
                    "configured plan_", elem_id="search-plan-label")
    button = gr.Button("Search", variant="primary", elem_id="search-button")
    results = gr.HTML(elem_id="search-results")

    def search(text: str, k_value: float, position: float | None) -> str:
        found = session.search(text, int(k_value), None if position is None else int(position) - 1)
        tuned = f" (tuned: {found.tuned_ms:.3f} ms per query in a batch)" if found.tuned_ms is not None else ""
        meta = (f'<div class="hfada-meta" id="search-meta">plan: <span id="search-plan-used">'
                f'{render.escape(found.plan)}</span> &middot; embed {found.embed_ms:.1f} ms &middot; search '
                f'<span id="search-latency">{found.search_ms:.2f}</span> ms{tuned} &middot; {len(found.rows)} '
                "hits</div>")
        return meta + render.table(found.rows, found.columns, "search-table")

    handler = _guarded(search, 1)
    button.click(handler, inputs=[query, k, plan], outputs=results)
    query.submit(handler, inputs=[query, k, plan], outputs=results)


# ---------------------------------------------------------------------------------------------- Adapt
def _adapt_tab(gr: Any, session: AdaptSession | str | None) -> None:
    if not isinstance(session, AdaptSession):
        _not_loaded(gr, session, "adapt-status", "no predictor loaded: start the app with --predictor "
                    "FOLDER_OR_REPO [--stream FILE] (or run `hf-ada demo` first to get one)")
        return
    labels = ", ".join(session.id2label[i] for i in sorted(session.id2label))
    default = (f"default stream: **{session.stream.name}** ({len(session.stream.inputs):,} rows"
               f"{', labelled' if session.stream.labels is not None else ''})" if session.stream
               else "no default stream: upload one")
    gr.Markdown(f"**Predictor** `{session.predictor_spec}` ({session.kind} classifier; labels {labels})  \n{default}",
                elem_id="adapt-summary")
    with gr.Row():
        upload = gr.File(label="stream file (csv / json / jsonl / parquet / txt); empty: the default stream",
                         file_types=[".csv", ".json", ".jsonl", ".parquet", ".txt"], elem_id="adapt-upload")
        with gr.Column():
            input_column = gr.Textbox(label="input column (empty: text / sentence / image / audio)",
                                      elem_id="adapt-input-column")
            label_column = gr.Textbox(label="label column (empty: label, if present)", elem_id="adapt-label-column")
            batch = gr.Slider(1, 256, value=32, step=1, label="batch size", elem_id="adapt-batch")
    run = gr.Button("Run the stream", variant="primary", elem_id="adapt-run")
    chart = gr.HTML(elem_id="adapt-chart-box")
    counts = gr.HTML(elem_id="adapt-counts-box")
    latest = gr.HTML(elem_id="adapt-latest-box")

    def run_stream(file: Any, input_name: str, label_name: str, batch_size: float) -> Iterator[tuple[str, str, str]]:
        path = getattr(file, "name", file)
        if path:
            stream: Stream = session.open_stream(path, input_name.strip() or None, label_name.strip() or None)
        elif session.stream is not None:
            stream = session.stream
        else:
            raise UIError("upload a stream file first (this predictor was given no default stream)")
        run_id = next(runs)
        last = 0.0
        for update in session.run(stream, int(batch_size)):
            now = time.perf_counter()
            if now - last >= 0.25 or update.seen == update.total:
                last = now
                yield _adapt_view(update, stream, run_id)

    runs = itertools.count(1)

    run.click(_guarded_stream(run_stream, 3), inputs=[upload, input_column, label_column, batch],
              outputs=[chart, counts, latest])


def _adapt_view(update: Any, stream: Stream, run_id: int) -> tuple[str, str, str]:
    if update.labelled:
        chart = render.line_chart({"plain model": (update.steps, update.plain_accuracy),
                                   "AdaNPC": (update.steps, update.adanpc_accuracy)}, chart_id="adapt-chart",
                                  title=f"running accuracy on {stream.name}", x_label="stream rows seen",
                                  y_range=(0.0, 1.0))
    else:
        chart = render.message("the stream has no labels: no accuracy to chart (predictions below)", "note")
    status = "done" if update.seen == update.total else "running"
    counts = (f'<div class="hfada-meta" id="adapt-counts" data-status="{status}" data-run="{run_id}">'
              f'rows <b id="adapt-seen">{update.seen}</b> / {update.total} ({status}) &middot; guard: inserted '
              f'<b id="adapt-inserted">{update.inserted}</b>, '
              f'rejected <b id="adapt-rejected">{update.rejected}</b>, collapses <b id="adapt-collapses">'
              f"{update.collapses}</b>{' (the head answers: the vote collapsed)' if update.stepped_in else ''}</div>")
    columns = list(update.latest[0]) if update.latest else []
    return chart, counts, render.table(update.latest, columns, "adapt-latest")


# ---------------------------------------------------------------------------------------------- Train
def _train_tab(gr: Any, run: TrainRun | str | None) -> None:
    if not isinstance(run, TrainRun):
        _not_loaded(gr, run, "train-status", "no training run loaded: start the app with --train-dir "
                    "TRAINER_OUTPUT_DIR (or run `hf-ada demo` first)")
        return
    notes = "".join(f"  \n_{n}_" for n in run.notes)
    gr.Markdown(f"**Trainer output** `{run.folder}` (curves from {run.source or 'nothing'}){notes}",
                elem_id="train-summary")
    if run.loss:
        gr.HTML(render.line_chart(run.loss, chart_id="train-loss", title="loss", x_label="optimizer step"))
    if run.learning_rate:
        gr.HTML(render.line_chart({"learning rate": run.learning_rate}, chart_id="train-lr", title="learning rate",
                                  x_label="optimizer step"))
    if run.optimizer_section:
        gr.Markdown(run.optimizer_section, elem_id="train-optimizer")


# ---------------------------------------------------------------------------------------------- app
def build_app(*, search: SearchSession | str | None = None, adapt: AdaptSession | str | None = None,
              train: TrainRun | str | None = None, title: str = "hf-ada",
              on_page_load: Callable[[], None] | None = None) -> Any:
    """The ``gradio.Blocks`` app (not launched); see the module docstring for the arguments.
    ``on_page_load``: called each time a page has loaded (after its first paint), e.g. to warm models up."""
    gr = _import_gradio()
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(f"# {title}: AdANNS search, AdaNPC adaptation, Adan training", elem_id="hfada-title")
        with gr.Tab("Search", elem_id="tab-search"):
            _search_tab(gr, search)
        with gr.Tab("Adapt", elem_id="tab-adapt"):
            _adapt_tab(gr, adapt)
        with gr.Tab("Train", elem_id="tab-train"):
            _train_tab(gr, train)
        if on_page_load is not None:
            app.load(on_page_load, inputs=None, outputs=None, queue=False, show_progress="hidden")
    return app


def theme() -> Any:
    """Gradio's default theme with the system fonts (the default one fetches web fonts from the internet)."""
    gr = _import_gradio()
    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"])


def launch(app: Any, *, host: str = "127.0.0.1", port: int | None = None, block: bool = True) -> Any:
    """Serve ``app`` on ``host:port`` (no share link, no analytics); ``block=False`` returns at once."""
    return app.launch(server_name=host, server_port=port, share=False, prevent_thread_lock=not block, quiet=True,
                      ssr_mode=False, theme=theme(), css=CSS, footer_links=[], show_error=False)
