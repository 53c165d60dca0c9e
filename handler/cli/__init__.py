"""The command line, ``python -m handler``: serve | segment | submit | fetch-model | backfill | export-coco |
make-test-model. (``invoke``, which drives AWS's emulator, is dev tooling: ``python -m infra invoke``.)

Each command imports what it needs when it runs, so ``--help`` stays fast. May import every part.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from handler.core.catalogue import BACKBONES, CATALOGUE, weights
from handler.core.settings import SHA256_PIN_FILE, default_model_path

BACKBONE_NAMES: tuple[str, ...] = BACKBONES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m handler",
        description="PointRend instance segmentation: local server, batch CLI, bulk jobs, model files "
        "(the Lambda emulator: python -m infra invoke). "
        "Settings come from SEG_* environment variables (docs/cli-and-settings.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP API and the upload page under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)

    segment = commands.add_parser(
        "segment",
        help="segment image and video files, writing <name.ext>.json / <name.ext>.png, or for a video "
        "<name.ext>.jsonl / <name.ext>.webm (never over an input or an existing file)",
    )
    segment.add_argument("images", nargs="+", type=Path, metavar="FILE", help="images and videos (MP4, MOV, WebM, AVI)")
    segment.add_argument(
        "--out",
        type=Path,
        default=Path("out"),
        help="output folder (default: ./out); inputs from several folders keep their folders under it",
    )
    segment.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    segment.add_argument("--format", choices=("json", "png", "both"), default="both")
    segment.add_argument("--masks", choices=("rle", "polygons", "none"), default="rle")
    segment.add_argument("--confidence", type=float, default=None, help="0..1 (default: SEG_CONFIDENCE)")
    segment.add_argument("--classes", default=None, help="comma-separated COCO names, e.g. person,car")
    segment.add_argument(
        "--cutouts",
        nargs="?",
        const="mask",
        choices=("mask", "box"),
        help="also cut each object out: <name>.objects/NN-<class>.png, RGBA (mask, the default: transparent outside "
        "the mask; box: the box, opaque)",
    )
    segment.add_argument(
        "--speed",
        choices=("normal", "fast", "rapid"),
        default=None,
        help="detection speed (default: SEG_DETECTION_SPEED)",
    )
    from handler.cli.segment_video import add_video_arguments

    add_video_arguments(segment)  # --every, --fps, --max-frames

    submit = commands.add_parser(
        "submit",
        help="send image files of any size to a deployed API through the jobs flow (POST /jobs, upload to S3, poll)",
    )
    submit.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    submit.add_argument("--api", required=True, help="the API's base URL, e.g. the stack's ApiUrl output")
    submit.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: ./out)")
    submit.add_argument("--overlay", action="store_true", help="also write <name.ext>.png, the overlay")
    submit.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    submit.add_argument("--masks", choices=("rle", "polygons", "none"), default="rle")
    submit.add_argument("--confidence", type=float, default=None, help="0..1 (default: the server's)")
    submit.add_argument("--classes", default=None, help="comma-separated COCO names, e.g. person,car")
    submit.add_argument("--timeout", type=float, default=900, help="seconds to wait for each job (default: 900)")

    fetch = commands.add_parser(
        "fetch-model",
        help=f"download {' or '.join(w.file for w in CATALOGUE.values())} (PixelLib 0.2.0); check its sha256 against "
        "its pin, or pin it if none",
    )
    fetch.add_argument(
        "--backbone", choices=BACKBONE_NAMES, default="resnet50", help="resnet101: PointRend X-101-32x8d-FPN"
    )
    fetch.add_argument("--dest", type=Path, default=None, help="default: .cache/models/<the backbone's release file>")
    fetch.add_argument("--url", default=None, help="a mirror of the release file (default: PixelLib's GitHub)")
    fetch.add_argument(
        "--pin-file",
        type=Path,
        default=SHA256_PIN_FILE,
        help="the sha256 pins the image build checks, one line per file (default: infra/model.sha256); "
        "this file's line is added when absent",
    )

    backfill = commands.add_parser(
        "backfill",
        help="segment existing objects: an S3 Batch Operations job invoking the stack's worker (--dry-run: estimate)",
    )
    backfill.add_argument(
        "target", nargs="?", metavar="s3://BUCKET/PREFIX", help="the objects to segment (prefix may be empty)"
    )
    backfill.add_argument(
        "--retry-failed", metavar="JOB_ID", help="a new job over the failed tasks of that job's report"
    )
    backfill.add_argument("--dry-run", action="store_true", help="count the objects and print the estimate; no job")
    backfill.add_argument("--wait", action="store_true", help="follow the job until it ends; print the report's place")
    backfill.add_argument("--stack", default="pointrend-lambda", help="the deployed stack (default: pointrend-lambda)")
    backfill.add_argument("--role-arn", help="the job's role (default: the stack's BatchOperationsRoleArn output)")
    backfill.add_argument("--function-arn", help="the worker (default: the stack's WorkerFunctionArn output)")
    backfill.add_argument("--account-id", help="the job's account (default: the one in the worker's ARN)")
    backfill.add_argument("--report-bucket", help="default: the stack's bucket (InputBucketName output)")
    backfill.add_argument("--report-prefix", help="default: <the stack's OutputPrefix>batch-operations")
    for name in ("masks", "confidence", "classes", "overlay", "cutouts"):
        backfill.add_argument(f"--{name}", help=f"as /segment's {name} (passed as userArguments)")
    backfill.add_argument("--priority", type=int, default=10)
    backfill.add_argument("--seconds-per-image", type=float, help="dry run (default: handler/core/measured.json)")
    backfill.add_argument("--memory-mb", type=int, default=None, help="dry run (default: the stack's WorkerMemorySize)")
    backfill.add_argument(
        "--concurrency", type=int, nargs="+", default=[100, 1000], help="dry run: wall-clock at each (100 1000)"
    )
    backfill.add_argument("--poll-seconds", type=float, default=15.0, help=argparse.SUPPRESS)

    coco = commands.add_parser(
        "export-coco",
        help="result JSON (files, folders, s3://bucket/prefix/) as one COCO instances file, streamed",
    )
    coco.add_argument("sources", nargs="+", metavar="SOURCE", help="a result .json, a folder of them, or s3://B/P/")
    coco.add_argument("--out", type=Path, required=True, help="the COCO file to write, e.g. instances.json")
    coco.add_argument(
        "--predictions",
        action="store_true",
        help="write the COCO.loadRes list (annotations with score) instead of an instances file",
    )
    coco.add_argument(
        "--classes",
        default=None,
        help="the model's class names (comma list or a file, one per line), categories 1..N; "
        "default: the results' model.classes, else COCO's 80 with their real ids",
    )

    test_model = commands.add_parser(
        "make-test-model", help="write a randomly initialised PointRend in the real file format"
    )
    test_model.add_argument("path", type=Path)
    test_model.add_argument("--seed", type=int, default=0)
    kind = test_model.add_mutually_exclusive_group()
    kind.add_argument(
        "--dense",
        action="store_true",
        help="the crowded worst case: 100 objects (PixelLib's per-image cap) on any image at any confidence < 1",
    )
    kind.add_argument(
        "--worst",
        action="store_true",
        help="the memory worst case: every class's boxes as large as the model can make them (each of the 80 classes "
        "has a whole-image box) at confidence < 0.01",
    )
    test_model.add_argument(
        "--backbone", choices=BACKBONE_NAMES, default="resnet50", help="resnet101: PointRend X-101-32x8d-FPN"
    )
    test_model.add_argument(
        "--classes",
        type=_class_list,
        default=None,
        help="a model with these classes (comma-separated) instead of COCO's 80; serve it with SEG_CLASS_NAMES",
    )
    return parser


def _class_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError("give distinct class names, comma-separated")
    return names


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from handler.core.settings import get_settings

    try:  # a setup that cannot work stops here, before the model loads, with what to change
        get_settings()
    except ValidationError as exc:
        for error in exc.errors():
            print(f"error: settings: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    uvicorn.run("handler.api:app", host=args.host, port=args.port, log_level="info")
    return 0


def cmd_segment(args: argparse.Namespace) -> int:
    from handler.cli.files import segment_files
    from handler.cli.segment_video import segment_videos, split_videos
    from handler.core.errors import InvalidRequest
    from handler.engine import RequestOptions

    chosen = {name: getattr(args, name) for name in ("masks", "confidence", "classes", "cutouts")}
    try:  # checked as every other entry point checks them (RequestOptions), before any file is read
        options = RequestOptions.parse({k: v for k, v in chosen.items() if v is not None}, "options", prefix="--")
    except InvalidRequest as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    images, videos = split_videos(args.images)
    report = segment_files(images, args.out, args.format, options, overwrite=args.overwrite, detection_speed=args.speed)
    segment_videos(videos, args, options, report)
    print(report.summary())
    return 0 if not report.failed else 1


def cmd_submit(args: argparse.Namespace) -> int:
    from handler.cli.submit import submit_files

    options = {"masks": args.masks, "confidence": args.confidence, "classes": args.classes, "overlay": args.overlay}
    chosen = {name: value for name, value in options.items() if value is not None}
    report = submit_files(args.api, args.images, args.out, chosen, timeout_s=args.timeout, overwrite=args.overwrite)
    print(report.summary())
    return 0 if not report.failed else 1


def cmd_fetch_model(args: argparse.Namespace) -> int:
    from handler.engine import ChecksumMismatch, DownloadError, fetch_model

    name = weights(args.backbone).file
    args.dest = args.dest or default_model_path(args.backbone)
    try:
        fetched = fetch_model(args.dest, url=args.url, pin_file=args.pin_file, backbone=args.backbone)
    except ChecksumMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            f"The file does not match the sha256 pinned in {args.pin_file}: it was altered on the way, or the pin "
            "is wrong. Change the pin only after checking the file some other way (docs/deploy.md).",
            file=sys.stderr,
        )
        return 1
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            f"No internet? Place {name} (PixelLib release 0.2.0) at "
            f"{args.dest} yourself, or set SEG_MODEL_PATH to it. To try the service without trained "
            "weights: python -m handler make-test-model .cache/models/test_model.pkl and "
            "SEG_MODEL_PATH=.cache/models/test_model.pkl (random weights: it will find almost nothing).",
            file=sys.stderr,
        )
        return 1
    if not fetched.pinned_now:
        print(f"{fetched.path}: sha256 {fetched.sha256} matches the pin in {fetched.pin_file}")
        return 0
    print(
        f"{fetched.path}: sha256 {fetched.sha256}\n"
        f"No pin existed, so this download was TRUSTED ON FIRST USE and its sha256 written to {fetched.pin_file}\n"
        "(the image build checks the weights against it). To verify it, download the file again from another "
        "network or machine and compare:\n"
        f"  python -m handler fetch-model --backbone {args.backbone} --dest /tmp/second.pkl --pin-file "
        f"{fetched.pin_file}  (fails on a mismatch)\n"
        f"  or compare the output of: sha256sum {name}"
    )
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from handler.cli.backfill import Clients, run

    return run(args, Clients.from_environment())


def cmd_export_coco(args: argparse.Namespace) -> int:
    from handler.cli.export_coco import run

    return run(args.sources, args.out, args.classes, args.predictions)


def cmd_make_test_model(args: argparse.Namespace) -> int:
    from handler.engine import make_test_model

    path = make_test_model(
        args.path, seed=args.seed, dense=args.dense, worst=args.worst, backbone=args.backbone, classes=args.classes
    )
    report = {"path": str(path), "bytes": path.stat().st_size, "seed": args.seed, "dense": args.dense}
    report |= {"worst": args.worst, "backbone": args.backbone, "classes": args.classes or "coco"}
    print(json.dumps(report))
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "segment": cmd_segment,
    "submit": cmd_submit,
    "fetch-model": cmd_fetch_model,
    "backfill": cmd_backfill,
    "export-coco": cmd_export_coco,
    "make-test-model": cmd_make_test_model,
}
