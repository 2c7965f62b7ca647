"""Load an image-classification data set into uint8 arrays.

Supported sources, all giving `(N, H, W, 3) uint8` images and `(N,) int64`
labels with class names taken from the data itself:

- the official CIFAR-10 python version: a `cifar-10-batches-py` folder or the
  `cifar-10-python.tar.gz` archive (pickles read with a restricted unpickler
  that accepts only NumPy arrays and builtin containers);
- a class-folder tree `train/<class>/*` and `test/<class>/*` (directly under
  the given folder or one level down), or a `.tar`, `.tar.gz`, `.tgz` or
  `.tar.xz` archive of such a tree, read without unpacking it to disk;
- no path at all: the CIFAR-10 archive from the Keras download cache,
  downloaded there when missing.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# The cache entry and checksum keras.datasets.cifar10.load_data uses (Keras
# 3.15), so a copy that Keras already downloaded is reused as it is.
KERAS_CACHE_NAME = "cifar-10-batches-py-target"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
KERAS_CACHE_SOURCE = "Keras cache"
# Names (lower case, without - and _) under which a folder or archive is
# taken to be CIFAR-10 itself rather than a variant such as CIFAR-100.
CIFAR10_NAMES = {"cifar10", "cifar10batchespy", "cifar10python", "cifar10jpeg",
                 "cifar10images", "cifar10png"}
CIFAR10_SIDE = 32
CIFAR10_ROW = 3 * CIFAR10_SIDE * CIFAR10_SIDE  # 1,024 R, then G, then B
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLITS = ("train", "test")


class DataError(ValueError):
    """The data at a path cannot be read as an image-classification set."""


@dataclass
class ImageDataset:
    """Train and test splits as uint8 arrays, with their class names.

    x_train: (N, H, W, 3) uint8; y_train: (N,) int64 in [0, len(class_names)).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    @property
    def display_source(self) -> str:
        """The source without local folders, fit to publish: a file or folder name."""
        if self.source.startswith(KERAS_CACHE_SOURCE):
            return "the Keras CIFAR-10 cache"
        return Path(self.source).name

    @property
    def name(self) -> str:
        """A display name: CIFAR-10 for the official pickles and the usual names of
        its copies (cifar10, cifar-10-jpeg, ...), else the file or folder name."""
        if self.source.startswith(KERAS_CACHE_SOURCE):
            return "CIFAR-10"
        stem = Path(self.source).name
        for suffix in (".tar.gz", ".tar.xz", ".tgz", ".tar"):
            stem = stem.removesuffix(suffix)
        compact = stem.lower().replace("-", "").replace("_", "")
        return "CIFAR-10" if compact in CIFAR10_NAMES else stem

    def __post_init__(self) -> None:
        validate_split("train", self.x_train, self.y_train, len(self.class_names))
        validate_split("test", self.x_test, self.y_test, len(self.class_names))
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"train images are {self.x_train.shape[1:]} but test images are "
                f"{self.x_test.shape[1:]}; both splits must share one image shape"
            )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])


def validate_split(name: str, x: np.ndarray, y: np.ndarray, num_classes: int) -> None:
    """Raise DataError unless x is (N, H, W, 3) uint8 and y has N labels in range."""
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(
            f"{name} images must be an (N, H, W, 3) uint8 array, "
            f"got shape {x.shape} and dtype {x.dtype}"
        )
    if len(x) == 0:
        raise DataError(f"the {name} split contains no images")
    if y.shape != (len(x),):
        raise DataError(f"{name} has {len(x)} images but labels of shape {y.shape}")
    if y.min() < 0 or y.max() >= num_classes:
        raise DataError(
            f"{name} labels must lie in [0, {num_classes - 1}], "
            f"found {int(y.min())} to {int(y.max())}"
        )


def load_dataset(path: str | Path | None, cache_dir: Path | None = None) -> ImageDataset:
    """Read the data set at `path`, or CIFAR-10 from the Keras cache when None."""
    if path is None:
        return _load_keras_cifar10(cache_dir)
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(
            f"data path {str(path)!r} does not exist; pass an existing folder or "
            "archive with --data, or leave --data out to use the CIFAR-10 download"
        )
    if path.is_dir():
        if _find_cifar_batches_dir(path) is not None:
            return _load_cifar_batches_dir(_find_cifar_batches_dir(path))
        return _load_class_folders(path)
    if tarfile.is_tarfile(path):
        return _load_archive(path)
    raise DataError(
        f"{str(path)!r} is neither a folder nor a tar archive; pass a "
        "cifar-10-batches-py folder, cifar-10-python.tar.gz, or a class-folder "
        "tree (train/<class>/*, test/<class>/*) as a folder or .tar.gz/.tar.xz"
    )


# --------------------------------------------------------------------------
# The official CIFAR-10 python pickles
# --------------------------------------------------------------------------

# The only globals a CIFAR-10 batch pickle needs: NumPy's array reconstruction.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    # Refusing any other global means a crafted pickle cannot name a callable
    # such as os.system, so loading it never runs code.
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: CIFAR-10 pickles contain "
            "only NumPy arrays, lists, bytes and dicts"
        )


def load_pickle_bytes(payload: bytes, name: str) -> dict:
    """Unpickle one CIFAR-10 file with the restricted unpickler."""
    try:
        obj = _RestrictedUnpickler(io.BytesIO(payload), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise DataError(f"{name}: not a readable CIFAR-10 pickle ({err})") from err
    if not isinstance(obj, dict):
        raise DataError(f"{name}: expected a dict, got {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def rows_to_images(rows: np.ndarray, side: int = CIFAR10_SIDE) -> np.ndarray:
    """Turn CIFAR rows of 3*side*side values into (N, side, side, 3) images.

    Each row is the red plane, then green, then blue, each row-major, so
    a row reshapes to (3, side, side) and the channel axis moves last.

    >>> rows_to_images(np.arange(12, dtype=np.uint8).reshape(1, 12), side=2)[0, 0, 1]
    array([1, 5, 9], dtype=uint8)
    """
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != 3 * side * side:
        raise DataError(
            f"CIFAR data must have rows of {3 * side * side} values, got shape {rows.shape}"
        )
    if rows.dtype != np.uint8:
        raise DataError(f"CIFAR data must be uint8, got {rows.dtype}")
    return rows.reshape(-1, 3, side, side).transpose(0, 2, 3, 1).copy()


def parse_batch(payload: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one pickled batch into (images, labels)."""
    batch = load_pickle_bytes(payload, name)
    missing = {"data", "labels"} - batch.keys()
    if missing:
        raise DataError(
            f"{name}: missing key(s) {sorted(missing)}; found {sorted(map(str, batch))}"
        )
    try:
        images = rows_to_images(batch["data"])
    except DataError as err:
        raise DataError(f"{name}: {err}") from err
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{name}: labels must be a list of integers ({err})") from err
    if labels.shape != (len(images),):
        raise DataError(f"{name}: {len(images)} images but {labels.size} labels; "
                        "each row of 'data' needs one entry in 'labels'")
    return images, labels


def _check_batch_labels(labels: np.ndarray, name: str, class_names: tuple[str, ...]) -> None:
    # Checked per file here, because the dataset-level check cannot name the
    # batch that contains the bad label.
    count = len(class_names)
    if labels.size and (labels.min() < 0 or labels.max() >= count):
        raise DataError(
            f"{name}: labels must lie in [0, {count - 1}] for the {count} label_names in "
            f"batches.meta, found {int(labels.min())} to {int(labels.max())}. Check that "
            f"{name} and batches.meta come from the same data set"
        )


def _parse_meta(payload: bytes, name: str) -> tuple[str, ...]:
    meta = load_pickle_bytes(payload, name)
    if "label_names" not in meta:
        raise DataError(f"{name}: no 'label_names' key")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta["label_names"])


def _assemble_batches(files: dict[str, bytes], source: str) -> ImageDataset:
    train_names = sorted(n for n in files if n.startswith("data_batch_"))
    for required in ("batches.meta", "test_batch"):
        if required not in files:
            raise DataError(f"{source}: {required} not found")
    if not train_names:
        raise DataError(f"{source}: no data_batch_* files found")
    class_names = _parse_meta(files["batches.meta"], "batches.meta")
    parts = [parse_batch(files[n], n) for n in train_names]
    x_test, y_test = parse_batch(files["test_batch"], "test_batch")
    for name, labels in [*zip(train_names, (p[1] for p in parts)), ("test_batch", y_test)]:
        _check_batch_labels(labels, name, class_names)
    return ImageDataset(
        x_train=np.concatenate([p[0] for p in parts]),
        y_train=np.concatenate([p[1] for p in parts]),
        x_test=x_test,
        y_test=y_test,
        class_names=class_names,
        source=source,
    )


def _find_cifar_batches_dir(path: Path) -> Path | None:
    for candidate in (path, path / "cifar-10-batches-py"):
        if (candidate / "batches.meta").is_file():
            return candidate
    return None


def _load_cifar_batches_dir(folder: Path) -> ImageDataset:
    files = {p.name: p.read_bytes() for p in folder.iterdir()
             if p.is_file() and (p.name.startswith(("data_batch_", "test_batch"))
                                 or p.name == "batches.meta")}
    return _assemble_batches(files, str(folder))


def _keras_cache_root(cache_dir: Path | None) -> Path:
    # The same default as keras.utils.get_file: $KERAS_HOME, else ~/.keras.
    if cache_dir is not None:
        return Path(cache_dir)
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))


def _load_keras_cifar10(cache_dir: Path | None) -> ImageDataset:
    extracted = _keras_cache_root(cache_dir) / "datasets" / KERAS_CACHE_NAME
    batches = _find_cifar_batches_dir(extracted)
    if batches is None:
        import keras  # deferred: only the download needs Keras

        log.info("CIFAR-10 not in the Keras cache %s; downloading %s", extracted, CIFAR10_URL)
        try:
            folder = keras.utils.get_file(
                KERAS_CACHE_NAME, origin=CIFAR10_URL, extract=True, file_hash=CIFAR10_SHA256,
                cache_dir=str(_keras_cache_root(cache_dir)),
            )
        except Exception as err:  # get_file raises several types for network failures
            raise DataError(
                f"could not download CIFAR-10 from {CIFAR10_URL} ({err}). Without "
                "network access, pass local data with --data PATH: a "
                "cifar-10-batches-py folder, cifar-10-python.tar.gz, or a class-folder "
                "tree (train/<class>/*, test/<class>/*) as a folder or .tar.gz/.tar.xz"
            ) from err
        batches = _find_cifar_batches_dir(Path(folder))
        if batches is None:
            raise DataError(f"the Keras cache folder {folder} contains no cifar-10-batches-py; "
                            "delete it to download again, or pass --data")
    dataset = _load_cifar_batches_dir(batches)
    dataset.source = f"{KERAS_CACHE_SOURCE} ({batches})"
    return dataset


# --------------------------------------------------------------------------
# Archives: either the CIFAR-10 pickles or a class-folder tree
# --------------------------------------------------------------------------

def _safe_member_path(member: tarfile.TarInfo, archive: Path) -> PurePosixPath | None:
    """Return the member's path, None for entries to skip; raise on escapes."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise DataError(
            f"{archive}: entry {member.name!r} points outside the archive's folder; "
            "refusing to read it. Repack the archive with relative paths"
        )
    if member.issym() or member.islnk():
        raise DataError(
            f"{archive}: entry {member.name!r} is a link; links are not read. "
            "Repack the archive with plain files"
        )
    return path if member.isfile() else None


def _load_archive(archive: Path) -> ImageDataset:
    # One streaming pass ("r|*") reads .tar, .tar.gz and .tar.xz in order,
    # which is far faster than random access into a compressed archive.
    files: dict[PurePosixPath, bytes] = {}
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                path = _safe_member_path(member, archive)
                if path is None:
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    files[path] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: cannot read the archive ({err})") from err

    batch_files = {p.name: b for p, b in files.items()
                   if p.name.startswith(("data_batch_", "test_batch")) or p.name == "batches.meta"}
    if "batches.meta" in batch_files:
        return _assemble_batches(batch_files, str(archive))
    return _images_from_tree(_group_class_files(files, str(archive)), str(archive))


def _group_class_files(files: dict[PurePosixPath, bytes], source: str) -> dict:
    """Group files by (split, class): paths end in <split>/<class>/<file>.

    Raises DataError when the split folders sit under more than one parent
    folder, such as an archive that packs two data sets side by side.
    """
    grouped: dict[str, dict[str, list[tuple[str, bytes]]]] = {s: defaultdict(list) for s in SPLITS}
    skipped = []
    parents = set()
    for path, payload in sorted(files.items()):
        if len(path.parts) < 3 or path.parts[-3] not in SPLITS:
            continue
        parents.add(PurePosixPath(*path.parts[:-3]))
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(str(path))
            continue
        grouped[path.parts[-3]][path.parts[-2]].append((str(path), payload))
    if len(parents) > 1:
        names = ", ".join(str(parent) or "." for parent in sorted(parents)[:5])
        raise DataError(
            f"{source}: train/ and test/ folders under {len(parents)} different folders "
            f"({names}), which would pool several data sets. Pack or pass one data set")
    if skipped:
        log.warning("%s: skipped %d files without an image suffix (%s), such as %s",
                    source, len(skipped), ", ".join(sorted(IMAGE_SUFFIXES)), skipped[0])
    return grouped


def _load_class_folders(root: Path) -> ImageDataset:
    base = root
    if not (root / "train").is_dir():
        subdirs = sorted(d for d in root.iterdir() if d.is_dir() and (d / "train").is_dir())
        if len(subdirs) > 1:
            names = ", ".join(d.name for d in subdirs[:5])
            raise DataError(
                f"{root}: {len(subdirs)} data sets one level down ({names}); pass one of "
                "them as --data"
            )
        if not subdirs:
            raise DataError(
                f"{root}: no train/ folder found (nor one level down). Expected "
                "train/<class>/* and test/<class>/* image files, or a "
                "cifar-10-batches-py folder"
            )
        base = subdirs[0]
    files = {}
    for split in SPLITS:
        split_dir = base / split
        if not split_dir.is_dir():
            raise DataError(f"{base}: missing the {split}/ folder")
        for file in split_dir.glob("*/*"):
            if file.is_file():
                files[PurePosixPath(split, file.parent.name, file.name)] = file.read_bytes()
    return _images_from_tree(_group_class_files(files, str(root)), str(root))


def _images_from_tree(grouped: dict, source: str) -> ImageDataset:
    class_names = tuple(sorted(set(grouped["train"]) | set(grouped["test"])))
    if not grouped["train"]:
        raise DataError(
            f"{source}: no images under train/<class>/; expected train/<class>/* "
            "and test/<class>/* image files"
        )
    if not grouped["test"]:
        raise DataError(f"{source}: no images under test/<class>/")

    shape_counts: Counter = Counter()
    decoded = {}
    for split in SPLITS:
        for class_name, items in grouped[split].items():
            for name, payload in sorted(items):
                image = _decode_image(payload, name)
                shape_counts[image.shape] += 1
                decoded.setdefault(split, []).append((image, class_names.index(class_name), name))

    # Images of another size are resized to the most common one.
    target_shape = shape_counts.most_common(1)[0][0]
    arrays = {}
    resized = 0
    for split in SPLITS:
        images, labels = [], []
        for image, label, name in decoded[split]:
            if image.shape != target_shape:
                image = _resize(image, target_shape)
                resized += 1
            images.append(image)
            labels.append(label)
        arrays[split] = (np.stack(images), np.asarray(labels, dtype=np.int64))

    if resized:
        log.warning("%s: resized %d of %d images to the most common size %dx%d",
                    source, resized, sum(shape_counts.values()), target_shape[1],
                    target_shape[0])
    return ImageDataset(*arrays["train"], *arrays["test"], class_names=class_names, source=source)


def _decode_image(payload: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"{name}: not a readable image ({err}); replace or remove "
                        "the file") from err


def _resize(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BILINEAR))


# --------------------------------------------------------------------------
# Sampling and checks before training
# --------------------------------------------------------------------------

def check_trainable(dataset: ImageDataset, validation_fraction: float) -> None:
    """Raise DataError unless the splits support training and the ROC analysis.

    Training needs two classes with training images, at least two images in
    each such class, and a validation and a fit part each at least as large
    as the number of classes. One-vs-rest ROC needs test images of at least
    two classes. A class missing from the test split is allowed: its AUC is
    undefined and the others are computed.
    """
    counts = np.bincount(dataset.y_train, minlength=len(dataset.class_names))
    present = [name for name, count in zip(dataset.class_names, counts) if count > 0]
    if len(present) < 2:
        raise DataError(
            f"{dataset.display_source}: training images found in {len(present)} class(es) "
            f"({', '.join(present) or 'none'}); a classifier needs at least two. Add a "
            "second class folder under train/ and test/"
        )
    single = [name for name, count in zip(dataset.class_names, counts) if count == 1]
    if single:
        raise DataError(
            f"{dataset.display_source}: class(es) {', '.join(single)} have one training "
            "image, but the stratified validation split needs at least two per class"
        )
    total = int(counts.sum())
    validation = int(np.ceil(validation_fraction * total))
    if validation < len(present) or total - validation < len(present):
        raise DataError(
            f"{dataset.display_source}: {total} training images give a validation split "
            f"of {validation} ({validation_fraction:.0%}) and a fit split of "
            f"{total - validation}, but each must have at least one image of each of the "
            f"{len(present)} classes; add training images"
        )
    tested = [dataset.class_names[label] for label in np.unique(dataset.y_test)]
    if len(tested) < 2:
        raise DataError(
            f"{dataset.display_source}: test images found in {len(tested)} class "
            f"({', '.join(tested)}); the ROC analysis needs test images of at least two "
            "classes. Add images to a second class folder under test/"
        )
    untested = sorted(set(present) - set(tested))
    if untested:
        log.warning("%s: no test images for the classes %s, so their recall, F1 and AUC "
                    "will be undefined", dataset.display_source, ", ".join(untested))


def stratified_indices(labels: np.ndarray, count: int | None, seed: int,
                       description: str = "images") -> np.ndarray:
    """Pick `count` indices with each class's share kept; all when None or too few.

    When a stratified draw is impossible (a class with one image, or fewer
    picks than classes), the sample is drawn uniformly and a warning is
    logged. The result is sorted, so the same seed always yields the same subset.
    """
    if count is not None and count > len(labels):
        log.warning("the settings ask for %d %s, but only %d are available; using all %d",
                    count, description, len(labels), len(labels))
    if count is None or count >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    try:
        picked, _ = train_test_split(
            np.arange(len(labels)), train_size=count, stratify=labels, random_state=seed
        )
    except ValueError as error:
        log.warning("the sample of %d of %d %s is drawn without keeping class shares, "
                    "because scikit-learn cannot stratify it: %s", count, len(labels), description,
                    error)
        picked, _ = train_test_split(np.arange(len(labels)), train_size=count,
                                     random_state=seed)
    return np.sort(picked)


def subsample(dataset: ImageDataset, train_count: int | None, test_count: int | None,
              seed: int) -> ImageDataset:
    """Return a stratified sample of both splits."""
    train = stratified_indices(dataset.y_train, train_count, seed, "training images")
    test = stratified_indices(dataset.y_test, test_count, seed, "test images")
    return ImageDataset(
        dataset.x_train[train], dataset.y_train[train],
        dataset.x_test[test], dataset.y_test[test],
        class_names=dataset.class_names, source=dataset.source,
    )
