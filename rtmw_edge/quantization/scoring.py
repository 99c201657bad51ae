"""What the gate measures: AP per part of FP32 and INT8 on ground truth, or INT8's agreement with FP32."""

from __future__ import annotations

import numpy as np

from rtmw_edge import topdown
from rtmw_edge.artifact import Artifact
from rtmw_edge.backends.base import Runner
from rtmw_edge.evaluation import PART_NAMES
from rtmw_edge.evaluation.ground_truth import GroundTruthSet, pose_ap
from rtmw_edge.predictor import BrokenOutputError

CHUNK = 16


class PoseScorer:
    """Scores INT8 candidates against one FP32 artifact, computing the FP32 side once.

    Without ground truth, the reference is FP32's predictions on `reference_crops` held-out crops (the shipped
    set under `seed`); the metric is then agreement, where FP32 scores 1 by definition.
    """

    def __init__(self, fp32: Artifact, evaluation: GroundTruthSet | None, threads: int | None, seed: int,
                 reference_crops: int, progress: bool = False) -> None:
        self.evaluation = evaluation
        self.threads = threads
        self.progress = progress
        self.metric = "agreement" if evaluation is None else "ap"
        if evaluation is not None:
            self.description = f"COCO-WholeBody AP on {evaluation.json_path.name} (ground-truth boxes, no flip)"
            self.fp32_ap = pose_ap(self._predictor(fp32), evaluation, progress)
            return
        from rtmw_edge.quantization.calibration import pose_calibration

        held_out = pose_calibration(None, tuple(fp32.meta.input_hw), size=reference_crops, seed=seed)
        self.description = (f"agreement with FP32 on {reference_crops} held-out crops of the shipped set "
                            f"(seed {seed}): OKS AP per part with FP32's predictions as ground truth")
        self.crops = held_out.inputs
        self._reference = self._crop_predictions(self._predictor(fp32))
        self.fp32_ap = {part: 1.0 for part in PART_NAMES}

    def score(self, artifact: Artifact, runner: Runner | None = None) -> tuple[dict[str, float], dict]:
        """An INT8 artifact's AP per part, and extra figures (NME, logit SNR) when scored against FP32.

        `runner` scores a candidate network not yet written as an artifact (NNCF's accuracy control), with
        `artifact`'s metadata. A network whose outputs are non-finite or all zero scores 0 everywhere.
        """
        try:
            return self._score(self._predictor(artifact, runner))
        except BrokenOutputError as exc:
            return {part: 0.0 for part in PART_NAMES}, {"broken": str(exc)}

    def _score(self, predictor) -> tuple[dict[str, float], dict]:
        if self.evaluation is not None:
            return pose_ap(predictor, self.evaluation, self.progress), {}
        report = self._report(self._crop_predictions(predictor))
        return report["oks_ap"], {"nme": report["nme"], "logit_snr_db": report["logit_snr_db"]}

    def _predictor(self, artifact: Artifact, runner: Runner | None = None):
        from rtmw_edge.predictor import Predictor

        return Predictor(artifact.folder, threads=self.threads, flip_test=False, runner=runner)

    def _crop_predictions(self, predictor) -> tuple[list[dict], np.ndarray]:
        """Result entries (one person filling each crop) and the raw logits, for agreement scoring."""
        from rtmw_edge.evaluation import to_result_entry

        chunks = [predictor.simcc(self.crops[i:i + CHUNK]) for i in range(0, len(self.crops), CHUNK)]
        simcc_x = np.concatenate([c[0] for c in chunks])
        simcc_y = np.concatenate([c[1] for c in chunks])
        keypoints, scores = topdown.decode(simcc_x, simcc_y, predictor.split_ratio)
        h, w = self.crops.shape[2:]
        entries = []
        for i, (kpts, kpt_scores) in enumerate(zip(keypoints, scores, strict=True)):
            entry = to_result_entry(i, kpts, kpt_scores, float(kpt_scores.mean()))
            entry["box"] = [0, 0, w, h]
            entries.append(entry)
        return entries, np.concatenate([simcc_x.reshape(len(simcc_x), -1), simcc_y.reshape(len(simcc_y), -1)], 1)

    def _report(self, test: tuple[list[dict], np.ndarray]) -> dict:
        from rtmw_edge.evaluation.agreement import agreement_report

        h, w = self.crops.shape[2:]
        images = [{"id": i, "width": w, "height": h} for i in range(len(self.crops))]
        return agreement_report(self._reference[0], test[0], images, reference_logits=self._reference[1],
                                test_logits=test[1])
