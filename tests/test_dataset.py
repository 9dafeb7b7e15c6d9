"""CellDataset: letterboxed tensors, 1-based labels, augmentations that keep boxes valid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from utils import synth
from utils.annotations import AnnotatedImage, AnnotationError, AnnotationSet
from utils.dataset import (
    CellDataset,
    collate,
    fitted_crop_size,
    make_loader,
    rotate90,
    split,
)


@pytest.fixture(scope="module")
def aset(tmp_path_factory) -> AnnotationSet:
    folder = tmp_path_factory.mktemp("cells")
    return synth.write_dataset(folder, seeds=[0, 1, 2, 3, 4], size=160)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _check_item(image, target, size: int) -> None:
    assert isinstance(image, tv_tensors.Image)
    assert image.dtype == torch.float32 and tuple(image.shape) == (3, size, size)
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    boxes, labels = target["boxes"], target["labels"]
    assert isinstance(boxes, tv_tensors.BoundingBoxes)
    assert boxes.format == tv_tensors.BoundingBoxFormat.XYXY
    assert tuple(boxes.canvas_size) == (size, size)
    assert labels.dtype == torch.int64 and len(labels) == len(boxes)
    assert (labels >= 1).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert float(boxes.min()) >= 0 and float(boxes.max()) <= size


def test_eval_item_is_the_letterboxed_image_and_scaled_boxes(aset):
    ds = CellDataset(aset, image_size=96)
    image, target = ds[0]
    _check_item(image, target, 96)
    np.testing.assert_allclose(target["boxes"].numpy(), aset.images[0].boxes * 96 / 160, rtol=1e-6)
    assert target["labels"].tolist() == [1] * len(aset.images[0].boxes)
    again, _ = ds[0]
    assert torch.equal(image, again)  # no augmentation in eval mode


def test_letterbox_keeps_boxes_on_non_square_images(tmp_path):
    pixels = np.zeros((50, 100, 3), np.uint8)
    pixels[10:20, 60:90] = 255
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    img = AnnotatedImage(tmp_path / "wide.png", 100, 50, [[60, 10, 90, 20]], ["A"])
    image, target = CellDataset(AnnotationSet(("A",), [img]), 64)[0]
    np.testing.assert_allclose(target["boxes"].numpy(), [[38.4, 6.4, 57.6, 12.8]], rtol=1e-5)
    assert float(image[:, 40:, :].max()) == 0.0  # black padding below the photo
    assert float(image[:, 8:12, 42:54].min()) > 0.9  # the white patch sits inside its box


def test_train_items_stay_valid_under_augmentation(aset):
    ds = CellDataset(aset, image_size=128, train=True)
    torch.manual_seed(0)
    for _ in range(3):
        for i in range(len(ds)):
            image, target = ds[i]
            _check_item(image, target, 128)
            assert len(target["boxes"]) > 0.5 * len(aset.images[i].boxes)


def test_augmentation_is_random_but_seeded(aset):
    ds = CellDataset(aset, image_size=96, train=True)
    torch.manual_seed(1)
    first = [ds[0][0] for _ in range(3)]
    torch.manual_seed(1)
    second = [ds[0][0] for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1]) or not torch.equal(first[1], first[2])


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_rotate90_moves_boxes_with_pixels(k):
    image = torch.zeros(1, 20, 20, dtype=torch.uint8)
    image[0, 2:6, 10:18] = 255  # rows y 2..5, columns x 10..17 -> box (10, 2, 18, 6)
    turned, boxes = rotate90(image, torch.tensor([[10.0, 2.0, 18.0, 6.0]]), k)
    ys, xs = torch.nonzero(turned[0], as_tuple=True)
    found = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    assert boxes[0].tolist() == found


def test_class_names_map_to_one_based_labels(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "x.png")
    img = AnnotatedImage(tmp_path / "x.png", 32, 32, [[1, 1, 10, 10], [5, 5, 20, 20]], ["B", "A"])
    aset = AnnotationSet(("A", "B"), [img])
    assert CellDataset(aset, 32)[0][1]["labels"].tolist() == [2, 1]
    assert CellDataset(aset, 32, class_names=["B", "A"])[0][1]["labels"].tolist() == [1, 2]
    with pytest.raises(AnnotationError, match="'B'"):
        CellDataset(aset, 32, class_names=["A"])


def test_collate_and_loader(aset):
    ds = CellDataset(aset, image_size=64)
    images, targets = collate([ds[0], ds[1]])
    assert len(images) == len(targets) == 2 and "boxes" in targets[0]
    loader = make_loader(ds, batch_size=2, shuffle=True, seed=3)
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [2, 2, 1]
    order = [len(t["boxes"]) for b in batches for t in b[1]]
    again = [len(t["boxes"]) for b in make_loader(ds, 2, True, 3) for t in b[1]]
    assert order == again


def test_split_is_deterministic_disjoint_and_complete(aset):
    images = [
        AnnotatedImage(img.image_path, img.width, img.height, img.boxes, img.labels)
        for img in aset.images * 4
    ]
    big = AnnotationSet(aset.class_names, images)  # 20 distinct objects
    train, val = split(big, val_fraction=0.2, seed=0)
    train2, val2 = split(big, val_fraction=0.2, seed=0)
    ids = {id(img): i for i, img in enumerate(big.images)}
    t_idx = [ids[id(img)] for img in train.images]
    v_idx = [ids[id(img)] for img in val.images]
    assert len(v_idx) == 4 and len(t_idx) == 16
    assert not set(t_idx) & set(v_idx) and sorted(t_idx + v_idx) == list(range(20))
    assert [ids[id(img)] for img in val2.images] == v_idx
    assert [ids[id(img)] for img in train2.images] == t_idx
    _, other = split(big, val_fraction=0.2, seed=1)
    assert [ids[id(img)] for img in other.images] != v_idx
    assert train.class_names == big.class_names


def test_split_keeps_one_image_on_each_side(aset):
    train, val = split(aset.subset([0, 1]), val_fraction=0.9)
    assert len(train) == len(val) == 1
    with pytest.raises(ValueError):
        split(aset.subset([0]))


def test_the_default_split_holds_back_a_fifth_but_at_most_twenty_photos(aset):
    """The CLI's default (``--val-fraction`` not given): 3 of 17, 20 of 292 (not 58)."""
    from utils.dataset import MAX_VAL_PHOTOS, split_or_all

    def copies(n):
        images = [aset.images[k % len(aset)] for k in range(n)]
        return AnnotationSet(aset.class_names, [
            AnnotatedImage(i.image_path, i.width, i.height, i.boxes, i.labels) for i in images
        ])

    assert MAX_VAL_PHOTOS == 20
    for n, held in ((17, 3), (100, 20), (292, 20)):
        photos = copies(n)
        train, val = split_or_all(photos, None, seed=1)
        assert (len(train), len(val)) == (n - held, held)
        ids = {id(img): k for k, img in enumerate(photos.images)}
        capped = [ids[id(img)] for img in val.images]
        _, fifth = split(photos, 0.2, seed=1)  # the same order: the cap keeps a subset
        assert set(capped) <= {ids[id(img)] for img in fifth.images}
    assert len(split(copies(292), 0.2, seed=1)[1]) == 58  # an explicit fraction is not capped


def test_split_or_all_trains_on_every_image_at_zero(aset):
    from utils.dataset import split_or_all

    train, val = split_or_all(aset, 0.0)
    assert train is aset and val is None
    assert [len(s) for s in split_or_all(aset, 0.5, seed=3)] == [len(s) for s in split(aset, 0.5, 3)]
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="--val-fraction must be 0"):
            split_or_all(aset, bad)


def test_random_crops_repeat_each_image_and_keep_boxes_valid(aset):
    ds = CellDataset(aset, image_size=128, train=True, crop_size=64, repeats=3)
    assert len(ds) == 3 * len(aset) and "64px crops x3" in repr(ds)
    torch.manual_seed(0)
    crops = [ds[i] for i in range(len(ds))]
    for image, target in crops:
        _check_item(image, target, 64)
    # the same photo, drawn three times an epoch, gives three different crops
    assert not torch.equal(crops[0][0], crops[len(aset)][0])
    assert sum(len(t["boxes"]) for _, t in crops) > 0


def test_crop_as_large_as_the_image_is_no_crop_and_tiny_crops_are_refused(aset):
    assert CellDataset(aset, image_size=128, train=True, crop_size=256).crop_size is None
    assert CellDataset(aset, image_size=128, train=False, repeats=4).repeats == 1  # eval: once
    with pytest.raises(ValueError, match="crop_size"):
        CellDataset(aset, image_size=128, train=True, crop_size=16)


def _sized(*sizes: tuple[int, int]) -> AnnotationSet:
    """Photos of these sizes (never opened: the crop is chosen from the annotations' sizes)."""
    images = [
        AnnotatedImage(f"p{i}.jpg", w, h, np.array([[0, 0, 40, 40]], np.float32), ["cell"])
        for i, (w, h) in enumerate(sizes)
    ]
    return AnnotationSet(("cell",), images)


def test_crop_shrinks_to_the_median_photo_at_the_working_scale():
    # BCCD's 640 x 480 photos at 0.41x are 260 x 195 px: a 256 px crop would be 24 % padding
    assert fitted_crop_size(_sized((640, 480)), 0.41, 256, 512) == 192
    # photos at least as large as the crop keep it (the course's 640 px photos at 0.83x)
    assert fitted_crop_size(_sized((640, 640)), 0.83, 256, 512) == 256
    assert fitted_crop_size(_sized((2800, 2800)), 0.183, 256, 512) == 256
    # the median photo decides, not the smallest; never above crop_size or image_size
    assert fitted_crop_size(_sized((300, 300), (640, 480), (640, 480)), 0.41, 256, 512) == 192
    assert fitted_crop_size(_sized((4000, 3000)), 1.0, 600, 512) == 512
    # a floor for tiny photos (they are padded), never above the crop asked for
    assert fitted_crop_size(_sized((100, 100)), 0.5, 256, 512) == 64
    assert fitted_crop_size(_sized((100, 100)), 0.5, 48, 512) == 48


def test_dataset_trains_on_the_fitted_crop(tmp_path):
    aset = synth.write_dataset(tmp_path, seeds=[0, 1], size=160)
    ds = CellDataset(aset, image_size=256, train=True, crop_size=256, scale=0.8)  # 128 px photos
    assert ds.crop_size == 128
    image, target = ds[0]
    _check_item(image, target, 128)
