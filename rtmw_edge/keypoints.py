"""The COCO-WholeBody 133-keypoint layout: part ranges, OKS sigmas, flip pairs and skeleton."""

from __future__ import annotations

import numpy as np

NUM_KEYPOINTS = 133

# name -> (first index, one past the last index)
PARTS: dict[str, tuple[int, int]] = {
    "body": (0, 17),
    "foot": (17, 23),
    "face": (23, 91),
    "left_hand": (91, 112),
    "right_hand": (112, 133),
}

_BODY_SIGMAS = [.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087,
                .089, .089]
_FOOT_SIGMAS = [.068, .066, .066, .092, .094, .094]
_FACE_SIGMAS = [.042, .043, .044, .043, .040, .035, .031, .025, .020, .023, .029, .032, .037, .038, .043,
                .041, .045, .013, .012, .011, .011, .012, .012, .011, .011, .013, .015, .009, .007, .007,
                .007, .012, .009, .008, .016, .010, .017, .011, .009, .011, .009, .007, .013, .008, .011,
                .012, .010, .034, .008, .008, .009, .008, .008, .007, .010, .008, .009, .009, .009, .007,
                .007, .008, .011, .008, .008, .008, .010, .008]
_HAND_SIGMAS = [.029, .022, .035, .037, .047, .026, .025, .024, .035, .018, .024, .022, .026, .017, .021,
                .021, .032, .020, .019, .022, .031]

SIGMAS = np.array([*_BODY_SIGMAS, *_FOOT_SIGMAS, *_FACE_SIGMAS, *_HAND_SIGMAS, *_HAND_SIGMAS], dtype=np.float64)

FLIP_INDICES: list[int] = (
    [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 20, 21, 22, 17, 18, 19]
    + list(range(39, 22, -1))
    + list(range(49, 39, -1))
    + [50, 51, 52, 53, 58, 57, 56, 55, 54, 68, 67, 66, 65, 70, 69, 62, 61, 60, 59, 64, 63]
    + [77, 76, 75, 74, 73, 72, 71, 82, 81, 80, 79, 78, 87, 86, 85, 84, 83, 90, 89, 88]
    + list(range(112, 133))
    + list(range(91, 112))
)


def _hand_skeleton(root: int) -> list[tuple[int, int]]:
    links = []
    for finger in range(5):
        first = root + 1 + 4 * finger
        links.append((root, first))
        links.extend((first + j, first + j + 1) for j in range(3))
    return links


SKELETON: dict[str, list[tuple[int, int]]] = {
    "body": [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
             (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)],
    "foot": [(15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22)],
    "left_hand": _hand_skeleton(91),
    "right_hand": _hand_skeleton(112),
}


def part_of(index: int) -> str:
    """Name of the body part that keypoint `index` belongs to."""
    for name, (lo, hi) in PARTS.items():
        if lo <= index < hi:
            return name
    raise IndexError(f"keypoint index {index} outside 0..{NUM_KEYPOINTS - 1}")


def layout_metadata() -> dict:
    """The layout as plain data, written into every artifact's sidecar."""
    return {
        "name": "coco-wholebody",
        "num_keypoints": NUM_KEYPOINTS,
        "parts": {k: list(v) for k, v in PARTS.items()},
        "flip_indices": FLIP_INDICES,
    }
