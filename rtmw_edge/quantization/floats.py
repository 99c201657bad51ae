"""The float precisions `quantize` keeps beside FP32 and INT8 (bf16, fp16): the FP32 artifact's network in a
narrower arithmetic. They need no calibration, only an instruction set: a precision this CPU cannot compute is
skipped with the reason, one whose self-check fails too; the others are verified like an export and scored
by the same gate as INT8."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from rtmw_edge.artifact import Artifact, load_artifact, write_metadata
from rtmw_edge.backends import get_backend, open_runner
from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.exporter import artifact_dir, verify
from rtmw_edge.fileio import atomic_dir
from rtmw_edge.machine import cpu_flags, tool_versions
from rtmw_edge.quantization.gate import Budget, Verdict, judge
from rtmw_edge.quantization.scoring import PoseScorer


@dataclass(frozen=True)
class Scored:
    """A float artifact made in the result folder, with what the gate measured of it."""

    artifact: Artifact
    accuracy: dict[str, float]
    logit_snr_db: float | None
    verdict: Verdict


def float_precisions(backend: str, wanted: Sequence[str] | None = None) -> tuple[str, ...]:
    """`wanted` (default: every precision besides FP32 that `backend` exports), checked against those."""
    offered = tuple(p for p in get_backend(backend).precisions if p != "fp32")
    unknown = [p for p in wanted or () if p not in offered]
    if unknown:
        raise RtmwEdgeError(f"{backend} has no {', '.join(unknown)} precision to keep beside FP32 and INT8; it has: "
                            f"{', '.join(offered) or 'none'}")
    return offered if wanted is None else tuple(wanted)


def make_floats(fp32: Artifact, precisions: Sequence[str], folder: Path, scorer: PoseScorer, budget: Budget,
                progress: bool = False, why_not: str | None = None) -> tuple[list[Scored], dict[str, str]]:
    """Each of `precisions` made from `fp32` in `folder` and scored (`why_not`: why the gate only shows the
    figures, as for INT8); the others with why they were not made."""
    backend = get_backend(fp32.meta.backend)
    made, skipped = [], {}
    for precision in tqdm(precisions, desc="float precisions", disable=not progress, leave=False):
        reason = backend.lacks(precision, cpu_flags())
        if reason is None:
            try:
                artifact = derive_artifact(fp32, precision, folder)
            except RtmwEdgeError as exc:  # its self-check failed: the row says why instead of the run failing
                reason = str(exc)
        if reason is not None:
            skipped[precision] = reason
            continue
        accuracy, extra = scorer.score(artifact)
        verdict = judge(scorer.fp32_ap, accuracy, budget, why_not)
        made.append(Scored(artifact, accuracy, extra.get("logit_snr_db"), verdict))
    return made, skipped


def derive_artifact(fp32: Artifact, precision: str, folder: Path) -> Artifact:
    """The `precision` artifact of the FP32 one's network, checked against it on export's probe input."""
    meta = copy.deepcopy(fp32.meta)
    backend = get_backend(meta.backend)
    reference = open_runner(fp32.main_path, meta.backend, **fp32.runner_options).run
    target = artifact_dir(folder, meta.model, meta.backend, precision)
    with atomic_dir(target) as tmp:
        written = backend.derive(fp32.network, tmp, meta.model, precision)
        meta.precision, meta.main_file = precision, written.main_file
        meta.input_name, meta.output_names = written.input_name, written.output_names
        meta.layer_names = written.layer_names
        meta.quantization, meta.tools = {}, tool_versions()
        meta.verification = verify(Artifact(tmp, meta), reference)
        write_metadata(tmp, meta)
    return load_artifact(target)
