"""First paint of the web interface (``python -m hf_ada.ui``) on the demo's artifacts, in Debian's chromium.

For each repeat: start ``python -m hf_ada.ui --demo DIR --port P`` as a fresh process, time until the server
answers, open the page in headless chromium (Playwright, the system browser) and read the browser's own
first-contentful-paint, then the time until the Search tab's query box is visible. The baseline, in the same
run, is a bare Gradio app (one textbox, same launch settings): what any Gradio app costs on this machine.

    hf-ada demo --quick --out /tmp/demo
    python benchmarks/bench_ui_first_paint.py --demo /tmp/demo --repeats 3

Writes ``benchmarks/results/ui_first_paint.md`` and ``ui_demo_adapt.png`` (a screenshot of the Adapt tab
after a run of the demo's stream).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
BARE_APP = """
import sys
import gradio as gr
with gr.Blocks(title="bare") as app:
    gr.Textbox(label="query", elem_id="search-query")
app.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), share=False, quiet=True, ssr_mode=False,
           footer_links=[], theme=gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                                                    font_mono=["ui-monospace", "monospace"]))
"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _measure(command: list[str], port: int, browser, screenshot: Path | None = None) -> dict[str, float]:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{command} exited with {proc.returncode}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        ready = time.perf_counter() - start
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(120_000)
        opened = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#search-query textarea")
        usable = time.perf_counter() - opened
        fcp = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime") / 1000
        if screenshot is not None:
            page.click("button[role=tab]:has-text('Adapt')")
            page.click("#adapt-run")
            page.wait_for_selector("#adapt-counts[data-status=done]")
            page.screenshot(path=str(screenshot), full_page=True)
        page.close()
        return {"server": ready, "fcp": fcp, "usable": usable, "total": ready + usable}
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("hf-ada-demo"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, float]]] = {"hf-ada ui (demo artifacts)": [], "bare Gradio app (baseline)": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for i in range(args.repeats):
            port = _port()
            shot = args.out / "ui_demo_adapt.png" if i == 0 else None
            rows["hf-ada ui (demo artifacts)"].append(_measure(
                [sys.executable, "-m", "hf_ada.ui", "--demo", str(args.demo), "--port", str(port)], port, browser, shot))
            port = _port()
            rows["bare Gradio app (baseline)"].append(_measure([sys.executable, "-c", BARE_APP, str(port)], port, browser))
        browser.close()
    load = os.getloadavg()[0]
    lines = ["# First paint of `python -m hf_ada.ui` on the demo's artifacts", "",
             f"{args.repeats} fresh processes each, medians; {os.cpu_count()} CPU cores, load average {load:.1f} "
             "at the end (the machine was shared). Browser: Debian's chromium, headless, via Playwright.", "",
             "| app | process start -> server answers | page open -> first contentful paint | page open -> "
             "search box usable | process start -> usable |", "| --- | ---: | ---: | ---: | ---: |"]
    medians = {}
    for name, runs in rows.items():
        med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        medians[name] = med
        lines.append(f"| {name} | {med['server']:.1f} s | {med['fcp'] * 1000:.0f} ms | {med['usable']:.2f} s | "
                     f"{med['total']:.1f} s |")
    ours, bare = medians.values()
    lines += ["", f"Ratio hf-ada ui / bare Gradio: server start {ours['server'] / bare['server']:.2f}x, first "
              f"contentful paint {ours['fcp'] / bare['fcp']:.2f}x, process start -> usable "
              f"{ours['total'] / bare['total']:.2f}x. The server start is mostly importing torch, transformers and "
              "faiss (models load in the background once the page is there); the page paints like any Gradio page.", "",
              "Command: `python benchmarks/bench_ui_first_paint.py --demo DIR` after `hf-ada demo --quick --out DIR`.", "",
              "![the Adapt tab after a run of the demo's stream](ui_demo_adapt.png)", ""]
    text = "\n".join(lines)
    (args.out / "ui_first_paint.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
