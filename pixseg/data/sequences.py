"""Cityscapes' sequence layout, read as it ships, cut into forecasting windows.

Frames: `<root>/leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`. Targets
are per-frame label maps in the same layout under another folder (by default
`<root>/gtFine_sequence/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png`): a segmenter's
outputs, or any labels, holding train ids 0..C-1 and 255 for void; files named `*_gtFine_labelIds.png`
hold Cityscapes label ids and are mapped to train ids by the official table. A window is `inputs`
frames `gap` apart ending at frame t, plus the target frames t + h for each horizon h; only windows
whose every frame has both an image and a label file are kept.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from pixseg.data.base import VOID, read_image
from pixseg.data.cityscapes import CITYSCAPES_CLASSES, IMAGE_SUFFIX, LABEL_ID_SUFFIX, label_ids_to_train_ids
from pixseg.data.cityscapes import TRAIN_ID_SUFFIX as LABEL_SUFFIX
from pixseg.data.palette import read_label_png

IMAGE_FOLDER, LABEL_FOLDER = "leftImg8bit_sequence", "gtFine_sequence"
# The paper's protocol: 4 inputs 3 frames apart; targets 3 and 9 frames after the last input.
INPUTS, GAP, HORIZONS = 4, 3, (3, 9)

_FRAME = re.compile(rf"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+){re.escape(IMAGE_SUFFIX)}$")


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class SequenceWindows:
    """Forecasting windows of one split. Item i is a dict of numpy arrays:
    `inputs` (T×H×W uint8 labels of the input frames, oldest first), `targets` (one label map per
    horizon), and with `frames=True` also `input_images` (T×H×W×3 uint8) and `target_images`;
    `name` is the stem of the window's last input frame."""

    def __init__(self, root, split: str, num_classes: int = len(CITYSCAPES_CLASSES), inputs: int = INPUTS, gap: int = GAP,
                 horizons=HORIZONS, stride: int = 1, frames: bool = False,
                 labels: str = LABEL_FOLDER, label_suffix: str = LABEL_SUFFIX):
        for name, value in (("num_classes", num_classes), ("inputs", inputs), ("gap", gap),
                            ("stride", stride)):
            _check_positive(name, value)
        horizons = tuple(horizons)
        if not horizons:
            raise ValueError("horizons must name at least one frame offset, got none")
        for h in horizons:
            _check_positive("every horizon", h)
        self.root, self.split = Path(root), split
        self.num_classes, self.frames = num_classes, frames
        self.inputs, self.gap, self.horizons = inputs, gap, horizons
        self.label_dir, self.label_suffix = self.root / labels / split, label_suffix
        image_dir = self.root / IMAGE_FOLDER / split
        if not image_dir.is_dir():
            raise FileNotFoundError(f"{image_dir} does not exist; expected Cityscapes' sequence layout "
                                    f"{IMAGE_FOLDER}/<split>/<city>/<city>_<seq>_<frame>{IMAGE_SUFFIX}")
        sequences = defaultdict(dict)
        for path in sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}")):
            match = _FRAME.match(path.name)
            if match and match["city"] == path.parent.name:
                sequences[(match["city"], match["seq"])][int(match["frame"])] = path
        offsets = [-gap * k for k in range(inputs - 1, -1, -1)] + list(horizons)
        self.windows = []
        for key in sorted(sequences):
            paths = sequences[key]
            usable = [t for t in sorted(paths) if all(
                t + o in paths and self._label_path(paths[t + o]).is_file() for o in offsets)]
            self.windows += [[paths[t + o] for o in offsets] for t in usable[::stride]]
        if not self.windows:
            raise ValueError(f"{image_dir}: no window of {inputs} inputs {gap} frames apart with targets "
                             f"{', '.join(map(str, horizons))} frames later has every image and its label "
                             f"({self.label_dir}/<city>/<stem>{label_suffix}); found "
                             f"{sum(map(len, sequences.values()))} frames in {len(sequences)} sequences")

    def _label_path(self, image_path: Path) -> Path:
        stem = image_path.name[:-len(IMAGE_SUFFIX)]
        return self.label_dir / image_path.parent.name / f"{stem}{self.label_suffix}"

    def read_labels(self, image_path: Path) -> np.ndarray:
        path = self._label_path(image_path)
        labels = read_label_png(path)
        if path.name.endswith(LABEL_ID_SUFFIX):
            labels = label_ids_to_train_ids(labels, f"label {path}")
        bad = (labels >= self.num_classes) & (labels != VOID)
        if bad.any():
            raise ValueError(f"label file {path} holds values {np.unique(labels[bad])[:5].tolist()}; expected "
                             f"train ids 0..{self.num_classes - 1} or {VOID} for void")
        return labels

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        paths = self.windows[index]
        labels = [self.read_labels(p) for p in paths]
        images = [read_image(p) for p in paths] if self.frames else []
        shapes = {label.shape for label in labels} | {image.shape[:2] for image in images}
        if len(shapes) != 1:
            raise ValueError(f"window ending at {paths[self.inputs - 1]}: frames and labels differ in size "
                             f"({sorted(shapes)})")
        item = {"inputs": np.stack(labels[:self.inputs]), "targets": np.stack(labels[self.inputs:]),
                "name": paths[self.inputs - 1].name[:-len(IMAGE_SUFFIX)]}
        if self.frames:
            item["input_images"] = np.stack(images[:self.inputs])
            item["target_images"] = np.stack(images[self.inputs:])
        return item
