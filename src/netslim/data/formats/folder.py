"""A folder of images per class: ``root/<class>/*.png|jpg``, decoded with Pillow to one common size."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from netslim.errors import CorruptFileError, DataNotFoundError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def class_dirs(root: Path) -> list[Path]:
    """The sub-folders of ``root`` that hold at least one image, sorted by name (their order is the label)."""
    if not root.is_dir():
        return []
    return sorted(
        d
        for d in root.iterdir()
        if d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())
    )


def read_image_folder(
    root: Path, image_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode every image under ``root/<class>/``; return uint8 (N, C, H, W), int64 labels and class names.

    All images come out at ``image_size`` (height, width); when it is None, at the most common size in the
    folder (others are resized). C is 1 when every image is greyscale, else 3.
    """
    from PIL import Image, UnidentifiedImageError

    classes = class_dirs(root)
    if not classes:
        raise DataNotFoundError(
            f"no class folders with images under {root}; lay the data out as {root}/<class name>/<image>.png "
            f"(suffixes {', '.join(IMAGE_SUFFIXES)})"
        )
    files: list[tuple[Path, int]] = [
        (f, label)
        for label, d in enumerate(classes)
        for f in sorted(d.iterdir())
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    ]
    decoded = []
    for path, _ in files:
        try:
            with Image.open(path) as img:
                img.load()
                decoded.append(img.copy())
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise CorruptFileError(f"{path}: not a readable image ({exc}); remove or replace it") from exc
    grey = all(img.mode in _GREY_MODES for img in decoded)
    if image_size is None:
        width, height = Counter(img.size for img in decoded).most_common(1)[0][0]
    else:
        height, width = image_size
    mode = "L" if grey else "RGB"
    arrays = []
    for img in decoded:
        img = img.convert(mode)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        arrays.append(np.asarray(img, dtype=np.uint8))
    images = np.stack(arrays)
    images = images[:, None] if grey else images.transpose(0, 3, 1, 2)
    labels = np.array([label for _, label in files], dtype=np.int64)
    return np.ascontiguousarray(images), labels, [d.name for d in classes]
