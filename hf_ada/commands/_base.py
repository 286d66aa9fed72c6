"""What every hf-ada command and script shares: the one-line error policy, an argument parser whose usage
errors are one line, value types that name the flag, the dataset loader and the output-folder check.

Error policy (:func:`run_main`): a usage error (a bad flag or value, a missing input file) prints one line
``PROG: error: ...`` and exits 2; any other failure prints one line and exits 1; ``--debug`` on the command
line or ``HF_ADA_DEBUG=1`` in the environment shows the full traceback instead.
"""

from __future__ import annotations

import contextlib

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["UsageError", "Parser", "run_main", "debug_requested", "positive_int", "non_negative_int",
           "load_dataset", "check_output_folder", "DATA_FILE_BUILDERS"]

#: Local data files the commands read, by suffix, and the ``datasets`` builder that reads them.
DATA_FILE_BUILDERS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".txt": "text"}


class UsageError(SystemExit):
    """A bad argument: the message names the flag and what is allowed. Like argparse's own usage errors it
    is a ``SystemExit`` (no ``except Exception`` swallows it); :func:`run_main` prints it as one line and
    exits with status 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line (``PROG: error: ... (see PROG --help)``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` in ``argv`` or ``HF_ADA_DEBUG`` set to something other than ``0`` / ``false``."""
    env = os.environ.get("HF_ADA_DEBUG", "").strip().lower()
    return bool(argv and "--debug" in argv) or env not in ("", "0", "false", "no")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _is_usage_error(err: BaseException) -> bool:
    from ..common.artifact import ArtifactError

    if isinstance(err, ArtifactError):  # a saved artifact that cannot be used: a failure, not a bad flag
        return False
    return isinstance(err, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, FileExistsError))


def run_main(func: Callable[[list[str]], Any], argv: Sequence[str] | None = None, *, prog: str,
             strip_debug: bool = True, only_own_errors: bool = False, debug: bool = False) -> int:
    """Run ``func(argv)`` under the error policy of the module docstring and return the exit status.

    ``strip_debug`` removes ``--debug`` from ``argv`` (commands whose arguments belong to another program,
    like ``hf-ada run``, keep it; ``debug=True`` asks for the traceback then). With ``only_own_errors`` an
    exception raised outside hf-ada's own code (a third-party script's bug) keeps its traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug or debug_requested(argv if strip_debug else None)
    if strip_debug:
        argv = [a for a in argv if a != "--debug"]
    previous = os.environ.get("HF_ADA_DEBUG")
    if debug:
        os.environ["HF_ADA_DEBUG"] = "1"  # for nested entry points (hf-ada index -> index build)
    try:
        return _run(func, argv, prog, debug, only_own_errors)
    finally:
        if previous is None:
            os.environ.pop("HF_ADA_DEBUG", None)
        else:
            os.environ["HF_ADA_DEBUG"] = previous


def _run(func: Callable[[list[str]], Any], argv: list[str], prog: str, debug: bool, only_own_errors: bool) -> int:
    try:
        result = func(argv)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        if debug:
            raise
        print(f"{prog}: error: {_one_line(exc.code)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (the policy: one line for every failure)
        if debug or (only_own_errors and not _raised_by_hf_ada(err)):
            raise
        usage = _is_usage_error(err)
        hint = "" if usage else " (run with --debug or HF_ADA_DEBUG=1 for the traceback)"
        print(f"{prog}: error: {_one_line(err) or type(err).__name__}{hint}", file=sys.stderr)
        return 2 if usage else 1
    return int(result) if isinstance(result, int) and not isinstance(result, bool) else 0


def _raised_by_hf_ada(err: BaseException) -> bool:
    """Whether the innermost frame of ``err``'s traceback is hf-ada's code (a check hf-ada made)."""
    tb = err.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    package = str(Path(__file__).resolve().parents[1])
    return str(Path(last.tb_frame.f_code.co_filename).resolve()).startswith(package)


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


#: argparse type: an integer >= 1.
positive_int = _int_at_least(1)
positive_int.__name__ = "positive_int"
#: argparse type: an integer >= 0.
non_negative_int = _int_at_least(0)
non_negative_int.__name__ = "non_negative_int"


def _looks_local(spec: str) -> bool:
    """A dataset argument that can only mean a local path (a data-file suffix, a path prefix, or more than
    one ``/``): a Hub id is ``name`` or ``owner/name``."""
    path = Path(spec)
    return (path.suffix.lower() in DATA_FILE_BUILDERS or spec.startswith(("/", "./", "../", "~", "."))
            or spec.count("/") > 1 or (spec.count("/") == 1 and Path(spec.split("/")[0]).is_dir()))


def load_dataset(spec: str, *, flag: str, split: str = "train") -> Any:
    """A ``datasets.Dataset`` from a data file (parquet/csv/json/jsonl/txt), a ``save_to_disk`` folder or a
    Hub dataset id. A path that does not exist is reported as a missing file naming ``flag``, never as a
    failed Hub look-up."""
    import datasets

    path = Path(spec).expanduser()
    if path.is_file():
        builder = DATA_FILE_BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise UsageError(f"{flag} {spec}: a data file must end in one of {sorted(DATA_FILE_BUILDERS)}")
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise UsageError(f"{flag} {spec} has no split {split!r}; its splits are {sorted(loaded)}")
                return loaded[split]
            return loaded
        return datasets.load_dataset(str(path), split=split)
    if _looks_local(spec):
        raise FileNotFoundError(f"{flag} {spec}: no such file or folder")
    return datasets.load_dataset(spec, split=split)


def _artifact_record(config: Path) -> dict[str, Any] | None:
    """The ``hf_ada_artifact`` record of a small JSON file, or ``None`` (not an hf-ada artifact's config)."""
    try:
        if not config.is_file() or config.is_symlink() or config.stat().st_size > 1 << 20:
            return None
        record = json.loads(config.read_text(encoding="utf-8")).get("hf_ada_artifact")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


#: The config file of each artifact kind a command saves (the other kinds' files are refused as outputs).
ARTIFACT_CONFIGS = {"AdANNS index": "config.json", "AdaNPC predictor": "adanpc_config.json"}


def check_output_folder(path: str | os.PathLike, *, flag: str, kind: str, inputs: Sequence[str | None] = (),
                        writes: Sequence[str] = ("README.md",)) -> Path:
    """Refuse, before any long work, an output folder that is a file, is (or lies inside) an input, holds
    another hf-ada artifact or a foreign config, holds a file the save would write (``writes``, e.g. a
    user's ``README.md``) that is not part of an artifact of ``kind`` saved there, or cannot be written."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file, not a folder")
    target = out.resolve()
    for given in inputs:
        if not given:
            continue
        guarded = Path(given).expanduser()
        if guarded.exists() and (target == guarded.resolve() or guarded.resolve() in target.parents):
            raise UsageError(f"{flag} {out} is the input {given} (or inside it); choose another folder")
    owned: set[str] = set()
    if out.is_dir():
        for other_kind, config_name in ARTIFACT_CONFIGS.items():
            config = out / config_name
            if not config.exists():
                continue
            record = _artifact_record(config)
            found = record.get("kind") if record else None
            if found == kind and config_name == ARTIFACT_CONFIGS.get(kind):
                owned |= {config_name, *(str(n) for n in (record.get("files") or {}))}
            elif found in ARTIFACT_CONFIGS:
                raise UsageError(f"{flag} {out} already holds an hf-ada {found}; choose another folder for the {kind}")
            elif config_name == ARTIFACT_CONFIGS.get(kind):
                raise UsageError(f"{flag} {out} already holds a {config_name} that is not an {kind}; choose another "
                                 "folder")
        for name in writes:
            if (out / name).exists() and name not in owned:
                raise UsageError(f"{flag} {out} already holds a {name} that is not part of a saved {kind} (the save "
                                 "would overwrite it); choose another folder")
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {out} cannot be written ({probe} is not writable)")
    return out


@contextlib.contextmanager
def library_output_to_stderr() -> Iterator[None]:
    """While the command works, whatever a library prints to stdout goes to stderr (DeepSpeed, for one, logs a
    line to stdout when transformers imports it), so that the result the command prints afterwards (JSON
    lines, a table) is the only thing on stdout and stays machine-readable."""
    with contextlib.redirect_stdout(sys.stderr):
        yield
