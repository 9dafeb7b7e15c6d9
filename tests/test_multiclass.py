"""Several classes everywhere (issue 19): a three-class generated set, and the per-class counts
of the app, its API, ``count``'s table (plain and Ray), the pre-labels and the Hub card.

The model is conftest's ``multiclass_onnx``: an untrained three-class heatmap counter whose
stored threshold sits in a gap of its scores and keeps boxes of every class on the photos
(``multiclass_photos``, made by ``utils.synth_classes``). Its counts mean nothing; each place
must report, class by class, exactly what ``Predictor.predict(...).counts_by_class()`` says.
The browser's per-class counts are checked in tests/test_web.py and tests/test_web_tiling.py.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from utils import app, batch, cli
from utils.images import load_image
from utils.processing import Detections, InferenceConfig
from utils.synth_classes import CLASS_NAMES, FIRST_SEED, generate_mixed_image

PER_CLASS_COLUMNS = [f"count_{name}" for name in CLASS_NAMES]


@pytest.fixture(scope="module")
def model(multiclass_onnx) -> Path:
    return multiclass_onnx


@pytest.fixture(scope="module")
def predictor(model):
    from utils.runtime import OnnxPredictor

    return OnnxPredictor(model, threads=2)


@pytest.fixture(scope="module")
def images(multiclass_photos) -> list[Path]:
    """The photos the app serves as examples (conftest's ``server`` fixture reads ``images``)."""
    return multiclass_photos


@pytest.fixture(scope="module")
def expected(predictor, images) -> dict[str, Detections]:
    """What the predictor itself finds on each photo, at the model's stored threshold."""
    return {p.name: predictor.predict(load_image(p).image) for p in images}


@pytest.fixture()
def photos_only(images, tmp_path) -> Path:
    """The photos copied into an empty folder (no label files beside them)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in images:
        shutil.copy2(path, folder / path.name)
    return folder


# ----------------------------------------------------------------------------- the data


def test_generated_set_has_three_classes_that_look_apart(multiclass_photos) -> None:
    from utils.annotations import load_annotations

    folder = multiclass_photos[0].parent
    voc = load_annotations(folder)
    coco = load_annotations(folder / "annotations.json")
    assert voc.class_names == coco.class_names == CLASS_NAMES
    for a, b in zip(voc.images, coco.images):
        assert a.labels == b.labels and set(a.labels) == set(CLASS_NAMES), a.name
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.5)  # VOC stores whole pixels
    # Each class has its own size, shape and colour: a model can tell them apart.
    sides = {name: [] for name in CLASS_NAMES}
    aspect = {name: [] for name in CLASS_NAMES}
    redness = {name: [] for name in CLASS_NAMES}
    for img in voc.images:
        pixels = np.asarray(img.load_image(), np.float32)
        for box, label in zip(img.boxes, img.labels):
            w, h = box[2] - box[0], box[3] - box[1]
            sides[label].append(np.sqrt(w * h))
            aspect[label].append(max(w, h) / max(min(w, h), 1))
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            crop = pixels[y1:y2, x1:x2].reshape(-1, 3)
            redness[label].append(float(np.mean(crop[:, 0] - crop[:, 1])))
    median = {k: {n: float(np.median(v[n])) for n in CLASS_NAMES} for k, v in
              (("side", sides), ("aspect", aspect), ("red", redness))}
    assert median["side"]["Speck"] < 0.6 * median["side"]["Round"], median
    assert median["aspect"]["Round"] < 1.3 < median["aspect"]["Microalgae"], median
    assert median["red"]["Round"] > median["red"]["Microalgae"] + 20, median


def test_generated_photos_are_the_same_for_a_seed() -> None:
    a_image, a_boxes, a_labels = generate_mixed_image(FIRST_SEED, 128)
    b_image, b_boxes, b_labels = generate_mixed_image(FIRST_SEED, 256)
    assert a_labels == b_labels
    np.testing.assert_allclose(a_boxes * 2, b_boxes, atol=1e-3)  # relative units: any size
    again = generate_mixed_image(FIRST_SEED, 128)[0]
    assert np.array_equal(np.asarray(a_image), np.asarray(again))


def test_synth_classes_command_line(tmp_path, capsys) -> None:
    from utils import synth_classes
    from utils.annotations import load_annotations

    synth_classes.main(["--out", str(tmp_path / "set"), "--images", "2", "--size", "128"])
    line = capsys.readouterr().out
    aset = load_annotations(tmp_path / "set")
    assert len(aset) == 2 and aset.class_names == CLASS_NAMES
    shown = ", ".join(
        f"{sum(lab == c for img in aset for lab in img.labels)} {c}" for c in CLASS_NAMES
    )
    assert line.startswith(f"Wrote 2 photos ({shown}) to ") and str(tmp_path) not in line
    with pytest.raises(SystemExit):
        synth_classes.main(["--out", str(tmp_path / "x"), "--size", "10"])
    assert "--size must be between 64 and 8192 px" in capsys.readouterr().err


# ----------------------------------------------------------------------------- Detections


def test_counts_by_class_lists_every_class_in_the_models_order() -> None:
    found = Detections(
        boxes=np.zeros((4, 4), np.float32),
        scores=np.ones(4, np.float32),
        labels=np.array([2, 0, 2, 5]),
        class_names=("RBC", "WBC", "Platelets"),
    )
    assert found.counts_by_class() == {"RBC": 1, "WBC": 0, "Platelets": 2, "5": 1}
    assert list(found.counts_by_class()) == ["RBC", "WBC", "Platelets", "5"]
    assert found.label_names() == ["Platelets", "RBC", "Platelets", "5"]
    assert [r["label"] for r in found.to_records()] == found.label_names()
    assert found.above(2.0).counts_by_class() == {"RBC": 0, "WBC": 0, "Platelets": 0}
    assert Detections(class_names=("Microalgae",)).counts_by_class() == {"Microalgae": 0}


def test_the_model_counts_every_class(expected) -> None:
    totals = Counter()
    for name, found in expected.items():
        counts = found.counts_by_class()
        assert list(counts) == list(CLASS_NAMES) and sum(counts.values()) == found.count, name
        totals.update(counts)
    assert all(totals[name] >= 2 for name in CLASS_NAMES), totals


# ----------------------------------------------------------------------------- the app


def test_app_answers_per_class_counts_without_a_server(predictor, images, expected) -> None:
    result = app.count_cells(predictor, images[0])
    found = expected[images[0].name]
    assert result.count == found.count and result.counts == found.counts_by_class()
    assert result.columns == app.CLASS_TABLE_COLUMNS
    assert [row[1] for row in result.rows] == found.label_names()
    by_class = ", ".join(f"{k} {n}" for k, n in found.counts_by_class().items())
    assert f"By class: {by_class}." in result.notes_markdown()
    answer = result.to_json(with_image=False)
    assert answer["count"] == found.count and answer["counts"] == found.counts_by_class()
    assert [d["class"] for d in answer["detections"]] == found.label_names()
    assert json.loads(json.dumps(answer)) == answer  # plain JSON


def test_one_class_answers_stay_as_they_were() -> None:
    assert app.table_columns(("Microalgae",)) == app.TABLE_COLUMNS
    assert app.table_columns(CLASS_NAMES) == app.CLASS_TABLE_COLUMNS
    plain = app.CountResult(None, 3, [[1, 0.9, 0, 0, 1, 1]], seconds=0.01, tiles=1, scale=1.0)
    assert "counts" not in plain.to_json() and "By class" not in plain.notes_markdown()
    assert set(plain.to_json()["detections"][0]) == set(app.TABLE_COLUMNS)


def test_api_answers_per_class_counts_over_http(server, images, expected) -> None:
    path = images[1]
    found = expected[path.name]
    answer = app.call_base64_with_requests(server, path)
    assert answer["count"] == found.count
    assert answer["counts"] == found.counts_by_class()
    assert [d["class"] for d in answer["detections"]] == found.label_names()
    plain = app.call_rest_with_requests(server, path, picture=False)  # POST /api/count
    assert plain["counts"] == found.counts_by_class() and plain["count"] == found.count
    shown = app.call_with_client(server, path)
    assert shown["count"] == found.count
    assert shown["table"]["headers"] == app.CLASS_TABLE_COLUMNS
    assert Counter(row[1] for row in shown["table"]["data"]) == Counter(found.label_names())
    assert "By class: " + ", ".join(f"{k} {n}" for k, n in found.counts_by_class().items()) in (
        shown["notes"]
    )


# ----------------------------------------------------------------------------- count


def _expected_rows(expected) -> dict[str, list[int]]:
    return {
        name: [found.count, *(found.counts_by_class()[c] for c in CLASS_NAMES)]
        for name, found in expected.items()
    }


def test_count_cli_writes_a_column_per_class(model, photos_only, expected, capsys) -> None:
    assert cli.main(["count", "--checkpoint", str(model), str(photos_only)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["file", "count", *PER_CLASS_COLUMNS, "error"]
    got = {Path(r[0]).name: [int(v) for v in r[1:-1]] for r in rows[1:]}
    assert got == _expected_rows(expected)

    out = photos_only.parent / "counts.csv"
    assert cli.main(["count", "--checkpoint", str(model), str(photos_only), "--out", str(out)]) == 0
    totals = {c: sum(f.counts_by_class()[c] for f in expected.values()) for c in CLASS_NAMES}
    shown = ", ".join(f"{n} {c}" for c, n in totals.items())
    assert f"({shown})" in capsys.readouterr().out


def test_count_cli_error_row_keeps_the_columns(model, photos_only, capsys) -> None:
    (photos_only / "broken.jpg").write_bytes(b"\xff\xd8\xff not a JPEG")
    assert cli.main(["count", "--checkpoint", str(model), str(photos_only)]) == 1
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    broken = next(r for r in rows if r[0].endswith("broken.jpg"))
    assert len(broken) == len(rows[0]) == 6 and broken[1:5] == ["", "", "", ""] and broken[5]


@pytest.mark.parametrize("engine", ["plain", "ray"])
def test_batch_table_has_a_count_per_class(engine, model, images, expected, tmp_path, request):
    if engine == "ray":
        request.getfixturevalue("ray_local")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not a JPEG")
    files = [*images, broken]
    for out in (tmp_path / "counts.csv", tmp_path / "counts.parquet"):
        batch.run(model, files, out, engine=engine, workers=2, batch_size=2, progress=False)
        rows = batch.read_table(out)
        assert list(rows[0]) == ["file", "count", *PER_CLASS_COLUMNS, "mean_score", "seconds",
                                 "error"], out.suffix
        got = {Path(r["file"]).name: [r["count"], *(r[c] for c in PER_CLASS_COLUMNS)]
               for r in rows if not r["error"]}
        assert got == _expected_rows(expected), (engine, out.suffix)
        bad = next(r for r in rows if r["error"])
        assert all(bad[c] is None for c in ["count", *PER_CLASS_COLUMNS])
        summary = batch.summary(rows)
        assert summary["cells_by_class"] == {
            c: sum(f.counts_by_class()[c] for f in expected.values()) for c in CLASS_NAMES
        }
    # a rerun counts only what failed, and keeps the columns
    again = batch.run(model, files, tmp_path / "counts.csv", engine=engine, progress=False)
    assert [Path(r["file"]).name for r in again] == ["broken.jpg"]
    assert list(batch.read_table(tmp_path / "counts.csv")[0])[2:5] == PER_CLASS_COLUMNS


def test_one_class_table_keeps_its_columns() -> None:
    assert batch.columns_for(("Microalgae",)) == batch.COLUMNS
    assert batch.columns_for(CLASS_NAMES)[2:5] == tuple(PER_CLASS_COLUMNS)


# ----------------------------------------------------------------------------- pre-labels


def test_prelabels_keep_the_classes(predictor, photos_only, expected, capsys) -> None:
    from utils.annotations import load_annotations
    from utils.prelabels import read_labelstudio_prelabels, write_prelabels

    rows = [
        batch.count_image(predictor, p, predictor.config.score_threshold, boxes=True)
        for p in sorted(photos_only.glob("*.jpg"))
    ]
    sentence = write_prelabels(rows, CLASS_NAMES, "voc")
    voc = load_annotations(photos_only)
    coco_sentence = write_prelabels(rows, CLASS_NAMES, "coco", photos_only / "pre.json")
    coco = load_annotations(photos_only / "pre.json")
    write_prelabels(rows, CLASS_NAMES, "labelstudio", photos_only / "tasks.json")
    studio = read_labelstudio_prelabels(photos_only / "tasks.json", CLASS_NAMES)
    assert voc.class_names == coco.class_names == CLASS_NAMES
    for aset in (voc, coco, studio):
        for img in aset.images:
            found = expected[img.name]
            assert Counter(img.labels) == Counter(found.label_names()), img.name
    totals = {c: sum(f.counts_by_class()[c] for f in expected.values()) for c in CLASS_NAMES}
    assert ", ".join(f"{n} {c}" for c, n in totals.items()) in sentence
    assert "Speck" in coco_sentence
    categories = json.loads((photos_only / "pre.json").read_text())["categories"]
    assert [c["name"] for c in categories] == list(CLASS_NAMES)


# ----------------------------------------------------------------------------- the Hub card


def test_card_lists_the_classes_and_their_metrics() -> None:
    from utils.hub import build_model_card

    config = InferenceConfig("centernet_resnet18", CLASS_NAMES, 128, score_threshold=0.4)
    metrics = {
        "map": 0.5,
        "map_50": 0.8,
        "count_mae": 1.5,
        "ap_per_class": {
            "Microalgae": {"ap": 0.61, "ap_50": 0.9, "ap_75": 0.7},
            "Round": {"ap": 0.42, "ap_50": 0.8, "ap_75": 0.4},
        },
        "per_class": {
            "Microalgae": {"mae": 1.25, "mape": 12.5, "mape_photos": 3, "pred_total": 30,
                           "true_total": 32},
            "Round": {"mae": 0.5, "mape": None, "mape_photos": 0, "pred_total": 9,
                      "true_total": 10},
        },
    }
    text = str(build_model_card(config, metrics, "someone/cells"))
    assert "Classes: Microalgae, Round, Speck." in text
    assert "| Microalgae | 0.610 | 0.900 | 1.25 | 12.5 (3 photos) | 30 / 32 |" in text
    assert "| Round | 0.420 | 0.800 | 0.50 | – | 9 / 10 |" in text
    assert "| Speck | – | – | – | – | – |" in text  # no labelled specks: no numbers
    assert "counts_by_class()" in text
    one = InferenceConfig("centernet_resnet18", ("Microalgae",), 128)
    plain = str(build_model_card(one, metrics, "someone/cells"))
    assert "Per class" not in plain and "counts_by_class" not in plain


def test_card_reads_what_evaluate_measures(predictor, multiclass_photos) -> None:
    """The card's per-class table from a real ``evaluate.evaluate`` on the three-class set."""
    from utils.annotations import load_annotations
    from utils.evaluate import evaluate
    from utils.hub import build_model_card, class_rows

    metrics = evaluate(predictor, load_annotations(multiclass_photos[0].parent))
    rows = class_rows(metrics, CLASS_NAMES)
    assert [r[0] for r in rows] == list(CLASS_NAMES)
    labelled = metrics["per_class"]
    for row in rows:
        assert row[5] == f"{labelled[row[0]]['pred_total']} / {labelled[row[0]]['true_total']}"
        assert row[1] != "–"  # every class is labelled in these photos: an AP for each
    text = str(build_model_card(predictor.config, metrics, "someone/cells"))
    assert all(f"| {name} |" in text for name in CLASS_NAMES)


# ----------------------------------------------------------------------------- the Spaces


def test_space_cards_name_the_classes(model, images, tmp_path) -> None:
    from utils import space

    gradio = space.write_space(tmp_path / "gradio", model, images[:1])
    card = (gradio / "README.md").read_text(encoding="utf-8")
    assert "Classes: Microalgae, Round, Speck; the app" in card
    static = space.write_static_space(tmp_path / "static", model, images[:1], weights="fp32")
    card = (static / "README.md").read_text(encoding="utf-8")
    assert "Classes: Microalgae, Round, Speck; the page shows the count of each" in card
    assert 'id="class-counts"' in (static / "index.html").read_text(encoding="utf-8")
