"""`rtmw-edge predict`: run a Predictor over images, folders, videos or a camera, and write what it finds.

Images (named, or found in folders) share one predictions.json and get an overlay each; each video or camera
gets an annotated mp4 and a JSON-lines file. Existing outputs are refused before any work unless `overwrite`
is set, and the run's files appear together at its end (see rtmw_edge.media.outputs).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from rtmw_edge.media.images import image_outputs, predict_images, wants_3d_views
from rtmw_edge.media.inputs import collect_inputs
from rtmw_edge.media.outputs import Outputs, Summary
from rtmw_edge.media.video import StreamOptions, check_display, predict_stream, stream_outputs
from rtmw_edge.predictor import Predictor

logger = logging.getLogger(__name__)


def predict_inputs(predictor: Predictor, sources: Sequence[str | Path], out_dir: str | Path,
                   kpt_threshold: float = 0.3, overwrite: bool = False, progress: bool = True,
                   video: StreamOptions | None = None) -> Summary:
    """Predict on every input (an image, a folder, a video file, or a camera index such as '0'); `video` says
    how videos and cameras run. A Ctrl-C during a video keeps what was done and skips the inputs after it."""
    inputs = collect_inputs(sources)
    video = video or StreamOptions()
    out_dir = Path(out_dir)
    streams: list[Path | int] = [*inputs.videos, *([] if inputs.camera is None else [inputs.camera])]
    views_3d = bool(inputs.images) and wants_3d_views(predictor)
    planned = image_outputs(inputs.images, out_dir, views_3d) + [p for s in streams for p in stream_outputs(s, out_dir)]
    summary = Summary(out_dir, predictor.info, predictor.trained, skipped=list(inputs.skipped))
    if video.show and streams:
        check_display()
    with Outputs(planned, overwrite) as outputs:
        if inputs.images:
            predict_images(predictor, inputs.images, out_dir, outputs, summary, kpt_threshold,
                           progress=progress and len(inputs.images) > 1, views_3d=views_3d)
        for stream in streams:
            if not predict_stream(predictor, stream, out_dir, outputs, summary, kpt_threshold, progress, video):
                summary.cut_short = True
                break
    for note in summary.skipped:  # only now: a run that fails says one line, its error
        logger.warning("%s", note)
    return summary
