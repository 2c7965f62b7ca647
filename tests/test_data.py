import io
import os
from pathlib import Path
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from study.data import (DataError, check_trainable, load_dataset, rows_to_images,
                        stratified_indices, subsample)


def _batch_bytes(data, labels, **extra):
    return pickle.dumps({b"batch_label": b"x", b"labels": labels, b"data": data,
                         b"filenames": [b"f"] * len(labels), **extra}, protocol=2)


def _write_batches(folder, per_batch=4, classes=(b"cat", b"dog")):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(1, 3):
        rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        (folder / f"data_batch_{i}").write_bytes(_batch_bytes(rows, [0, 1] * (per_batch // 2)))
    rows = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
    (folder / "test_batch").write_bytes(_batch_bytes(rows, [1, 0]))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": list(classes)}))
    return folder


def test_row_layout_red_green_blue_planes():
    # A 2x2 image: red plane 0..3, green 4..7, blue 8..11, each row-major.
    row = np.arange(12, dtype=np.uint8).reshape(1, 12)
    image = rows_to_images(row, side=2)[0]
    assert image.shape == (2, 2, 3)
    assert image[0, 0].tolist() == [0, 4, 8]
    assert image[0, 1].tolist() == [1, 5, 9]
    assert image[1, 0].tolist() == [2, 6, 10]
    assert image[1, 1].tolist() == [3, 7, 11]


def test_row_length_mismatch_rejected():
    with pytest.raises(DataError, match="rows of 12 values"):
        rows_to_images(np.zeros((1, 11), np.uint8), side=2)


def test_batches_folder_loads(tmp_path):
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    dataset = load_dataset(tmp_path)  # the parent folder is found too
    assert dataset.class_names == ("cat", "dog")
    assert dataset.x_train.shape == (8, 32, 32, 3)
    assert dataset.x_train.dtype == np.uint8
    assert dataset.y_test.tolist() == [1, 0]
    assert load_dataset(folder).x_test.shape == (2, 32, 32, 3)


def test_batches_archive_loads(tmp_path):
    folder = _write_batches(tmp_path / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    dataset = load_dataset(archive)
    assert dataset.name == "CIFAR-10"
    assert len(dataset.y_train) == 8


def test_pickle_calling_function_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (print, ("this must never run",))

    folder = _write_batches(tmp_path / "batches")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Exploit()}))
    with pytest.raises(DataError, match="refusing to load global builtins.print"):
        load_dataset(folder)


def test_labels_out_of_range_rejected(tmp_path):
    folder = _write_batches(tmp_path / "batches")
    rows = np.zeros((2, 3072), np.uint8)
    (folder / "test_batch").write_bytes(_batch_bytes(rows, [0, 7]))
    with pytest.raises(DataError, match=r"test_batch: labels must lie in \[0, 1\]") as raised:
        load_dataset(folder)
    assert "found 0 to 7" in str(raised.value)
    assert "come from the same data set" in str(raised.value)


def test_negative_label_rejected(tmp_path):
    folder = _write_batches(tmp_path / "batches")
    rows = np.zeros((4, 3072), np.uint8)
    (folder / "data_batch_2").write_bytes(_batch_bytes(rows, [0, 1, -1, 1]))
    with pytest.raises(DataError, match=r"data_batch_2: labels must lie in \[0, 1\]"):
        load_dataset(folder)


def test_pickle_payload_not_executed(tmp_path):
    # The pickle's __reduce__ names os.mkdir(marker). The unpickler rejects that
    # global before calling it, so the folder is never created.
    marker = tmp_path / "created-by-pickle"

    class Exploit:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    folder = _write_batches(tmp_path / "batches")
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}))
    with pytest.raises(DataError, match=r"test_batch: not a readable CIFAR-10 pickle"):
        load_dataset(folder)
    assert not marker.exists()


def _jpeg(color, size=(8, 8)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _class_tree_archive(path, sizes=None):
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", 4), ("test", 2)):
            for name, color in (("boat", (0, 0, 255)), ("apple", (255, 0, 0))):
                for i in range(count):
                    size = (sizes or {}).get((split, name, i), (8, 8))
                    payload = _jpeg(color, size)
                    info = tarfile.TarInfo(f"pics/{split}/{name}/{i}.png")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return path


def test_class_folder_archive_loads(tmp_path):
    dataset = load_dataset(_class_tree_archive(tmp_path / "pics.tar.gz"))
    assert dataset.class_names == ("apple", "boat")  # sorted folder names
    assert dataset.x_train.shape == (8, 8, 8, 3)
    # Labels follow folder names: apple is red, boat is blue.
    apple = dataset.x_train[dataset.y_train == 0]
    assert apple[..., 0].min() == 255
    assert apple[..., 2].max() == 0
    assert dataset.name == "pics"


def test_archive_of_two_data_sets_rejected(tmp_path):
    path = tmp_path / "two.tar"
    with tarfile.open(path, "w") as tar:
        for root in ("setA", "setB"):
            for split in ("train", "test"):
                payload = _jpeg((0, 0, 255), (8, 8))
                info = tarfile.TarInfo(f"{root}/{split}/boat/0.png")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(DataError, match=r"under 2 different folders \(setA, setB\)"):
        load_dataset(str(path))


def test_odd_sized_image_resized(tmp_path, caplog):
    archive = _class_tree_archive(tmp_path / "p.tar.gz", sizes={("train", "boat", 0): (16, 12)})
    with caplog.at_level("WARNING"):
        dataset = load_dataset(archive)
    assert dataset.x_train.shape[1:] == (8, 8, 3)
    assert "resized 1 of 12 images to the most common size 8x8" in caplog.text
    # The resized image keeps its colour: boat images are pure blue.
    boats = dataset.x_train[dataset.y_train == 1]
    assert boats.reshape(-1, 3).tolist() == [[0, 0, 255]] * (4 * 8 * 8)


def test_archive_escape_refused(tmp_path):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../train/cat/0.png")
        payload = _jpeg((1, 2, 3))
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(DataError, match="outside the archive"):
        load_dataset(archive)


@pytest.mark.parametrize("entry", ["pics/train/../../../cat/0.png", "/tmp/train/cat/0.png"])
def test_archive_escape_named(tmp_path, entry):
    archive = tmp_path / "bad.tar"
    payload = _jpeg((1, 2, 3))
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(entry)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(DataError, match="Repack the archive with relative paths") as raised:
        load_dataset(archive)
    assert repr(entry) in str(raised.value)
    assert str(archive) in str(raised.value)


def test_archive_hard_link_refused(tmp_path):
    archive = tmp_path / "links.tar"
    payload = _jpeg((1, 2, 3))
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("pics/train/cat/0.png")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
        link = tarfile.TarInfo("pics/train/cat/1.png")
        link.type = tarfile.LNKTYPE
        link.linkname = "pics/train/cat/0.png"
        tar.addfile(link)
    with pytest.raises(DataError, match="'pics/train/cat/1.png' is a link"):
        load_dataset(archive)


def test_missing_path_named(tmp_path):
    with pytest.raises(DataError, match="does not exist") as raised:
        load_dataset(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(raised.value)
    assert "--data" in str(raised.value)


def test_plain_file_rejected(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match="neither a folder nor a tar archive") as raised:
        load_dataset(path)
    assert str(path) in str(raised.value)
    assert "train/<class>/*" in str(raised.value)


def test_stratified_sample_keeps_shares():
    labels = np.repeat([0, 1, 2, 3], [40, 40, 10, 10])
    picked = stratified_indices(labels, 50, seed=1)
    assert len(picked) == 50
    assert np.bincount(labels[picked]).tolist() == [20, 20, 5, 5]
    assert picked.tolist() == stratified_indices(labels, 50, seed=1).tolist()


def test_stratified_sample_single_image_class_degrades(caplog):
    # Class 2 has one image, so scikit-learn cannot stratify; the draw is
    # uniform, still 10 distinct indices, and a warning explains why.
    labels = np.repeat([0, 1, 2], [10, 10, 1])
    picked = stratified_indices(labels, 10, seed=0, description="test images")
    assert len(set(picked.tolist())) == 10
    assert "10 of 21 test images is drawn without keeping class shares" in caplog.text


def test_several_data_sets_one_level_down(tmp_path):
    for name in ("birds", "cars"):
        (tmp_path / name / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=r"2 data sets one level down \(birds, cars\); pass "
                                        "one of them as --data"):
        load_dataset(str(tmp_path))


def test_subsample_all_when_none(tmp_path):
    dataset = load_dataset(_class_tree_archive(tmp_path / "pics.tar.gz"))
    same = subsample(dataset, None, None, seed=0)
    assert len(same.y_train) == 8
    assert len(same.y_test) == 4


def test_keras_cache_reused(tmp_path):
    # A folder already extracted where keras.datasets.cifar10 keeps it is read
    # without any download.
    target = tmp_path / "datasets" / "cifar-10-batches-py-target"
    target.mkdir(parents=True)
    _write_batches(target / "cifar-10-batches-py")
    dataset = load_dataset(None, cache_dir=tmp_path)
    assert dataset.class_names == ("cat", "dog")
    assert dataset.name == "CIFAR-10"


def test_offline_download_explains(tmp_path, monkeypatch):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match="pass local data with --data PATH"):
        load_dataset(None, cache_dir=tmp_path)


def _tiny(labels_train, labels_test=(0, 1), names=("a", "b")):
    from study.data import ImageDataset

    y_train, y_test = np.array(labels_train), np.array(labels_test)
    return ImageDataset(np.zeros((len(y_train), 2, 2, 3), np.uint8), y_train,
                        np.zeros((len(y_test), 2, 2, 3), np.uint8), y_test,
                        class_names=names, source="/data/tiny")


def test_one_class_rejected():
    from study.data import check_trainable

    with pytest.raises(DataError, match="found in 1 class") as raised:
        check_trainable(_tiny([0] * 20, [0, 0]), 0.1)
    assert "Add a second class folder under train/ and test/" in str(raised.value)


def test_one_class_folder_rejected(tmp_path):
    dataset = load_dataset(_write_tree(tmp_path / "tree", ("cat",)))
    assert dataset.class_names == ("cat",)
    with pytest.raises(DataError, match=r"training images found in 1 class\(es\) \(cat\)"):
        check_trainable(dataset, 0.5)


def test_one_test_class_rejected():
    with pytest.raises(DataError, match=r"test images found in 1 class \(b\)") as raised:
        check_trainable(_tiny([0] * 10 + [1] * 10, [1, 1]), 0.1)
    assert "second class folder under test/" in str(raised.value)


def test_single_image_class_rejected():
    from study.data import check_trainable

    with pytest.raises(DataError, match="b have one training image"):
        check_trainable(_tiny([0] * 20 + [1]), 0.1)


def test_tiny_validation_split_rejected():
    from study.data import check_trainable

    # 6 images at 10% give a validation split of 1 image for 2 classes.
    with pytest.raises(DataError, match="validation split of 1"):
        check_trainable(_tiny([0, 0, 0, 1, 1, 1]), 0.1)
    check_trainable(_tiny([0] * 10 + [1] * 10), 0.1)  # 2 validation images: enough


def test_dataset_name_exact_match():
    names = {"/d/cifar10-jpeg.tar.xz": "CIFAR-10", "/d/cifar-10-batches-py": "CIFAR-10",
             "/d/cifar100.tar.gz": "cifar100", "/d/CIFAR-10-C-fog": "CIFAR-10-C-fog",
             "/d/pets.tgz": "pets"}
    for source, expected in names.items():
        dataset = _tiny([0, 0, 1, 1])
        dataset.source = source
        assert dataset.name == expected, source
        assert dataset.display_source == Path(source).name


def test_truncated_pickle_named(tmp_path):
    folder = _write_batches(tmp_path / "batches")
    payload = (folder / "data_batch_1").read_bytes()
    (folder / "data_batch_1").write_bytes(payload[: len(payload) // 2])
    with pytest.raises(DataError, match="data_batch_1: not a readable CIFAR-10 pickle"):
        load_dataset(folder)


def test_batch_missing_key_named(tmp_path):
    folder = _write_batches(tmp_path / "batches")
    (folder / "data_batch_2").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(DataError, match=r"data_batch_2: missing key\(s\) \['labels'\]"):
        load_dataset(folder)


def test_batch_wrong_row_length(tmp_path):
    folder = _write_batches(tmp_path / "batches")
    (folder / "test_batch").write_bytes(_batch_bytes(np.zeros((2, 3000), np.uint8), [0, 1]))
    with pytest.raises(DataError, match="test_batch: CIFAR data must have rows of 3072 values"):
        load_dataset(folder)


def test_batch_label_count_mismatch(tmp_path):
    # Two rows of pixels but three labels: the batch cannot be paired up.
    folder = _write_batches(tmp_path / "batches")
    rows = np.zeros((2, 3072), np.uint8)
    (folder / "data_batch_1").write_bytes(_batch_bytes(rows, [0, 1, 1]))
    with pytest.raises(DataError, match="data_batch_1: 2 images but 3 labels"):
        load_dataset(folder)


def test_batch_text_labels_rejected(tmp_path):
    folder = _write_batches(tmp_path / "batches")
    rows = np.zeros((2, 3072), np.uint8)
    (folder / "data_batch_2").write_bytes(_batch_bytes(rows, ["cat", "dog"]))
    with pytest.raises(DataError, match="data_batch_2: labels must be a list of integers"):
        load_dataset(folder)


def test_archive_link_refused(tmp_path):
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("pics/train/cat/0.png")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DataError, match="is a link"):
        load_dataset(archive)


def test_empty_folder_explained(tmp_path):
    with pytest.raises(DataError, match="no train/ folder found") as raised:
        load_dataset(tmp_path)
    assert str(raised.value).startswith(f"{tmp_path}: ")
    assert "Expected train/<class>/* and test/<class>/*" in str(raised.value)


def _write_tree(root, classes, *, splits=("train", "test"), count=2, mode="RGB", color=0):
    for split in splits:
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new(mode, (8, 8), color).save(folder / f"{i}.png")
    return root


def test_unreadable_image_named(tmp_path):
    root = _write_tree(tmp_path / "tree", ("cat", "dog"))
    (root / "train" / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="train/dog/broken.png: not a readable image") as raised:
        load_dataset(root)
    assert "replace or remove the file" in str(raised.value)


def test_gray_and_rgba_pixel_values(tmp_path):
    # Gray 100 becomes (100, 100, 100). RGBA keeps its colour and drops the
    # alpha channel, even where the pixel is fully transparent.
    root = tmp_path / "tree"
    _write_tree(root, ("gray",), mode="L", color=100)
    for split in ("train", "test"):
        folder = root / split / "alpha"
        folder.mkdir()
        for i in range(2):
            Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(folder / f"{i}.png")
    dataset = load_dataset(root)
    assert dataset.class_names == ("alpha", "gray")
    assert dataset.x_train[dataset.y_train == 0].reshape(-1, 3).tolist() == [[10, 20, 30]] * 128
    assert dataset.x_train[dataset.y_train == 1].reshape(-1, 3).tolist() == [[100] * 3] * 128


def test_class_name_with_markup_kept(tmp_path):
    # "/" cannot be part of a folder name, so "</b>" is impossible here.
    name = '<b>"cat\'s"&'
    root = _write_tree(tmp_path / "tree", (name, "dog"))
    dataset = load_dataset(root)
    assert dataset.class_names == (name, "dog")


def test_class_missing_from_test_split_kept(tmp_path):
    root = _write_tree(tmp_path / "tree", ("bird", "cat", "dog"), splits=("train",))
    _write_tree(root, ("cat", "dog"), splits=("test",))
    dataset = load_dataset(root)
    assert dataset.class_names == ("bird", "cat", "dog")
    assert np.bincount(dataset.y_test, minlength=3).tolist() == [0, 2, 2]
    check_trainable(dataset, 0.5)


def test_gray_rgba_and_notes_handled(tmp_path, caplog):
    root = tmp_path / "tree"
    for split in ("train", "test"):
        for name, mode in (("gray", "L"), ("alpha", "RGBA")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(2):
                Image.new(mode, (8, 8)).save(folder / f"{i}.png")
        (root / split / "gray" / "README.txt").write_text("not an image")
    with caplog.at_level("WARNING"):
        dataset = load_dataset(root)
    assert dataset.x_train.shape == (4, 8, 8, 3)
    assert dataset.class_names == ("alpha", "gray")
    assert "skipped 2 files without an image suffix" in caplog.text
    assert "such as test/gray/README.txt" in caplog.text


def test_stratified_more_than_available_warns(caplog):
    labels = np.repeat(np.arange(2), 5)
    with caplog.at_level("WARNING"):
        picked = stratified_indices(labels, 25, seed=1, description="training images")
    assert picked.tolist() == list(range(10))
    assert "ask for 25 training images, but only 10 are available" in caplog.text
