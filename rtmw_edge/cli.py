"""`rtmw-edge`: one verb per job (models, export, predict, ...), one table or one line of error each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rtmw_edge import __version__
from rtmw_edge.backends import BACKENDS, REFERENCE_BACKEND, backend_names, check_threads
from rtmw_edge.errors import RtmwEdgeError

Command = Callable[[argparse.Namespace], int]
DESCRIPTION = ("RTMW whole-body pose (133 keypoints) on edge devices: export, quantize with an accuracy gate, "
               "predict, bench. Each command prints one table, or one line of error and a non-zero exit.")


def _models(args: argparse.Namespace) -> int:
    from rtmw_edge.cache import cache_dir
    from rtmw_edge.download import record_path
    from rtmw_edge.model.detectors import list_detectors
    from rtmw_edge.model.facts import model_facts
    from rtmw_edge.table import format_table

    rows = [[f.name, f.alias or "", f"{f.input_hw[0]}x{f.input_hw[1]}", f"{f.params_m:.2f}M", f"{f.gflops:.2f}",
             f"{f.published_ap:.1f} / " + ("-" if f.published_ar is None else f"{f.published_ar:.1f}"),
             "" if f.published_mpjpe_m is None else f"{f.published_mpjpe_m:.3f} m", "yes" if f.cached else "no"]
            for f in model_facts()]
    print(format_table(["model", "alias", "input HxW", "params", "GFLOPs (MACs)", "published AP / AR",
                        "3D MPJPE (H3WB)", "cached"], rows))
    print()
    rows = [[d.name, f"{d.input_hw[0]}x{d.input_hw[1]}", f"{d.published_ap:.1f} ({d.ap_dataset})",
             "yes" if record_path(cache_dir() / d.zip_name).is_file() else "no"] for d in list_detectors()]
    print(format_table(["detector", "input HxW", "published person AP", "cached"], rows))
    return 0


def _export(args: argparse.Namespace) -> int:
    from rtmw_edge.exporter import export, print_report

    done = export(args.detector or args.model, args.backend, args.precision, weights=args.weights, out=args.out,
                  allow_untrained=args.allow_untrained, overwrite=args.overwrite)
    print_report(done.artifact, done.verification)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from rtmw_edge.media.inputs import collect_inputs
    from rtmw_edge.media.predict import predict_inputs
    from rtmw_edge.media.video import StreamOptions, check_display, quiet_ffmpeg
    from rtmw_edge.predictor import parse_camera
    from rtmw_edge.wholebody import Wholebody

    quiet_ffmpeg()
    collect_inputs(args.inputs)  # a bad input fails before a model is made
    camera = parse_camera(args.camera) if args.camera else None
    if args.ray is not None:
        from rtmw_edge.media.dataset import predict_dataset

        summary = predict_dataset(args.inputs, args.model, args.out, backend=args.backend, precision=args.precision,
                                  detector=args.detector, address=args.ray or None, profile=args.device_profile,
                                  threads=args.threads, device=args.device, flip_test=args.flip_test,
                                  camera=camera, kpt_threshold=args.kpt_threshold, overwrite=args.overwrite,
                                  progress=sys.stderr.isatty())
        print(f"rtmw-edge predict: {summary.line()}")
        return 0
    if args.show:
        check_display()  # likewise: before a model or a detector is fetched
    video = StreamOptions(det_every=args.det_every, track=args.track, smooth=args.smooth, show=args.show)
    pose = Wholebody(args.model, args.backend, args.precision, args.detector, profile=args.device_profile,
                     threads=args.threads, device=args.device, flip_test=args.flip_test,
                     progress=sys.stderr.isatty(), camera=camera)
    summary = predict_inputs(pose.predictor, args.inputs, args.out, kpt_threshold=args.kpt_threshold,
                             overwrite=args.overwrite, progress=sys.stderr.isatty(), video=video)
    print(f"rtmw-edge predict: {summary.line()}")
    return 130 if summary.cut_short else 0


def _quantize(args: argparse.Namespace) -> int:
    from rtmw_edge.quantization import quantize

    if args.max_drop is not None and len(args.max_drop) not in (2, 4):
        raise RtmwEdgeError(f"--max-drop takes WHOLEBODY PART, or those and WHOLEBODY_MM PART_MM for a 3D model "
                            f"(2 or 4 numbers), got {len(args.max_drop)}")
    result = quantize(args.model, args.backend, args.calib, calibration_images=args.calib_images,
                      evaluation=args.eval, evaluation_images=args.eval_images, weights=args.weights,
                      allow_untrained=args.allow_untrained, detector=args.detector, recipe=args.recipe,
                      max_drop=args.max_drop, out=args.out, overwrite=args.overwrite, threads=args.threads,
                      sensitivity=args.sensitivity, precisions=args.float_precisions)
    print(result.table)
    print(f"report: {result.report_path}  record: {result.record_path}")
    if not result.passed:
        print("rtmw-edge quantize: the accuracy gate FAILED; artifacts kept and marked failed", file=sys.stderr)
        return 1
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from rtmw_edge.evaluation import evaluate, load_ground_truth, load_results, metrics_table

    metrics = evaluate(load_ground_truth(args.gt), load_results(args.predictions), progress=True)
    print(metrics_table(metrics))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from rtmw_edge.bench import BenchSettings, run_bench

    run = run_bench(args.artifacts, BenchSettings(
        threads=args.threads, batch=args.batch, runs=args.runs, eval_json=args.eval, detector=args.detector,
        video=args.video, det_every=args.det_every, baseline=args.baseline, device_profile=args.device_profile,
        label=args.label, out=args.out, overwrite=args.overwrite))
    print(run.table)
    for skipped in run.results.skipped:
        print(f"not run: {skipped.name}: {skipped.reason}", file=sys.stderr)
    print(f"results: {run.folder / 'results.json'}  report: {run.folder / 'report.md'}, {run.folder / 'report.html'}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from rtmw_edge.bench import merge_results

    print(merge_results(args.results, args.out, overwrite=args.overwrite))
    print(f"report: {args.out}/report.md, {args.out}/report.html, {args.out}/pareto.png")
    return 0


def _aliases_text() -> str:
    aliases = [f"{alias} = {b.name}" for b in BACKENDS.values() for alias in b.aliases]
    return f" ({', '.join(aliases)})" if aliases else ""


def _precisions() -> list[str]:
    return list(dict.fromkeys(p for b in BACKENDS.values() for p in b.precisions))


def _add_weights_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default="auto",
                   help="'auto' (official checkpoint, downloaded once), a checkpoint path, 'untrained', or 'stress' "
                        "(seeded, spread over channels like trained weights: INT8 is judged on agreement with FP32)")
    p.add_argument("--allow-untrained", action="store_true",
                   help="with --weights auto: continue with untrained weights when the download is impossible")


def _add_models(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("models", help="list the registered models with their params, GFLOPs and published AP")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model for one backend and verify it against its source")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--model", default="rtmw-m", help="registered model name or alias (see `rtmw-edge models`)")
    what.add_argument("--detector", help="a person detector's ONNX file (RTMDet raw head or mmdeploy end-to-end)")
    p.add_argument("--backend", "--format", required=True, choices=backend_names(aliases=True),
                   help="the backend that will run it" + _aliases_text())
    p.add_argument("--precision", default="fp32", choices=_precisions())
    _add_weights_options(p)
    p.add_argument("--out", default="exports", help="folder that receives the artifact folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing artifact folder")


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="whole-body keypoints of the people in images, folders, videos or a camera")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="images, folders of images, video files, or one camera index such as 0; the images "
                        "share one predictions.json")
    p.add_argument("--model", default="rtmw-m",
                   help="a registered model or alias (made once for the backend, then cached), or a pose artifact "
                        "(its folder or main model file)")
    p.add_argument("--backend", choices=backend_names(aliases=True),
                   help="with a model name: the backend to run it on (default: the device profile's first installed)")
    p.add_argument("--precision", default="fp32", choices=[*_precisions(), "int8"],
                   help="with a model name: int8 is quantized with the default recipe on first use, then cached")
    p.add_argument("--detector", default="auto",
                   help="a registered detector (see `rtmw-edge models`), a detector artifact or ONNX file, 'auto' "
                        "(the device profile's, default) or 'none' (each image is one person)")
    p.add_argument("--device-profile", help="raspberry-pi, jetson, intel-cpu, or a profile.toml (default: this "
                                            "machine's: Arm -> raspberry-pi or jetson, else intel-cpu)")
    p.add_argument("--out", default="predict-out",
                   help="folder that receives the predictions and overlays (made when the run succeeds)")
    p.add_argument("--flip-test", action="store_true", help="average with the mirrored image (slower, more accurate; "
                                                             "2D models only)")
    p.add_argument("--camera", metavar="FX,FY,CX,CY",
                   help="3D models: the camera's focal lengths and principal point in pixels, for camera-space "
                        "keypoints (default: the model's focal length and the image's centre)")
    p.add_argument("--threads", type=int, help="CPU threads per network (default: the runtime's choice)")
    p.add_argument("--device", help="device for the backend: " + "; ".join(
        f"{b.name}: {', '.join(b.devices)}" for b in BACKENDS.values()) + " (default: the first)")
    p.add_argument("--kpt-threshold", type=float, default=0.3, help="overlays hide keypoints scoring below this")
    p.add_argument("--det-every", type=int, default=1, metavar="N",
                   help="videos and cameras: the detector on one frame in N; in between each person's box follows "
                        "its keypoints (default 1: every frame)")
    p.add_argument("--track", action="store_true",
                   help="videos and cameras: a stable id per person (box IoU and keypoint OKS), drawn in its colour")
    p.add_argument("--smooth", action="store_true",
                   help="videos and cameras: One-Euro filter on each person's keypoints (mmpose's parameters)")
    p.add_argument("--show", action="store_true", help="videos and cameras: a live window (q or Esc stops)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="images and folders on Ray Data, actors and threads from the device profile's [ray]: on the "
                        "cluster at ADDRESS, else $RAY_ADDRESS's, else a local Ray (give it after the inputs, or "
                        "as --ray=ADDRESS); needs the [ray] extra")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _add_quantize(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="calibrate INT8 for a backend and check its accuracy drop against FP32")
    p.add_argument("--backend", required=True, choices=backend_names(aliases=True))
    p.add_argument("--model", "--source", dest="model", default="rtmw-m",
                   help="registered model name or alias, or an FP32 pose artifact folder to start from")
    _add_weights_options(p)
    p.add_argument("--calib", help="calibration images: a folder, a video, or a COCO-WholeBody JSON "
                                   "(default: the shipped public-domain set)")
    p.add_argument("--calib-images", help="folder of the images named by a --calib JSON")
    p.add_argument("--eval", help="COCO-WholeBody JSON for the accuracy gate (default: agreement with FP32)")
    p.add_argument("--eval-images", help="folder of the images named by --eval (default: beside the JSON)")
    p.add_argument("--detector", help="a person detector ONNX: quantized too, and finds people in --calib images")
    p.add_argument("--recipe", help="a TOML file whose keys override the backend's default recipe")
    p.add_argument("--max-drop", nargs="+", type=float, metavar="N",
                   help="WHOLEBODY PART [WHOLEBODY_MM PART_MM]: largest AP drop allowed on the whole body and on any "
                        "part (default: the recipe's [gate]), and for a 3D model the largest root-aligned 3D drift "
                        "in mm (default 15 25)")
    p.add_argument("--threads", type=int, help="inference threads for evaluation and latency")
    p.add_argument("--sensitivity", action="store_true",
                   help="also measure each layer group quantized alone (for a recipe's [sensitivity] table)")
    p.add_argument("--float-precisions", nargs="*", metavar="PRECISION",
                   choices=[p for p in _precisions() if p != "fp32"],
                   help="float precisions to keep beside FP32 and INT8, scored like INT8 (default: every one the "
                        "backend exports; none given: none); one this CPU cannot compute is skipped with the reason")
    p.add_argument("--out", default="quantized", help="folder that receives the result folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result folder")


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="COCO-WholeBody AP/AR per body part of any result file")
    p.add_argument("predictions", help="result JSON in the COCO-WholeBody format (ours or another tool's)")
    p.add_argument("--gt", required=True, help="COCO-WholeBody ground-truth JSON")


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="size, load time, memory, latency, speed-up and accuracy of pose artifacts, "
                                     "in one table, a Pareto plot and results.json")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT_OR_FOLDER",
                   help="pose artifact folders, or folders holding them (an exports or quantize result folder)")
    p.add_argument("--threads", type=int, help="CPU threads per network (default: the profile's, else the runtime's)")
    p.add_argument("--batch", type=int, help="second batch size timed, per crop (default: the profile's, else 5)")
    p.add_argument("--runs", type=int, help="interleaved timing rounds after warm-up (default: the profile's, else 20)")
    p.add_argument("--eval", help="COCO-WholeBody JSON: measure AP on it (default: the quantization record's figures)")
    p.add_argument("--detector", help="person detector (a registered name, an artifact or model file): adds "
                                      "end-to-end ms per frame")
    p.add_argument("--video", help="a video file (needs --detector): adds frames per second over it, end to end "
                                   "(decoding, detector, pose, tracking, smoothing)")
    p.add_argument("--det-every", type=int, default=1, metavar="N",
                   help="with --video: the detector on one frame in N, as `predict --det-every` (default 1)")
    p.add_argument("--baseline", help="artifact name or folder that speed-ups are against "
                                      f"(default: the first FP32 {REFERENCE_BACKEND} artifact)")
    p.add_argument("--device-profile", help="raspberry-pi, jetson, intel-cpu, or a profile.toml: backends, "
                                            "threads and devices for that device")
    p.add_argument("--label", help="name of this device in merged reports (default: the profile's, else hostname)")
    p.add_argument("--out", default="bench-out", help="folder for results.json, report.md, report.html, pareto.png")
    p.add_argument("--overwrite", action="store_true", help="replace existing result files")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="compare bench results: `report merge` puts several devices side by side")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    merge = actions.add_parser("merge", help="several devices' results.json in one report and one plot")
    merge.add_argument("results", nargs="+", metavar="RESULTS_JSON", help="results.json files of `rtmw-edge bench`")
    merge.add_argument("--out", default="bench-merged", help="folder for report.md, report.html, pareto.png")
    merge.add_argument("--overwrite", action="store_true", help="replace existing report files")


COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Command]] = {
    "models": (_add_models, _models),
    "export": (_add_export, _export),
    "quantize": (_add_quantize, _quantize),
    "evaluate": (_add_evaluate, _evaluate),
    "predict": (_add_predict, _predict),
    "bench": (_add_bench, _bench),
    "report": (_add_report, _report),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtmw-edge", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"rtmw-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_threads(getattr(args, "threads", None))  # before minutes of work, not after
        return COMMANDS[args.command][1](args)
    except RtmwEdgeError as exc:
        print(f"rtmw-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rtmw-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
