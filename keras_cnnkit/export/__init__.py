"""``cnnkit-export``: the command line that exports a Keras model file to ONNX.

``cnnkit-export MODEL -o OUT.onnx [--via auto|ir|tf2onnx] [--opset N] [--dynamic-spatial]
[--no-verify] [--tolerance T] [--force] [--budget NAME=N]``

Two exporters:

* **ir** (:mod:`.direct`, :mod:`.onnx_emit`): the model file is read statically (never
  built as a Keras model; within the budgets), its graph IR written as ONNX with the
  stored weights read one at a time.  NHWC at the graph edges, NCHW inside; grouped and
  depthwise convolutions as one ``Conv`` with ``group``; dynamic batch (``"batch"``),
  and dynamic spatial dims with ``--dynamic-spatial`` (or when the model leaves them
  unknown); weights over 2 GiB go to ``OUT.onnx.data``.  Needs neither TensorFlow nor
  (with ``--no-verify``) Keras.
* **tf2onnx** (:mod:`keras_cnnkit.onnx_convert`, whose public names are re-exported
  here): the model is loaded in safe mode after the static check
  (:mod:`keras_cnnkit.analysis.frontends.keras_gate`) and traced with TensorFlow.

``--via auto`` (the default) takes the IR exporter and falls back to tf2onnx for a model
it cannot write (an opaque layer, an op kind or attribute with no ONNX form here), saying
so in one line (on stderr, after the export; if tf2onnx fails too, the one error line
names both); ``--via ir`` makes that exit 2 naming the layer and its kind.
Verification runs the file in onnxruntime and the model in Keras (any backend for the IR
path; layer by layer where it can, :mod:`.layerwise`) on the same seeded random input
before the file is moved into place.  The output
is never the model file, not even with ``--force`` (nor a link to it).  Exit status 0 on
success, 2 on bad input (a missing, unreadable, hostile or over-budget model file; an
unwritable or existing output without ``--force``; failed conversion or verification)
with a one-line message; nothing is written then.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from keras_cnnkit import console, progress
from keras_cnnkit.budgets import using
from keras_cnnkit.errors import CnnkitError, ModelFileError
from keras_cnnkit.export.onnx_emit import MIN_OPSET, NotEmittable
from keras_cnnkit.io_guard import check_output_path, load_keras_model, require_regular_file
from keras_cnnkit.onnx_convert import (DEFAULT_OPSET, DEFAULT_TOLERANCE, VERIFY_BATCH,
                                       VERIFY_SIZE, ExportError, ExportResult, export_onnx,
                                       VerificationInputError, max_abs_difference,
                                       split_group_convs, to_onnx, verification_inputs)

__all__ = ["DEFAULT_OPSET", "DEFAULT_TOLERANCE", "VERIFY_BATCH", "VERIFY_SIZE", "ExportError",
           "ExportResult", "export_onnx", "main", "max_abs_difference", "split_group_convs",
           "to_onnx", "verification_inputs"]

PROG = "cnnkit-export"
#: What the tf2onnx path needs (the IR path needs ``onnx``, and Keras and onnxruntime to
#: verify; it says so in one line where one is missing).
TF2ONNX_REQUIRES = ("tensorflow", "tf2onnx", "onnx", "onnxruntime")


# --- command line ----------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnkit-export",
        description="Export a Keras model file (.keras, .h5) to ONNX, directly from its "
                    "graph and stored weights (or through tf2onnx), and check it against "
                    "Keras with onnxruntime.",
        epilog="Exit codes: 0 exported; 2 bad input, conversion or verification failure.")
    parser.add_argument("model", help="the Keras model file (.keras or .h5)")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--via", choices=("auto", "ir", "tf2onnx"), default="auto",
                        help="exporter: 'ir' writes ONNX from the model file's graph and "
                             "stored weights (no TensorFlow, bounded memory); 'tf2onnx' "
                             "traces the Keras model; 'auto' (default) takes 'ir' and falls "
                             "back to tf2onnx for what it cannot write")
    parser.add_argument("--dynamic-spatial", action="store_true",
                        help="IR exporter: symbolic spatial input dims (the batch is "
                             "always dynamic)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime-vs-Keras comparison (and importing "
                             "Keras, with the IR exporter)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"relative tolerance of the comparison (default "
                             f"{DEFAULT_TOLERANCE:g})")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")
    parser.add_argument("--budget", action="append", default=[], metavar="NAME=VALUE",
                        help="raise (or lower) a budget of the static check made before "
                             "Keras loads the model, e.g. max-nodes=500000 (also read "
                             "from [tool.cnnkit-lint.budgets]); see the README's Safety "
                             "section")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress meter")
    return parser


def _budgets(args) -> dict:
    """The budgets of the run: the configuration's, then the ``--budget`` flags."""
    from keras_cnnkit.budgets import parse_assignment
    from keras_cnnkit.lint.config import load_settings

    budgets = dict(load_settings().budgets)
    budgets.update(parse_assignment(text) for text in args.budget)
    return budgets


def _export_ir(args, graph, meter) -> str:
    """Write (and verify) the ONNX file from ``graph`` and the stored weights; the line
    to print."""
    from keras_cnnkit.export.direct import export_file
    if not args.no_verify:        # Keras checks the file: imported without TF's start-up lines
        meter.step("importing Keras to verify")
        try:
            console.import_keras()
        except ImportError:
            pass   # verification says so in one line, naming --no-verify
    meter.step("writing ONNX" + ("" if args.no_verify else " and verifying it"))
    result = export_file(args.model, args.output, opset=args.opset,
                         verify=not args.no_verify, tolerance=args.tolerance,
                         force=args.force, dynamic_spatial=args.dynamic_spatial,
                         graph=graph)
    check = ("not verified" if result.max_abs_diff is None
             else f"onnxruntime vs Keras ({result.verified_by}) max |diff| "
                  f"{result.max_abs_diff:.3g}")
    data = f"; weights in {result.data_path}" if result.data_path else ""
    return (f"wrote {args.output} (opset {result.opset}, {result.size_bytes:,} bytes, IR "
            f"exporter: {result.nodes} nodes, {result.group_convs} grouped convs{data}; "
            f"{check})")


def _export_tf2onnx(args, inputs) -> str:
    """Load the model in Keras and convert it with tf2onnx; the line to print."""
    from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras
    console.require(PROG, TF2ONNX_REQUIRES)   # a missing extra is named before Keras loads
    check_before_keras(args.model, "cnnkit-export")   # before Keras sees it
    with progress.Progress(5 if not args.no_verify else 4, PROG) as meter:
        meter.step("importing TensorFlow")
        console.import_keras()
        meter.step("loading the model")
        model = load_keras_model(args.model)
        try:
            result = export_onnx(model, args.output, opset=args.opset,
                                 verify=not args.no_verify, tolerance=args.tolerance,
                                 overwrite=args.force, inputs=inputs, progress=meter)
        except VerificationInputError as exc:   # its declared input: the file is named
            raise ModelFileError(args.model, str(exc)) from None
    check = ("not verified" if result.max_abs_diff is None
             else f"onnxruntime vs Keras max |diff| {result.max_abs_diff:.3g}")
    split = (f"; grouped convs in split form: {', '.join(result.split_group_convs)}"
             if result.split_group_convs else "")
    return (f"wrote {args.output} (opset {result.opset}, {result.size_bytes:,} bytes, "
            f"tf2onnx; {check}{split})")


def _export(args) -> str:
    """Check the paths, then export through the IR (falling back to tf2onnx for what it
    cannot write, with a line on stderr saying so) or tf2onnx; the line to print."""
    inputs = [args.model]
    require_regular_file(args.model)     # bad paths fail before anything heavy loads
    check_output_path(args.output, inputs, force=args.force)
    with using(_budgets(args)):
        via = args.via
        if via == "ir" and args.opset < MIN_OPSET:
            raise CnnkitError(f"the IR exporter writes opset {MIN_OPSET} or later")
        if via == "auto" and args.opset < MIN_OPSET:
            via = "tf2onnx"
        fallback = None
        if via != "tf2onnx":
            console.require(PROG, ("onnx",))   # the one package the IR exporter needs
            from keras_cnnkit.export.direct import read_ir
            try:
                with progress.Progress(2 if args.no_verify else 3, PROG) as meter:
                    meter.step("reading the model file")
                    return _export_ir(args, read_ir(args.model), meter)
            except NotEmittable as exc:
                if via == "ir":   # a layer of this file: the file is named
                    raise ModelFileError(args.model, str(exc)) from None
                fallback = exc
        try:
            line = _export_tf2onnx(args, inputs)
        except CnnkitError as exc:
            if fallback is None:
                raise
            raise CnnkitError(f"{exc} (tf2onnx was the fallback: {fallback})") from exc
        if fallback is not None:
            print(f"{PROG}: {fallback}; exported through tf2onnx instead", file=sys.stderr)
        return line


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``cnnkit-export`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    progress.set_quiet(args.quiet)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        print(_export(args))
    except CnnkitError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        missing = console.missing_dependency(exc, PROG)
        if missing is None:
            raise
        print(f"{PROG}: error: {missing}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
