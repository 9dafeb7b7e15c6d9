"""Counting an archive (``utils.batch``): the Ray engine counts what the plain one counts,
a bad image is an error row, an interrupted job loses nothing and a rerun skips what is done.

Ray runs as a local instance started by this module (2 CPUs, no cluster) and is shut down
at the end, so no Ray process outlives the tests.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from utils import batch, cli
from utils.synth import TEST_SEEDS, generate_image


@pytest.fixture(scope="module")
def model(archive_onnx) -> Path:
    """conftest's archive model (untrained heatmap counter, 128 px, a threshold among its peaks)."""
    return archive_onnx


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """Eight held-out scenes (the test set's seeds, smaller) and one corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for seed in TEST_SEEDS[:8]:
        image, _, _ = generate_image(seed, 256)
        path = folder / f"held_out_{seed}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a JPEG")
    return sorted([*paths, broken])


def _by_file(rows):
    return {Path(r["file"]).name: r for r in rows}


@pytest.fixture(scope="module")
def both(model, photos, ray_local, tmp_path_factory) -> dict[str, Path]:
    """The same photos counted by each engine (Ray: 2 actors, batches of 2)."""
    folder = tmp_path_factory.mktemp("out")
    out = {"plain": folder / "plain.csv", "ray": folder / "ray.parquet"}
    batch.run(model, photos, out["plain"], engine="plain", progress=False)
    batch.run(model, photos, out["ray"], engine="ray", workers=2, batch_size=2, progress=False)
    return out


def test_ray_counts_equal_plain_counts(both, photos) -> None:
    plain = _by_file(batch.read_table(both["plain"]))
    ray_rows = _by_file(batch.read_table(both["ray"]))
    assert plain.keys() == ray_rows.keys() == {p.name for p in photos}
    counts = {name: r["count"] for name, r in plain.items() if name != "broken.jpg"}
    assert len(set(counts.values())) > 2, counts  # the counts differ from image to image
    for name, row in plain.items():
        assert ray_rows[name]["count"] == row["count"], name
        if row["mean_score"] is not None:
            assert ray_rows[name]["mean_score"] == pytest.approx(row["mean_score"], abs=1e-4)
    # the files hold the same rows, in the same (sorted) order, with the same columns
    assert list(plain) == list(ray_rows)
    assert list(next(iter(ray_rows.values()))) == list(batch.COLUMNS)


def test_a_corrupt_image_is_an_error_row_not_a_failed_job(both) -> None:
    for engine in ("plain", "ray"):
        rows = _by_file(batch.read_table(both[engine]))
        bad = rows["broken.jpg"]
        assert bad["count"] is None and bad["mean_score"] is None, engine
        assert "broken.jpg" in bad["error"] and "/" not in bad["error"]  # no machine path
        assert all(
            r["error"] == "" and r["count"] >= 0 for n, r in rows.items() if n != "broken.jpg"
        )


def test_an_interrupted_job_loses_nothing_and_a_rerun_skips_what_is_done(
    model, photos, ray_local, tmp_path
) -> None:
    out = tmp_path / "counts.csv"
    seen = []

    def stop_after_three(row) -> None:
        seen.append(row["file"])
        if len(seen) == 3:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-job

    with pytest.raises(KeyboardInterrupt):
        batch.run(
            model,
            photos,
            out,
            engine="ray",
            workers=2,
            batch_size=1,
            progress=False,
            on_row=stop_after_three,
        )
    kept = batch.read_table(out)
    assert {r["file"] for r in kept} == set(seen)  # flushed on the way out: nothing lost
    again = batch.run(model, photos, out, engine="ray", workers=2, progress=False)
    assert not {r["file"] for r in again} & (set(seen) - {photos[0].as_posix()})
    final = batch.read_table(out)
    assert sorted(r["file"] for r in final) == sorted(p.as_posix() for p in photos)
    # a third run only retries the error row
    third = batch.run(model, photos, out, engine="plain", progress=False)
    assert [Path(r["file"]).name for r in third] == ["broken.jpg"]
    assert len(batch.read_table(out)) == len(photos)


def test_cli_engine_ray_writes_parquet_and_exits_1_on_a_bad_image(
    model, photos, ray_local, tmp_path, capsys
) -> None:
    out = tmp_path / "counts.parquet"
    argv = [
        "count",
        "--checkpoint",
        str(model),
        str(photos[0].parent),
        "--engine",
        "ray",
        "--workers",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip() == (
        "error: 1 of 9 images could not be counted (broken.jpg); see the error column"
    )
    assert "Counted 9 new image(s)" in captured.out
    rows = batch.read_table(out)
    assert len(rows) == 9 and sum(1 for r in rows if r["error"]) == 1
    argv[argv.index("ray")] = "plain"  # a second run (either engine): only the bad image again
    assert cli.main(argv) == 1
    assert "Counted 1 new image(s)" in capsys.readouterr().out


def test_plain_cli_keeps_its_three_columns_without_engine(model, photos, capsys) -> None:
    code = cli.main(["count", "--checkpoint", str(model), str(photos[1])])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[0] == "file,count,error"
    code = cli.main(
        ["count", "--checkpoint", str(model), str(photos[1]), "--engine", "plain", "--quiet"]
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert code == 0 and list(rows[0]) == list(batch.COLUMNS)
    assert float(rows[0]["seconds"]) > 0


def test_unknown_output_format_is_refused(model, photos, capsys) -> None:
    code = cli.main(
        [
            "count",
            "--checkpoint",
            str(model),
            str(photos[1]),
            "--engine",
            "plain",
            "--out",
            "counts.xlsx",
        ]
    )
    assert code == 1 and "name the file .csv or .parquet" in capsys.readouterr().err


def test_missing_ray_says_how_to_install_it(model, photos, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(batch.BatchError, match=r'pip install "\.\[scale\]"'):
        batch.run(model, photos, engine="ray", progress=False)


def test_ray_counts_tiled_photos_like_plain(model, photos, ray_local, tmp_path) -> None:
    """At working scale 1 the 256 px photos need 3 x 3 tiles of 128 px: both engines tile
    them through the same Predictor.predict, with identical counts."""
    plain = batch.run(model, photos, engine="plain", progress=False, scale=1.0)
    ray_rows = batch.run(
        model, photos, engine="ray", workers=2, batch_size=2, progress=False, scale=1.0
    )
    assert [r["count"] for r in plain] == [r["count"] for r in ray_rows]
    default = _by_file(batch.run(model, photos, engine="plain", progress=False))
    assert any(r["count"] != default[Path(r["file"]).name]["count"] for r in plain)


def test_archive_threshold_sits_in_a_gap(model, photos) -> None:
    """No peak score of these photos lies within PARITY_TOLERANCE of the archive threshold, so
    engines that differ in threads or batch size (plain: 1 photo, Ray: 2) count the same on
    any CPU (tests/numerics.py)."""
    from tests.conftest import ARCHIVE_THRESHOLD
    from tests.numerics import PARITY_TOLERANCE, margin
    from utils.images import load_image
    from utils.loading import load_predictor

    predictor = load_predictor(model)
    readable = [p for p in photos if p.name != "broken.jpg"]
    scores = [predictor.predict(load_image(p).image, 0.0).scores for p in readable]
    assert margin(np.concatenate(scores), ARCHIVE_THRESHOLD) > PARITY_TOLERANCE
