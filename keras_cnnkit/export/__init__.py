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
``--force``; failed conversion or verification) with a one-line message.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from keras_cnnkit.budgets import using
from keras_cnnkit.errors import CnnkitError
from keras_cnnkit.io_guard import check_output_path, load_keras_model
from keras_cnnkit.onnx_convert import (DEFAULT_OPSET, DEFAULT_TOLERANCE, VERIFY_BATCH,
                                       VERIFY_SIZE, ExportError, ExportResult, export_onnx,
                                       max_abs_difference, split_group_convs, to_onnx,
                                       verification_inputs)

__all__ = ["DEFAULT_OPSET", "DEFAULT_TOLERANCE", "VERIFY_BATCH", "VERIFY_SIZE", "ExportError",
           "ExportResult", "export_onnx", "main", "max_abs_difference", "split_group_convs",
           "to_onnx", "verification_inputs"]


# --- command line ----------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnkit-export",
        description="Export a Keras model file (.keras, .h5) to ONNX through tf2onnx and "
                    "check it against Keras with onnxruntime.",
        epilog="Exit codes: 0 exported; 2 bad input, conversion or verification failure.")
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
    return parser


def _budgets(args) -> dict:
    """The budgets of the run: the configuration's, then the ``--budget`` flags."""
    from keras_cnnkit.budgets import parse_assignment
    from keras_cnnkit.lint.config import load_settings

    budgets = dict(load_settings().budgets)
    budgets.update(parse_assignment(text) for text in args.budget)
    return budgets


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``cnnkit-export`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        inputs = [args.model]
        check_output_path(args.output, inputs, force=args.force)
        with using(_budgets(args)):
            from keras_cnnkit.analysis.frontends.keras_gate import check_before_keras
            check_before_keras(args.model, "cnnkit-export")   # before Keras sees it
        model = load_keras_model(args.model)
        result = export_onnx(model, args.output, opset=args.opset, verify=not args.no_verify,
                             tolerance=args.tolerance, overwrite=args.force, inputs=inputs)
    except CnnkitError as exc:
        print(f"cnnkit-export: error: {exc}", file=sys.stderr)
        return 2
    check = ("not verified" if result.max_abs_diff is None
             else f"onnxruntime vs Keras max |diff| {result.max_abs_diff:.3g}")
    split = (f"; grouped convs in split form: {', '.join(result.split_group_convs)}"
             if result.split_group_convs else "")
    print(f"wrote {args.output} (opset {result.opset}, {result.size_bytes:,} bytes; "
          f"{check}{split})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
