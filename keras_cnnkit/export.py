"""``cnnkit-export``: the command line that exports a Keras model file to ONNX.

``cnnkit-export MODEL -o OUT.onnx [--opset N] [--no-verify] [--force] [--budget NAME=N]``
reads ``MODEL`` statically within the budgets first (a file over budget never reaches
Keras; :mod:`keras_cnnkit.analysis.frontends.keras_gate`), then loads it in safe mode
(:func:`keras_cnnkit.io_guard.load_keras_model`: Lambda bytecode is never deserialised;
``keras_cnnkit`` layers are registered first), converts and verifies it
(:mod:`keras_cnnkit.onnx_convert`, whose public names are re-exported here) and writes
``OUT.onnx`` atomically.  The output is never the model file, not even with ``--force``
(nor a link to it).  Exit status 0 on success, 2 on bad input (a missing, unreadable or
non-regular model file; a file over a budget; an unwritable or existing output without
``--force``; failed conversion or verification) or a missing optional dependency
(TensorFlow, tf2onnx, onnx, onnxruntime: the message names the extra to install), with a
one-line message.  A
progress meter goes to stderr when it is a terminal (not with ``-q``); TensorFlow's C++
start-up lines are kept off it (:mod:`keras_cnnkit.console`).
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from keras_cnnkit import console, progress
from keras_cnnkit.budgets import using
from keras_cnnkit.errors import CnnkitError
from keras_cnnkit.io_guard import check_output_path, load_keras_model, require_regular_file
from keras_cnnkit.onnx_convert import (DEFAULT_OPSET, DEFAULT_TOLERANCE, VERIFY_BATCH,
                                       VERIFY_SIZE, ExportError, ExportResult, export_onnx,
                                       max_abs_difference, split_group_convs, to_onnx,
                                       verification_inputs)

PROG = "cnnkit-export"
#: What the command imports: TensorFlow (the Keras backend tf2onnx traces) and the
#: ``export`` extra.
REQUIRES = ("tensorflow", "tf2onnx", "onnx", "onnxruntime")

__all__ = ["DEFAULT_OPSET", "DEFAULT_TOLERANCE", "VERIFY_BATCH", "VERIFY_SIZE", "ExportError",
           "ExportResult", "export_onnx", "main", "max_abs_difference", "split_group_convs",
           "to_onnx", "verification_inputs"]


# --- command line ----------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Export a Keras model file (.keras, .h5) to ONNX through tf2onnx and "
                    "check it against Keras with onnxruntime.  Needs the tensorflow and "
                    'export extras: pip install "keras-cnnkit[tensorflow,export]".',
        epilog="Exit codes: 0 exported; 2 bad input, conversion or verification failure, "
               "or a missing optional dependency.")
    parser.add_argument("model", help="the Keras model file (.keras or .h5)")
    parser.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime-vs-Keras comparison")
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


def _export(args) -> str:
    """Check, load, convert, verify and write; the line to print."""
    inputs = [args.model]
    require_regular_file(args.model)     # bad paths fail before TensorFlow loads
    check_output_path(args.output, inputs, force=args.force)
    console.require(PROG, REQUIRES)      # a missing extra is named before the file is read
    with using(_budgets(args)):
        from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras
        check_before_keras(args.model, "cnnkit-export")   # before Keras sees it
    with progress.Progress(5 if not args.no_verify else 4, PROG) as meter:
        meter.step("importing TensorFlow")
        console.import_keras()
        meter.step("loading the model")
        model = load_keras_model(args.model)
        result = export_onnx(model, args.output, opset=args.opset, verify=not args.no_verify,
                             tolerance=args.tolerance, overwrite=args.force, inputs=inputs,
                             progress=meter)
    check = ("not verified" if result.max_abs_diff is None
             else f"onnxruntime vs Keras max |diff| {result.max_abs_diff:.3g}")
    split = (f"; grouped convs in split form: {', '.join(result.split_group_convs)}"
             if result.split_group_convs else "")
    return (f"wrote {args.output} (opset {result.opset}, {result.size_bytes:,} bytes; "
            f"{check}{split})")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``cnnkit-export`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    progress.set_quiet(args.quiet)
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
