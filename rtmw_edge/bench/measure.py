"""Timing every artifact in interleaved rounds (the network, a frame, a whole video), and loading each in a fresh
process for its start-up cost."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from rtmw_edge.bench.results import Video, VideoFps
from rtmw_edge.bench.timing import interleaved_latency
from rtmw_edge.detector import Detector
from rtmw_edge.predictor import Predictor
from rtmw_edge.video import FrameReader, PoseStream

WARMUP = 2
VIDEO_ROUNDS = 3  # passes over the whole video per artifact: each is many frames, so few are needed


def measure_latency(predictors: Mapping[str, Predictor], batch: int, runs: int, warmup: int = WARMUP,
                    frame: tuple[np.ndarray, object] | None = None,
                    progress: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """Seconds per call of each artifact's network at batch 1 and `batch` ('batch1', 'batchN') and, given a
    (BGR image, detector) frame, of the whole detector + pose pipeline ('e2e'). One round calls every artifact
    once per measurement, artifact after artifact, so no artifact gets the machine's quiet moments alone."""
    calls = {}
    for size in sorted({1, batch}):
        for name, predictor in predictors.items():
            crops = _crops(predictor, size)
            calls[name, f"batch{size}"] = lambda p=predictor, c=crops: p.runner.run(c)
    if frame is not None:
        image, detector = frame
        for name, predictor in predictors.items():
            calls[name, "e2e"] = lambda p=predictor: p.predict(image, detector.detect(image))
    times = interleaved_latency(calls, runs=runs, warmup=warmup, progress=progress)
    out: dict[str, dict[str, np.ndarray]] = {name: {} for name in predictors}
    for (name, what), seconds in times.items():
        out[name][what] = seconds
    return out


def open_video(path: str | Path, detector: str | Path, det_every: int, rounds: int = VIDEO_ROUNDS) -> Video:
    """The video's facts, read before any artifact is loaded (a file that does not open fails here, in one line);
    its frame count is the one measure_video decodes."""
    with FrameReader(path) as reader:
        width, height = reader.size
    return Video(file=str(path), width=width, height=height, frames=reader.total or 0, det_every=det_every,
                 rounds=rounds, detector=Path(detector).name)


def measure_video(predictors: Mapping[str, Predictor], video: Video, detector: Detector,
                  progress: bool = False) -> tuple[Video, dict[str, VideoFps]]:
    """Each artifact's frames per second over `video` as `predict VIDEO --det-every N --track --smooth` runs it
    (decoding on its thread, detector, pose, tracking, smoothing; not drawing or writing), passes interleaved
    across artifacts; and the video with the frame count decoded. The predictors are warm: measure_latency ran
    them first."""
    counts: dict[str, int] = {}

    def one_pass(name: str, predictor: Predictor) -> None:
        stream = PoseStream(predictor, det_every=video.det_every, track=True, smooth=True, detector=detector)
        frames = 0
        with FrameReader(video.file) as reader:
            for frame in reader:
                stream(frame.image, frame.index)
                frames += 1
        counts[name] = frames

    passes = {name: lambda n=name, p=predictor: one_pass(n, p) for name, predictor in predictors.items()}
    seconds = interleaved_latency(passes, runs=video.rounds, warmup=0, progress=progress)
    frames = min(counts.values())
    return dataclasses.replace(video, frames=frames), {n: VideoFps.of(frames, s) for n, s in seconds.items()}


def _crops(predictor: Predictor, size: int) -> np.ndarray:
    """Normalised-looking inputs; dense CPU inference takes the same time whatever the pixels are."""
    return np.random.default_rng(0).standard_normal((size, 3, *predictor.input_hw), dtype=np.float32)


def cold_load(folder: str, options: dict[str, object], batch: int) -> tuple[float, float | None]:
    """Load time and peak-memory growth of one artifact in a fresh process, as an application starting up sees them.

    In the benchmarking process, memory freed by earlier artifacts is reused without the resident size growing, so
    its figures would depend on the order of the artifacts; a new process per artifact does not.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_load_and_run, folder, options, batch).result()


def _load_and_run(folder: str, options: dict[str, object], batch: int) -> tuple[float, float | None]:
    resettable = _reset_peak_memory()
    before = _memory_mb("VmRSS")
    start = time.perf_counter()
    predictor = Predictor(folder, **options)
    load_s = time.perf_counter() - start
    predictor.runner.run(_crops(predictor, batch))
    after = _memory_mb("VmHWM" if resettable else "VmRSS")
    return load_s, None if before is None or after is None else max(after - before, 0.0)


def _reset_peak_memory() -> bool:
    """Linux resets VmHWM to the current RSS when "5" is written to clear_refs; without it, RSS growth stands in."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _memory_mb(field_name: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None
