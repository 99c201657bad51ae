"""RTMW's layers in groups that mixed precision keeps in float or reverts together.

Patterns match ONNX node names (module paths, kept by the exporter) and the OpenVINO op names derived
from them; the SimCC classifiers are named after their outputs in OpenVINO.
"""

from __future__ import annotations

import re

LAYER_GROUPS: dict[str, str] = {
    "backbone.stem": r"^/backbone/stem[./]",
    "backbone.stage1": r"^/backbone/stage1[./]",
    "backbone.stage2": r"^/backbone/stage2[./]",
    "backbone.stage3": r"^/backbone/stage3[./]",
    "backbone.stage4": r"^/backbone/stage4[./]",
    "neck": r"^/neck/",
    # the head's unnamed ops by their exported names: ps + Concat_1 join the two encoders, the flattens
    # (Shape/Slice/Concat/Reshape, _1/_2 for the second) feed each MLP's ScaleNorm, Concat_3 joins the tokens
    "head.encode": r"^/head/((final_layer|final_layer2|conv_dec|ps)/|Concat_1$)",
    "head.mlp": r"^/head/(mlp2?/|(Shape|Slice|Reshape)(_1)?$|Concat(_2)?$)",
    "head.gau": r"^/head/(gau/|Concat_3$)",
    "head.cls": r"^(/head/cls_[xyz]/|simcc_[xyz]$)",  # z: RTMW3D's depth classifier
}


def patterns(groups: list[str]) -> list[str]:
    unknown = [g for g in groups if g not in LAYER_GROUPS]
    if unknown:
        raise ValueError(f"unknown layer group(s) {unknown} (known: {', '.join(LAYER_GROUPS)})")
    return [LAYER_GROUPS[g] for g in groups]


def names_in(groups: list[str], names: list[str]) -> list[str]:
    """The node names that belong to any of `groups`."""
    regexes = [re.compile(p) for p in patterns(groups)]
    return [n for n in names if any(r.search(n) for r in regexes)]
