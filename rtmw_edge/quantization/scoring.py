"""What the gate measures: AP per part of FP32 and INT8 on ground truth, or INT8's agreement with FP32; for a 3D
model also the root-aligned drift of INT8's camera-space keypoints from FP32's on held-out crops."""

from __future__ import annotations

import numpy as np

from rtmw_edge import topdown
from rtmw_edge.artifact import Artifact
from rtmw_edge.backends.base import Runner
from rtmw_edge.evaluation import PART_NAMES
from rtmw_edge.evaluation.drift3d import root_aligned_drift_mm
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
        self.depth: dict | None = fp32.meta.decoding.get("depth")
        if self.depth is not None or evaluation is None:
            from rtmw_edge.quantization.calibration import pose_calibration

            self.crops = pose_calibration(None, tuple(fp32.meta.input_hw), size=reference_crops, seed=seed).inputs
        if self.depth is not None:
            self._reference_3d = self._lifted(self._predictor(fp32))
        if evaluation is not None:
            self.description = f"COCO-WholeBody AP on {evaluation.json_path.name} (ground-truth boxes, no flip)"
            self.fp32_ap = pose_ap(self._predictor(fp32), evaluation, progress)
            return
        self.description = (f"agreement with FP32 on {reference_crops} held-out crops of the shipped set "
                            f"(seed {seed}): OKS AP per part with FP32's predictions as ground truth")
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
        extra = {} if self.depth is None else {"drift_3d_mm": self._drift_3d(predictor)}
        if self.evaluation is not None:
            return pose_ap(predictor, self.evaluation, self.progress), extra
        report = self._report(self._crop_predictions(predictor))
        return report["oks_ap"], {"nme": report["nme"], "logit_snr_db": report["logit_snr_db"], **extra}

    def _lifted(self, predictor) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space keypoints [N,133,3] of the held-out crops, each crop taken as the image (the model's focal
        length, the crop's centre), and which keypoints are valid (2D score above 0)."""
        depth = self.depth
        chunks = [predictor.simcc(self.crops[i:i + CHUNK]) for i in range(0, len(self.crops), CHUNK)]
        simcc_x, simcc_y, simcc_z = (np.concatenate([c[axis] for c in chunks]) for axis in range(3))
        keypoints, scores = topdown.decode(simcc_x, simcc_y, predictor.split_ratio)
        z = topdown.decode_z(simcc_z, scores, predictor.split_ratio)
        metres = topdown.depth_metres(z, depth["input_depth"], depth["z_range"])
        h, w = self.crops.shape[2:]
        return topdown.camera_space(keypoints, metres, depth["root_z"], (*depth["focal"], w / 2, h / 2)), scores > 0

    def _drift_3d(self, predictor) -> dict[str, float]:
        reference, valid = self._reference_3d
        return root_aligned_drift_mm(reference, self._lifted(predictor)[0], valid, self.depth["root_keypoints"])

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
