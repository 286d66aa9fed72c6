"""Sample data that ships with hf-ada, for the README's first hour: ``hf-ada sample-data DIR``.

``data/debian-packages-sample.parquet`` holds 3,000 Debian 12 packages (500 from each of the sections libs,
python, devel, utils, net and science; one row per distinct description) with their ``package``,
``section``, one-line ``synopsis`` and long ``description``, taken from Debian's own package index. From it
:func:`write_sample_data` writes files shaped like a user's own data:

* ``packages.parquet`` -- all rows (a corpus to index: ``description``; queries: ``synopsis``);
* ``train.csv`` / ``validation.csv`` -- ``text`` (long description) and ``label`` (section), 70% / 10%;
* ``stream.csv`` -- ``text`` (the one-line synopsis) and ``label`` of the other 20% of the packages: a
  shifted test stream (short texts of unseen packages) for test-time adaptation.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SAMPLE_PARQUET", "write_sample_data"]

SAMPLE_PARQUET = Path(__file__).resolve().parent / "data" / "debian-packages-sample.parquet"
FILES = ("packages.parquet", "train.csv", "validation.csv", "stream.csv")


def write_sample_data(folder: str | Path, seed: int = 0) -> dict[str, Path]:
    """Write the four sample files into ``folder`` (refusing to overwrite any existing one); return their paths."""
    import pandas as pd

    folder = Path(folder)
    existing = [name for name in FILES if (folder / name).exists()]
    if existing:
        raise FileExistsError(f"{folder} already has {existing}; choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.read_parquet(SAMPLE_PARQUET)
    shuffled = table.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n = len(shuffled)
    train, validation, stream = shuffled[: int(0.7 * n)], shuffled[int(0.7 * n): int(0.8 * n)], shuffled[int(0.8 * n):]
    paths = {name: folder / name for name in FILES}
    table.to_parquet(paths["packages.parquet"])
    for name, part, column in (("train.csv", train, "description"), ("validation.csv", validation, "description"),
                               ("stream.csv", stream, "synopsis")):
        part[[column, "section"]].rename(columns={column: "text", "section": "label"}).to_csv(paths[name], index=False)
    return paths
