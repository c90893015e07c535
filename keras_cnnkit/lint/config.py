"""``cnnkit-lint`` settings: defaults, configuration files, command-line overrides.

Settings are read, like ruff and pylint do, from the first of these found in the
current directory or, failing that, its nearest parent that has one:

1. ``pyproject.toml``, table ``[tool.cnnkit-lint]``;
2. ``setup.cfg``, section ``[cnnkit-lint]``;
3. ``tox.ini``, section ``[cnnkit-lint]``.

A file without the table or section is skipped.  Only regular files are read, and at most
:data:`~keras_cnnkit.io_guard.MAX_TEXT_BYTES` of them (:mod:`keras_cnnkit.io_guard`).
``--config FILE`` names the file instead (any of the three kinds, by suffix: ``.toml`` is
TOML, anything else INI); ``--no-config`` reads none.  Flags given on the command line
override the file.

Keys (TOML spelling; in INI, lists are comma- or newline-separated)::

    [tool.cnnkit-lint]
    select = ["CNK1", "large-kernel"]     # codes, code prefixes, symbols or "ALL"
    ignore = ["tensor-core-alignment"]
    fail-on = "warning"                   # info | warning | error
    format = "text"                       # text | json | sarif | github
    input-shape = [224, 224, 3]           # or "224x224"; fills unknown dims only
    baseline = "cnnkit-baseline.json"     # relative to this file
    min-impact = 0.01                     # or "1%"; 0 reports every finding
    device-profile = "cpu-generic"        # a name, or a .json path relative to this
                                          # file; default: the calibrated local profile
    [tool.cnnkit-lint.per-layer-ignores]
    "block5_*" = ["missing-bottleneck"]   # fnmatch glob on the layer name
    "stem*" = ["ALL"]
    [tool.cnnkit-lint.budgets]            # for giant models (keras_cnnkit.budgets)
    max-nodes = 500_000

In INI, ``per-layer-ignores`` holds one ``glob: rule, rule`` per line, and ``budgets``
one ``name: value`` per line.
"""
from __future__ import annotations

import configparser
import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Iterable, Optional

from keras_cnnkit.analysis.input_shape import InputShape
from keras_cnnkit.budgets import parse_assignment, parse_budgets
from keras_cnnkit.errors import ConfigError
from keras_cnnkit.io_guard import MAX_TEXT_BYTES, read_text_file, require_regular_file
from keras_cnnkit.lint.findings import Severity
from keras_cnnkit.lint.selectors import ALL, selector_matches
from keras_cnnkit.lint.sites import DEFAULT_MIN_IMPACT

TOOL_NAME = "cnnkit-lint"
#: Spatial size assumed for inputs whose height/width (etc.) the model leaves open.
DEFAULT_SPATIAL = 224
FORMATS = ("text", "json", "sarif", "github")
#: Severity at or above which findings make the exit status 1.
DEFAULT_FAIL_ON = Severity.WARNING
_KEYS = ("select", "ignore", "extend-select", "extend-ignore", "fail-on", "format",
         "input-shape", "baseline", "per-layer-ignores", "budgets", "min-impact",
         "device-profile")


@dataclasses.dataclass
class Settings:
    """Resolved linter settings.

    Attributes:
        select: rule selectors to run (codes, code prefixes, symbols, ``"ALL"``);
            ``None`` means the default set (every registered rule).
        ignore: rule selectors to drop after ``select``.
        fail_on: lowest severity that makes the exit status 1.
        format: output format, one of :data:`FORMATS`.
        input_shape: dims for inputs of unknown size (see :func:`parse_input_shape`); from
            a configuration file, a default that never overrides a model's declared dims.
        baseline: path of a baseline file of accepted findings, or ``None``.
        per_layer_ignores: ``(glob, selectors)`` pairs; a finding on a layer matching
            ``glob`` is dropped when one of ``selectors`` names its rule.
        budgets: the budgets changed from their defaults (``{"max-nodes": 500000}``;
            see :mod:`keras_cnnkit.budgets`).
        min_impact: sites saving less than this share of both the model's FLOPs and
            its parameters are not reported, only counted (0: report all).
        device_profile: the device profile name or path of the predicted speed-ups
            (``None``: the calibrated local profile if any, else ``cpu-generic``).
        source: the configuration file the settings came from, if any.
    """

    select: Optional[list] = None
    ignore: list = dataclasses.field(default_factory=list)
    fail_on: Severity = DEFAULT_FAIL_ON
    format: str = "text"
    input_shape: Optional[tuple] = None
    baseline: Optional[str] = None
    per_layer_ignores: list = dataclasses.field(default_factory=list)
    budgets: dict = dataclasses.field(default_factory=dict)
    min_impact: float = DEFAULT_MIN_IMPACT
    device_profile: Optional[str] = None
    source: Optional[str] = None


def parse_min_impact(value: Any, source: str = "command line") -> float:
    """``"0.01"``, ``0.01`` or ``"1%"`` → ``0.01``: a share between 0 and 1."""
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        share = -1.0
    if isinstance(value, bool) or not 0.0 <= share <= 1.0:
        raise ConfigError(source, f"min-impact {value!r}: expected a fraction from 0 to 1 "
                                  "(0.01) or a percentage (1%)")
    return share


def parse_input_shape(text: Any, source: str = "command line",
                      default: bool = False) -> InputShape:
    """``"224x224"``, ``"299,299,3"`` or ``[224, 224]`` → an :class:`InputShape`.

    ``default``: the value comes from the configuration file ``source``; it then fills
    only the dims a model leaves unknown (see :mod:`keras_cnnkit.analysis.input_shape`).
    """
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        items = [p for p in re.split(r"[x×,\s]+", str(text).strip()) if p]
    dims = []
    for item in items:
        try:
            value = int(item)
        except (TypeError, ValueError):
            value = 0
        if isinstance(item, bool) or value < 1 or value > 1_000_000:
            raise ConfigError(source, f"input-shape {text!r}: dims must be positive "
                                      "integers, e.g. 224x224 or 224,224,3")
        dims.append(value)
    if not dims:
        raise ConfigError(source, "input-shape is empty")
    return InputShape(dims, source=source if default else "--input-shape", default=default)


def _as_list(value: Any, key: str, source: str) -> list:
    if isinstance(value, str):
        return [p for p in re.split(r"[,\s]+", value) if p]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(source, f"'{key}' must be a list of strings")


def _per_layer(value: Any, source: str) -> list:
    pairs = []
    if isinstance(value, dict):
        for glob, selectors in value.items():
            pairs.append((str(glob), _as_list(selectors, "per-layer-ignores", source)))
        return pairs
    if isinstance(value, str):
        for line in value.splitlines():
            if not line.strip():
                continue
            glob, sep, selectors = line.rpartition(":")
            if not sep or not glob.strip():
                raise ConfigError(source, f"per-layer-ignores line {line.strip()!r}: expected "
                                          "'glob: rule, rule'")
            pairs.append((glob.strip(), _as_list(selectors, "per-layer-ignores", source)))
        return pairs
    raise ConfigError(source, "'per-layer-ignores' must map layer-name globs to rule lists")


def parse_budget_table(value: Any, source: str) -> dict:
    """The ``budgets`` setting: a TOML table, or INI text of ``name: value`` lines →
    ``{"max-nodes": 500000}`` (each name and value checked)."""
    if isinstance(value, str):
        pairs = [parse_assignment(line.strip(), source) for line in value.splitlines()
                 if line.strip()]
        return dict(pairs)
    if not isinstance(value, dict):
        raise ConfigError(source, "'budgets' must map budget names to positive integers")
    parsed = parse_budgets(value, source)
    return {key: parsed.to_dict()[key.replace("_", "-")] for key in
            (str(k).strip().replace("_", "-") for k in value)}


def settings_from_mapping(values: dict, source: str, base_dir: Optional[Path] = None
                          ) -> Settings:
    """Build :class:`Settings` from a config table; unknown keys are an error."""
    settings = Settings(source=source)
    for key, value in values.items():
        norm = key.replace("_", "-")
        if norm not in _KEYS:
            raise ConfigError(source, f"unknown setting {key!r} (known: {', '.join(_KEYS)})")
        if norm == "select":
            settings.select = _as_list(value, norm, source)
        elif norm == "extend-select":
            settings.select = (settings.select or [ALL]) + _as_list(value, norm, source)
        elif norm in ("ignore", "extend-ignore"):
            settings.ignore += _as_list(value, norm, source)
        elif norm == "fail-on":
            settings.fail_on = parse_severity(value, source)
        elif norm == "format":
            settings.format = parse_format(value, source)
        elif norm == "input-shape":
            settings.input_shape = parse_input_shape(value, source, default=True)
        elif norm == "min-impact":
            settings.min_impact = parse_min_impact(value, source)
        elif norm == "device-profile":
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(source, "'device-profile' must be a profile name or path")
            value = value.strip()
            settings.device_profile = (str(base_dir / value)
                                       if base_dir and value.endswith(".json") else value)
        elif norm == "baseline":
            if not isinstance(value, str):
                raise ConfigError(source, "'baseline' must be a path")
            settings.baseline = str((base_dir / value) if base_dir else Path(value))
        elif norm == "budgets":
            settings.budgets = parse_budget_table(value, source)
        else:
            settings.per_layer_ignores = _per_layer(value, source)
    return settings


def parse_severity(value: Any, source: str = "command line") -> Severity:
    """``"warning"`` → :attr:`Severity.WARNING`; :class:`ConfigError` otherwise."""
    try:
        return Severity.parse(str(value))
    except ValueError as exc:
        raise ConfigError(source, f"fail-on: {exc}") from None


def parse_format(value: Any, source: str = "command line") -> str:
    """Validate an output format name."""
    if value not in FORMATS:
        raise ConfigError(source, f"unknown format {value!r} (allowed: {', '.join(FORMATS)})")
    return str(value)


def _config_text(path: Path) -> str:
    """The text of a configuration file: a regular file, read up to the size cap."""
    return read_text_file(path, MAX_TEXT_BYTES, "configuration file", ConfigError)


def _read_toml(path: Path) -> Optional[dict]:
    import tomllib

    text = _config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"cannot read TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(str(path), "cannot read TOML: nested too deeply") from None
    table = data.get("tool", {}).get(TOOL_NAME)
    if table is not None and not isinstance(table, dict):
        raise ConfigError(str(path), f"[tool.{TOOL_NAME}] must be a table")
    return table


def _read_ini(path: Path) -> Optional[dict]:
    parser = configparser.ConfigParser(interpolation=None)
    text = _config_text(path)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(str(path), f"cannot read INI: {' '.join(str(exc).split())}") \
            from None
    if not parser.has_section(TOOL_NAME):
        return None
    return dict(parser.items(TOOL_NAME))


def read_config_file(path) -> Optional[Settings]:
    """Settings from one file, or ``None`` when it has no cnnkit-lint table/section."""
    path = Path(path)
    table = _read_toml(path) if path.suffix == ".toml" else _read_ini(path)
    if table is None:
        return None
    return settings_from_mapping(table, str(path), path.parent)


def find_config_file(start: Optional[Path] = None) -> Optional[Path]:
    """The nearest file, from ``start`` (default: the CWD) upward, with our settings."""
    here = Path(start or os.getcwd()).resolve()
    for directory in (here, *here.parents):
        for name in ("pyproject.toml", "setup.cfg", "tox.ini"):
            candidate = directory / name
            if candidate.is_file() and read_config_file(candidate) is not None:
                return candidate
    return None


def load_settings(config_path=None, isolated: bool = False) -> Settings:
    """The file settings: from ``config_path``, else the discovered file, else defaults."""
    if isolated:
        return Settings()
    if config_path is not None:
        require_regular_file(config_path, "configuration file", ConfigError)
        settings = read_config_file(config_path)
        if settings is None:
            raise ConfigError(str(config_path), f"no [tool.{TOOL_NAME}] table or "
                                                f"[{TOOL_NAME}] section")
        return settings
    found = find_config_file()
    return read_config_file(found) if found else Settings()


def check_selectors(selectors: Iterable[str], rules: Iterable[tuple], source: str) -> None:
    """Raise :class:`ConfigError` for a selector that names no known rule."""
    rules = list(rules)
    for sel in selectors:
        if not any(selector_matches(sel, code, symbol) for code, symbol in rules):
            raise ConfigError(source, f"unknown rule {sel!r} (see --list-rules)")
