"""The web interface (hf_ada.ui) in a real browser: Debian's chromium driven by Playwright, against the app
served on 127.0.0.1 over tiny real artifacts (tests/ui_artifacts.py).

Needs ``apt-get install -y chromium`` (the system browser; Playwright's own browser downloads are not used)
and ``pip install playwright gradio`` (the ``test`` extra)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from hub_server import free_port  # noqa: E402  (tests/ is on sys.path)
from ui_artifacts import Artifacts, snapshot  # noqa: E402

from hf_ada.ui.__main__ import build_parser, load_sessions, main  # noqa: E402
from hf_ada.ui.adapt import AdaptSession  # noqa: E402
from hf_ada.ui.search import SearchSession  # noqa: E402
from hf_ada.ui.sources import UIError  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def artifacts(shared_ui_artifacts) -> Artifacts:
    return shared_ui_artifacts


def _serve(sessions: dict, on_page_load=None):
    from hf_ada.ui.app import build_app, launch

    app = build_app(**sessions, on_page_load=on_page_load)
    port = free_port()
    launch(app, host="127.0.0.1", port=port, block=False)
    return app, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def served(artifacts):
    args = build_parser().parse_args([
        "--index", str(artifacts.index_dir), "--dataset", str(artifacts.rows), "--show-column", "package",
        "--show-column", "synopsis", "--predictor", str(artifacts.predictor_dir), "--stream", str(artifacts.stream),
        "--train-dir", str(artifacts.run_dir)])
    sessions = load_sessions(args)
    assert isinstance(sessions["search"], SearchSession) and isinstance(sessions["adapt"], AdaptSession), sessions
    app, url = _serve(sessions)
    yield url, sessions
    app.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"the browser tests need Debian's chromium at {CHROMIUM}: apt-get update && apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served):
    """A page that may reach only the app: any other request fails the test (the app works offline)."""
    url = served[0]
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    outside: list[str] = []

    def route(request_route):
        if request_route.request.url.startswith(url.rstrip("/")):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(url)
    page.wait_for_selector("#search-query textarea")
    yield page
    context.close()
    assert not outside, f"the page tried to reach the internet: {outside}"


def _table(page, table_id: str) -> list[dict[str, str]]:
    headers = page.locator(f"#{table_id} thead th").all_inner_texts()
    rows = []
    for row in page.locator(f"#{table_id} tbody tr").all():
        rows.append(dict(zip(headers, row.locator("td").all_inner_texts())))
    return rows


def _set_slider(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def _search(page, query: str, plan: str) -> None:
    """Search and wait until the page shows the answer of ``plan``."""
    page.fill("#search-query textarea", query)
    page.press("#search-query textarea", "Enter")
    page.wait_for_function("(plan) => document.querySelector('#search-plan-used')?.innerText === plan", arg=plan)
    page.wait_for_selector("#search-table")


def test_search_in_the_browser_ranks_rows_like_exact_search(page, artifacts, served, tmp_path):
    from sentence_transformers import SentenceTransformer

    from hf_ada.adanns.tuning import describe_plan

    session: SearchSession = served[1]["search"]
    plans = session.plans
    assert len(plans) >= 2
    _set_slider(page, "search-plan", len(plans))  # the most accurate tuned plan: exact search on 32 dims
    page.wait_for_function("document.querySelector('#search-plan-label').innerText.startsWith('%d:')" % len(plans))
    _set_slider(page, "search-k", 5)
    query = artifacts.texts[17]
    _search(page, query, describe_plan(plans[-1]))
    rows = _table(page, "search-table")

    # reference: brute-force cosine over the corpus embeddings, query embedded by the same model
    model = SentenceTransformer(str(artifacts.model_dir), device="cpu")
    q = model.encode([query], convert_to_numpy=True)[0]
    expected = np.argsort(-(artifacts.vectors @ q), kind="stable")[:5]
    assert [int(r["row"]) for r in rows] == expected.tolist()
    assert rows[0]["row"] == "17" and rows[0]["package"] == "pkg-17" and rows[0]["synopsis"] in query
    assert float(rows[0]["score"]) == pytest.approx(1.0, abs=1e-3)
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    assert page.inner_text("#search-plan-used") == describe_plan(plans[-1])
    assert float(page.inner_text("#search-latency")) > 0
    assert f"(tuned: {plans[-1]['ms']:.3f} ms per query in a batch)" in page.inner_text("#search-meta")
    shot = tmp_path / "search.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000

    # the fastest plan is another plan, and the page says so
    _set_slider(page, "search-plan", 1)
    page.wait_for_function("document.querySelector('#search-plan-label').innerText.startsWith('1:')")
    _search(page, query, describe_plan(plans[0]))
    assert describe_plan(plans[0]) != describe_plan(plans[-1])
    assert len(_table(page, "search-table")) == 5

    # bad input: a message in the page, never a traceback
    page.fill("#search-query textarea", "   ")
    page.click("#search-button")
    page.wait_for_selector("#search-results .hfada-error")
    assert "type a query first" in page.inner_text("#search-results")
    assert "Traceback" not in page.content()


def _reference_stream(artifacts) -> dict:
    """Plain model accuracy straight from transformers, AdaNPC's from the library, batch by batch (32)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from hf_ada.adanpc import AdaNPCPredictor

    texts = [r["text"] for r in artifacts.stream_rows]
    truth = np.array([0 if r["label"] == "neg" else 1 for r in artifacts.stream_rows])
    model = AutoModelForSequenceClassification.from_pretrained(artifacts.classifier_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(artifacts.classifier_dir)
    with torch.no_grad():
        plain = np.concatenate([model(**tokenizer(texts[i:i + 32], padding=True, truncation=True,
                                                   return_tensors="pt")).logits.argmax(-1).numpy()
                                for i in range(0, len(texts), 32)])
    predictor = AdaNPCPredictor.from_pretrained(artifacts.predictor_dir)
    adanpc = predictor.predict(texts, batch_size=32).argmax(1)
    return {"plain": float((plain == truth).mean()), "adanpc": float((adanpc == truth).mean()),
            "inserted": predictor.guard.inserted, "rejected": predictor.guard.rejected, "last": int(adanpc[-1])}


def test_adapt_in_the_browser_charts_both_accuracies_and_the_guard(page, artifacts, tmp_path):
    page.click("button[role=tab]:has-text('Adapt')")
    page.click("#adapt-run")
    page.wait_for_selector("#adapt-counts[data-status=done]")
    expected = _reference_stream(artifacts)
    plain = float(page.get_attribute("#adapt-chart polyline[data-series='plain model']", "data-last"))
    adanpc = float(page.get_attribute("#adapt-chart polyline[data-series='AdaNPC']", "data-last"))
    assert plain == pytest.approx(expected["plain"], abs=1e-5)
    assert adanpc == pytest.approx(expected["adanpc"], abs=1e-5)
    legend = page.inner_text("#adapt-chart .hfada-legend")
    assert f"plain model: {expected['plain']:.3g}" in legend and f"AdaNPC: {expected['adanpc']:.3g}" in legend
    n = len(artifacts.stream_rows)
    assert page.inner_text("#adapt-seen") == str(n)
    inserted, rejected = int(page.inner_text("#adapt-inserted")), int(page.inner_text("#adapt-rejected"))
    assert (inserted, rejected) == (expected["inserted"], expected["rejected"]) and inserted + rejected <= n
    latest = _table(page, "adapt-latest")
    assert latest[0]["row"] == str(n - 1) and latest[0]["AdaNPC"] == ("neg", "pos")[expected["last"]]
    assert latest[0]["label"] == artifacts.stream_rows[-1]["label"]
    # a second run starts from the saved predictor again: the same numbers
    page.click("#adapt-run")
    page.wait_for_selector("#adapt-counts[data-status=done][data-run='2']")
    assert float(page.get_attribute("#adapt-chart polyline[data-series='AdaNPC']", "data-last")) == adanpc
    page.screenshot(path=str(tmp_path / "adapt.png"), full_page=True)
    assert (tmp_path / "adapt.png").stat().st_size > 10_000


def test_train_tab_shows_the_runs_curves_and_optimizer_section(page, artifacts):
    page.click("button[role=tab]:has-text('Train')")
    page.wait_for_selector("#train-loss")
    state = json.loads((artifacts.run_dir / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    rates = [h["learning_rate"] for h in state["log_history"] if "learning_rate" in h]
    assert len(losses) == 4
    last_loss = float(page.get_attribute("#train-loss polyline[data-series='loss']", "data-last"))
    assert last_loss == pytest.approx(losses[-1], rel=1e-5)
    assert float(page.get_attribute("#train-lr polyline", "data-last")) == pytest.approx(rates[-1], rel=1e-5)
    points = page.get_attribute("#train-loss polyline[data-series='loss']", "points").split()
    assert len(points) == 4
    section = page.inner_text("#train-optimizer")
    assert section.startswith("Optimizer: Adan") and "0.98, 0.92, 0.99" in section


def test_bad_inputs_are_messages_in_the_page(browser, artifacts, tmp_path):
    args = build_parser().parse_args([
        "--index", str(artifacts.index_dir), "--dataset", str(artifacts.other_rows),
        "--predictor", str(artifacts.model_dir), "--train-dir", str(tmp_path / "no-such-run")])
    sessions = load_sessions(args)
    assert all(isinstance(s, str) for s in sessions.values()), sessions
    loads: list[int] = []
    app, url = _serve(sessions, on_page_load=lambda: loads.append(1))
    try:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("#search-status .hfada-error")
        assert "differs from the texts the index was built on" in page.inner_text("#search-status")
        page.click("button[role=tab]:has-text('Adapt')")
        assert "is not a loadable AdaNPC predictor" in page.inner_text("#adapt-status")
        page.click("button[role=tab]:has-text('Train')")
        assert "no-such-run: no such folder" in page.inner_text("#train-status")
        assert "Traceback" not in page.content()
        page.wait_for_timeout(100)
        for _ in range(300):  # the page-load hook (the app's model warm-up) runs once the page has loaded
            if loads:
                break
            page.wait_for_timeout(100)
        assert loads == [1]
        page.close()
    finally:
        app.close()


def test_queries_the_model_cannot_embed_and_foreign_models_are_explained(artifacts, tmp_path):
    missing = SearchSession(str(artifacts.index_dir), str(artifacts.rows), model=str(tmp_path / "gone"))
    with pytest.raises(UIError, match="cannot be loaded here.*#ROW searches with a stored row's vector"):
        missing.search("anything", 3)
    # "#N": the rows nearest to row N's stored vector, no model needed (exact plan: the row itself first)
    found = missing.search("#17", 4, len(missing.plans) - 1)
    expected = np.argsort(-(artifacts.vectors @ artifacts.vectors[17]), kind="stable")[:4]
    assert [r["row"] for r in found.rows] == expected.tolist() and found.rows[0]["package"] == "pkg-17"
    with pytest.raises(UIError, match="the index has rows 0..63"):
        missing.search("#64", 3)
    # a model with another embedding size: the index was built for another model
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    model = SentenceTransformer(str(artifacts.model_dir), device="cpu")
    import torch

    model.append(Dense(32, 16, bias=False, activation_function=torch.nn.Identity()))
    model.save(str(tmp_path / "st16"))
    other = SearchSession(str(artifacts.index_dir), str(artifacts.rows), model=str(tmp_path / "st16"))
    with pytest.raises(UIError, match="built for another model"):
        other.search("anything", 3)
    with pytest.raises(UIError, match="no such folder"):
        SearchSession(str(tmp_path / "none"))
    with pytest.raises(UIError, match="k must lie between 1 and"):
        SearchSession(str(artifacts.index_dir)).search("x", 0)
    with pytest.raises(UIError, match="input column 'sentence' is not in the stream"):
        AdaptSession(str(artifacts.predictor_dir), str(artifacts.stream), input_column="sentence")
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_text(json.dumps({"text": "fine", "label": "maybe"}) + "\n")
    session = AdaptSession(str(artifacts.predictor_dir))
    with pytest.raises(UIError, match="labels do not fit the predictor"):
        next(session.run(session.open_stream(wrong)))


def test_a_stream_run_reports_after_every_batch(artifacts):
    """The live chart's data: one update per batch, running accuracies over the rows seen so far."""
    session = AdaptSession(str(artifacts.predictor_dir), str(artifacts.stream))
    updates = [(u.seen, list(u.steps), list(u.adanpc_accuracy)) for u in session.run(session.stream, 8)]
    n = len(artifacts.stream_rows)
    assert [seen for seen, _, _ in updates] == [min(n, 8 * (i + 1)) for i in range(-(-n // 8))]
    seen, steps, accuracy = updates[-1]
    assert steps == [s for s, _, _ in updates] and len(accuracy) == len(updates)
    assert all(0.0 <= a <= 1.0 for a in accuracy)
    with pytest.raises(UIError, match="batch size must be"):
        next(session.run(session.stream, 0))
    session.warm_up()  # one predictor loaded ahead, taken by the next run only
    spare = session._spare
    assert spare is not None and session.load_predictor() is spare and session.load_predictor() is not spare


def test_train_tab_reads_checkpoints_cards_and_refuses_links(artifacts, tmp_path):
    from hf_ada.ui.train import read_run

    state = json.loads((artifacts.run_dir / "trainer_state.json").read_text())
    run = tmp_path / "run"
    for step in (2, 10):  # the newest checkpoint's state is read (10, not 2: numeric order)
        (run / f"checkpoint-{step}").mkdir(parents=True)
        history = [h for h in state["log_history"] if h.get("step", 0) <= step // 2 * 2]
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    read = read_run(run)
    assert read.source == "checkpoint-10/trainer_state.json" and len(read.loss["loss"][0]) == 4
    card_only = tmp_path / "card-only"
    card_only.mkdir()
    (card_only / "README.md").write_text(
        "# m\n\n### Training results\n\n| Training Loss | Epoch | Step | Validation Loss | Accuracy |\n"
        "|:---:|:---:|:---:|:---:|:---:|\n| 0.8897 | 1.0 | 45 | 0.2200 | 0.95 |\n| 0.1518 | 2.0 | 90 | 0.1267 | 0.97 |\n")
    read = read_run(card_only)
    assert read.loss == {"loss": ([45.0, 90.0], [0.8897, 0.1518]), "eval_loss": ([45.0, 90.0], [0.22, 0.1267])}
    assert read.learning_rate is None and "no trainer_state.json" in read.notes[0]
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "trainer_state.json").symlink_to(artifacts.run_dir / "trainer_state.json")
    with pytest.raises(UIError, match="is a link"):
        read_run(linked)
    with pytest.raises(UIError, match="not a Trainer output folder"):
        read_run(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_main_check_loads_everything_and_says_so(artifacts, capsys):
    rc = main(["--index", str(artifacts.index_dir), "--dataset", str(artifacts.rows), "--predictor",
               str(artifacts.predictor_dir), "--train-dir", str(artifacts.run_dir), "--check"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {
        "search": "loaded", "adapt": "loaded", "train": "loaded"}
    rc = main(["--index", str(artifacts.root / "nothing-here"), "--check"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 1 and "no such folder" in out["search"] and out["adapt"] is None


def test_the_app_never_wrote_into_the_folders_it_read(artifacts):
    """Runs last: every artifact file is exactly as built (the runs adapted copies in memory)."""
    assert snapshot(artifacts.root) == artifacts.before  # type: ignore[attr-defined]
    assert not re.search(r"\.(lock|tmp)$", " ".join(snapshot(artifacts.root)))
