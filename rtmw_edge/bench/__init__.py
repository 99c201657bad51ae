"""`rtmw-edge bench` and `rtmw-edge report merge`: every pose artifact given, measured the same way on this
machine, in one table and one plot; and several devices' results side by side.

Latency runs are interleaved across artifacts (A B C A B C ...) so that the load of a shared machine hits all of
them alike, and each artifact's speed is a ratio against a baseline measured in the same rounds, with a bootstrap
interval. `results.json` keeps the machine, the settings and every figure and run, so that `report merge` can put
several devices side by side.
"""

from rtmw_edge.bench.merge import merge_results
from rtmw_edge.bench.results import (
    FORMAT,
    Accuracy,
    BenchResults,
    Figures,
    Frame,
    Latency,
    RunSettings,
    Skipped,
    Speedup,
    Video,
    VideoFps,
    read_results,
)
from rtmw_edge.bench.run import BenchRun, BenchSettings, run_bench

__all__ = ["FORMAT", "Accuracy", "BenchResults", "BenchRun", "BenchSettings", "Figures", "Frame", "Latency",
           "RunSettings", "Skipped", "Speedup", "Video", "VideoFps", "merge_results", "read_results", "run_bench"]
