"""Baselines: a file of accepted findings that later runs do not report again.

A finding is identified by the model file, its rule and its layer, never by its
position or message, so a baseline survives edits elsewhere in the model and changes
to the wording or the savings figures.  Rules match by symbol (the stable public name)
or by code.  A site finding (:mod:`keras_cnnkit.lint.sites`) is written under its
recommended (first) alternative, and matches an entry naming any of its alternatives,
so that a baseline survives a change of recommendation (another device profile, a
benchmark) and baselines written before findings were grouped into sites.  Model paths
are stored relative to the baseline file's directory, in POSIX form, so a committed
baseline works from any checkout and any working directory.

Format (JSON, sorted, one entry per accepted finding; a repeated key is stored as many
times as it occurs)::

    {"schema_version": 1, "tool": "cnnkit-lint",
     "findings": [{"file": "models/net.h5", "code": "CNK103",
                   "symbol": "missing-bottleneck", "layer": "block5_conv1"}]}
"""
from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Iterable

from keras_cnnkit.errors import ConfigError
from keras_cnnkit.io_guard import MAX_TEXT_BYTES, read_text_file, write_atomic
from keras_cnnkit.lint.sites import alternatives_of

SCHEMA_VERSION = 1


def _file_key(model_path: str, base_dir: Path) -> str:
    """``model_path`` relative to ``base_dir`` (POSIX), or absolute if on another drive."""
    absolute = Path(os.path.abspath(model_path))
    try:
        return Path(os.path.relpath(absolute, base_dir)).as_posix()
    except ValueError:
        return absolute.as_posix()


class Baseline:
    """Accepted findings, matched by (model file, rule, layer) with multiplicity."""

    def __init__(self, entries: Iterable[dict], base_dir: Path):
        self.base_dir = Path(base_dir)
        self._entries = collections.defaultdict(list)  # (file, layer) -> [(symbol, code)]
        for entry in entries:
            self._entries[(entry["file"], entry["layer"])].append(
                (entry.get("symbol"), entry.get("code")))

    @classmethod
    def load(cls, path) -> "Baseline":
        """Read a baseline file; :class:`ConfigError` when it is missing or malformed."""
        path = Path(path)
        text = read_text_file(path, MAX_TEXT_BYTES, "baseline file", ConfigError)
        try:
            data = json.loads(text)
        except RecursionError:
            raise ConfigError(str(path), "cannot read baseline: JSON nested too deeply") \
                from None
        except ValueError as exc:
            raise ConfigError(str(path), f"cannot read baseline: {exc}") from None
        entries = data.get("findings") if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("file"), str)
                and isinstance(e.get("layer"), str)
                and (isinstance(e.get("symbol"), str) or isinstance(e.get("code"), str))
                for e in entries):
            raise ConfigError(str(path), "not a cnnkit-lint baseline (expected "
                                         "{'findings': [{'file', 'symbol', 'layer'}...]})")
        return cls(entries, path.resolve().parent)

    def filter(self, model_path: str, findings: list) -> tuple:
        """``(new, accepted)``: the findings not in the baseline, and those that are.

        Each baseline entry accepts one finding, so a second occurrence of the same
        (file, rule, layer) beyond what the baseline holds is reported as new.
        """
        file_key = _file_key(model_path, self.base_dir)
        unused = {key: list(rules) for key, rules in self._entries.items()
                  if key[0] == file_key}
        new, accepted = [], []
        for finding in findings:
            match = None
            for alt in alternatives_of(finding):
                rules = unused.get((file_key, alt.layer), [])
                match = next((i for i, (symbol, code) in enumerate(rules)
                              if symbol == alt.symbol or code == alt.code), None)
                if match is not None:
                    del rules[match]
                    break
            (new if match is None else accepted).append(finding)
        return new, accepted


def write_baseline(path, results: Iterable[tuple], inputs: Iterable = ()) -> int:
    """Write the baseline of ``results`` (``(model_path, findings)`` pairs) atomically.

    ``path`` may be none of ``inputs`` nor of the model files (see
    :func:`keras_cnnkit.io_guard.write_atomic`).  Returns the number of entries written.
    """
    path = Path(path)
    base_dir = path.resolve().parent
    entries, models = [], []
    for model_path, findings in results:
        models.append(model_path)
        file_key = _file_key(model_path, base_dir)
        for finding in findings:
            entries.append({"file": file_key, "code": finding.code, "symbol": finding.symbol,
                            "layer": finding.layer})
    entries.sort(key=lambda e: (e["file"], e["code"], e["layer"]))
    data = {"schema_version": SCHEMA_VERSION, "tool": "cnnkit-lint", "findings": entries}
    write_atomic(path, json.dumps(data, indent=2) + "\n", [*models, *inputs], force=True)
    return len(entries)
