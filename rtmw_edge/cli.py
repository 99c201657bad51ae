"""`rtmw-edge`: one verb per job (models, export, predict, ...), one table or one line of error each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rtmw_edge import __version__
from rtmw_edge.errors import RtmwEdgeError

Command = Callable[[argparse.Namespace], int]


def _models(args: argparse.Namespace) -> int:
    from rtmw_edge.model.facts import model_facts
    from rtmw_edge.table import format_table

    rows = [[f.name, f.alias or "", f"{f.input_hw[0]}x{f.input_hw[1]}", f"{f.params_m:.2f}M",
             f"{f.gflops:.2f}", f"{f.published_ap:.1f} / {f.published_ar:.1f}", "yes" if f.cached else "no"]
            for f in model_facts()]
    print(format_table(["model", "alias", "input HxW", "params", "GFLOPs (MACs)", "published AP / AR",
                        "cached"], rows))
    return 0


def _export(args: argparse.Namespace) -> int:
    from rtmw_edge.export import export_model, print_report

    artifact, report = export_model(args.model, args.format, args.precision, weights=args.weights,
                                    out_dir=args.out, allow_untrained=args.allow_untrained,
                                    overwrite=args.overwrite)
    print_report(artifact, report)
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    sub.add_parser("models", help="list the registered models with their params, GFLOPs and published AP")


def _add_export(sub: argparse._SubParsersAction) -> None:
    from rtmw_edge.export import FORMATS, PRECISIONS

    p = sub.add_parser("export", help="export a model to ONNX, OpenVINO IR or ncnn and verify it")
    p.add_argument("--model", default="rtmw-m", help="registered model name or alias (see `rtmw-edge models`)")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    p.add_argument("--weights", default="auto",
                   help="'auto' (official checkpoint, downloaded once), a checkpoint path, or 'untrained'")
    p.add_argument("--allow-untrained", action="store_true",
                   help="with --weights auto: continue with untrained weights when the download is impossible")
    p.add_argument("--out", default="exports", help="folder that receives the artifact folder")
    p.add_argument("--overwrite", action="store_true", help="replace an existing artifact folder")


COMMANDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None], Command]] = {
    "models": (_add_models, _models),
    "export": (_add_export, _export),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtmw-edge", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rtmw-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except RtmwEdgeError as exc:
        print(f"rtmw-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rtmw-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
