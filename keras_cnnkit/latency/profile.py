"""Device profiles: the fitted figures the latency model predicts with, as small JSON files.

A profile describes one device running one Keras backend in one dtype.  The packaged
profiles live in ``keras_cnnkit/latency/profiles/<name>.json``; ``calibrate()`` writes a
profile of the local machine to the user's cache directory (:func:`cache_dir`), named
``local`` unless told otherwise.

The format (``"format": 1``)::

    {
      "format": 1,
      "name": "h100-jax-tf32",
      "device": {"kind": "gpu", "name": "NVIDIA H100 80GB HBM3"},
      "backend": "jax", "compile": "jit", "dtype": "float32", "dtype_bytes": 4,
      "math": "tf32", "cpu_threads": null, "date": "2026-11-30",
      "peak_flops": 4.947e14,        # FLOP/s the efficiencies are relative to
      "bandwidth": 3.35e12,          # bytes/s likewise
      "peak_source": "spec sheet (dense TF32 tensor core, HBM3)",
      "call_overhead_ms": 0.05,      # one standalone compiled call (dispatch + sync)
      "depth_norm": 2.0,             # how the throughput and depth terms combine
      "fusion": {"after_compute": 1.0, "after_elementwise": 0.0},
      "classes": {"conv": {"compute_efficiency": 0.4, "memory_efficiency": 0.5,
                           "launch_ms": 0.005, "fitted": true}, ...},
      "fit": {...},                  # provenance: source files, split, method, cases
      "errors": {...},               # measured error figures (held-out and training)
      "notes": "..."
    }

A node of class ``c`` takes ``launch_ms[c] + max(FLOPs / (peak_flops ·
compute_efficiency[c]), bytes / (bandwidth · memory_efficiency[c]))``, with a depth term
on a GPU; see :mod:`keras_cnnkit.latency.model`.  Only the products ``peak · efficiency`` matter, so
for a CPU, whose peak is not read from a spec sheet, ``peak_flops`` and ``bandwidth``
are the best fitted rates of any class (``peak_source`` says so) and the efficiencies
are relative to them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional

from keras_cnnkit.io_guard import read_text_file, write_atomic
from keras_cnnkit.latency.classes import LATENCY_CLASSES

#: The profile file format this module reads and writes.
FORMAT = 1
#: The name ``calibrate()`` gives the local machine's profile.
LOCAL = "local"
#: The profile used when no calibrated one exists.
GENERIC_CPU = "cpu-generic"

_PACKAGED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
#: Largest profile file read, in bytes (the packaged ones are under 10 KB).
MAX_PROFILE_BYTES = 2 ** 20


class ProfileError(ValueError):
    """A profile cannot be found or is malformed."""


@dataclasses.dataclass
class ClassParams:
    """The fitted figures of one latency class.

    Attributes:
        compute_efficiency: the share of ``peak_flops`` its kernels reach.
        memory_efficiency: the share of ``bandwidth`` its kernels reach.
        launch_ms: the fixed cost per kernel (launch, scheduling, small-work floor).
        depth_rate: FLOP/s at which one output element's reduction proceeds when too
            few outputs are computed to fill the device: the kernel takes at least
            ``depth / depth_rate``, ``depth`` being its FLOPs per output element
            (``None``: no such floor).
        taps_exponent: for ``conv`` only, a kernel size not in ``kernel_factors``:
            compute efficiency scales by ``(taps / 9) ** -taps_exponent`` (``taps``: the
            kernel's size, 9 for 3×3), and so does the depth rate unless
            ``depth_taps_exponent`` is set.  Fitted, it is the power law closest to the
            fitted ``kernel_factors``: what predicts a kernel size nothing measured.
        depth_taps_exponent: the same law for the depth rate (``None``: ``taps_exponent``).
        kernel_factors: for ``conv`` only: kernel size (``"5x5"``; ``"1x7"`` for 1×7 and 7×1) →
            ``{"compute": a, "depth": b}``, the factors on compute efficiency and on depth
            rate of that size, fitted where the measurements hold it.  Libraries pick an
            algorithm per kernel size (Winograd for 3×3 and 5×5, implicit GEMM for
            others), so one smooth law in the number of taps does not fit them all: on
            the H100 a 5×5 conv ran at up to twice the FLOP rate of a 7×7 one of the
            same shape, and a 7×7 one's time at batch 1 followed its reduction length,
            not its FLOPs.
        channel_tile: the output channels (per group; a dense layer's units) one tile of
            the kernel computes: with fewer, the tile is partly idle and the compute
            efficiency scales by ``min(1, channels / channel_tile)`` (tensor-core tile
            quantisation; ``None``: no such effect).
        fitted: ``True`` when measurements of this class went into the fit; ``False``
            when the figures are the prior (no measurement covered the class).
    """

    compute_efficiency: float
    memory_efficiency: float
    launch_ms: float
    depth_rate: Optional[float] = None
    taps_exponent: float = 0.0
    channel_tile: Optional[float] = None
    depth_taps_exponent: Optional[float] = None
    kernel_factors: Optional[dict] = None
    fitted: bool = False

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Profile:
    """One device profile (see the module docstring for the fields)."""

    name: str
    device: dict
    backend: str
    dtype: str
    peak_flops: float
    bandwidth: float
    call_overhead_ms: float
    classes: dict
    compile: str = ""
    dtype_bytes: int = 4
    math: str = ""
    cpu_threads: Optional[int] = None
    date: str = ""
    peak_source: str = ""
    fusion: dict = dataclasses.field(
        default_factory=lambda: {"after_compute": 1.0, "after_elementwise": 0.0})
    depth_norm: Optional[float] = 2.0
    fit: dict = dataclasses.field(default_factory=dict)
    errors: dict = dataclasses.field(default_factory=dict)
    notes: str = ""

    def params(self, cls: str) -> ClassParams:
        """The figures of class ``cls``."""
        return self.classes[cls]

    def label(self) -> str:
        """``name (device, backend, dtype)``: how reports name the profile."""
        return (f"{self.name} ({self.device.get('name', '?')}, {self.backend}, "
                f"{self.math or self.dtype})")

    def error_summary(self) -> str:
        """One line of the profile's held-out error figures, or a warning that it has
        none; reports print it next to every prediction."""
        held = (self.errors or {}).get("held_out") or {}
        main = held.get("over_threshold") or held.get("all")
        if not main or not main.get("cases"):
            return f"profile {self.name}: no held-out error figures"
        parts = [f"profile {self.name}: on {main['cases']} held-out cases"]
        if main.get("within_25") is not None:
            parts.append(f"{100 * main['within_25']:.0f}% within ±25%")
        if main.get("direction") is not None:
            parts.append(f"direction right in {100 * main['direction']:.0f}% "
                         f"of {main['direction_cases']}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        """JSON-ready form (the file format)."""
        out = {"format": FORMAT}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "classes":
                value = {c: value[c].to_dict() for c in LATENCY_CLASSES if c in value}
            out[field.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Profile":
        """The profile of a parsed JSON file.

        Raises:
            ProfileError: wrong format version, a field or a class missing.
        """
        if not isinstance(data, dict):
            raise ProfileError(f"not a device profile: a JSON {type(data).__name__}, "
                               "not an object")
        if data.get("format") != FORMAT:
            raise ProfileError(f"profile format {data.get('format')!r} is not {FORMAT}")
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        try:
            if not isinstance(data["classes"], dict) or not all(
                    isinstance(p, dict) for p in data["classes"].values()):
                raise TypeError("'classes' must map class names to objects")
            kwargs["classes"] = {c: ClassParams(**p) for c, p in data["classes"].items()}
            missing = [c for c in LATENCY_CLASSES if c not in kwargs["classes"]]
            if missing:
                raise ProfileError(f"profile {data.get('name')!r} lacks classes {missing}")
            profile = cls(**kwargs)
        except (KeyError, TypeError) as exc:
            raise ProfileError(f"malformed profile {data.get('name')!r}: {exc}") from None
        problem = _profile_problem(profile)
        if problem:
            raise ProfileError(f"malformed profile {data.get('name')!r}: {problem}")
        return profile

    def save(self, path: str) -> str:
        """Write the profile as JSON to ``path`` (atomically, replacing a file there but
        never writing through a link); returns the path."""
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise ProfileError(f"{path}: cannot create directory {folder}: "
                               f"{exc.strerror or exc}") from None
        text = json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"
        write_atomic(path, text, force=True)
        return path


def _number(value, low: float = -math.inf, low_inclusive: bool = True) -> bool:
    """A finite JSON number (not a boolean) at or above ``low`` (above, if not inclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        value = float(value)
    except OverflowError:   # an integer beyond a float
        return False
    return math.isfinite(value) and (value >= low if low_inclusive else value > low)


def _class_problem(name: str, params: "ClassParams") -> Optional[str]:
    """What is wrong with one class's figures, or ``None``."""
    checks = (("compute_efficiency", params.compute_efficiency, 0.0, False, False),
              ("memory_efficiency", params.memory_efficiency, 0.0, False, False),
              ("launch_ms", params.launch_ms, 0.0, True, False),
              ("depth_rate", params.depth_rate, 0.0, False, True),
              ("taps_exponent", params.taps_exponent, -math.inf, True, False),
              ("channel_tile", params.channel_tile, 0.0, True, True),
              ("depth_taps_exponent", params.depth_taps_exponent, -math.inf, True, True))
    for field, value, low, inclusive, optional in checks:
        if not (optional and value is None) and not _number(value, low, inclusive):
            return f"class {name!r}: {field} {value!r:.40} is not a finite number" + (
                "" if low == -math.inf else f" {'>=' if inclusive else '>'} {low:g}")
    factors = params.kernel_factors
    if factors is not None and not (isinstance(factors, dict) and all(
            isinstance(f, dict) and _number(f.get("compute"), 0.0, False)
            and _number(f.get("depth", f.get("compute")), 0.0, False)
            for f in factors.values())):
        return (f"class {name!r}: kernel_factors must map kernel sizes to "
                "{'compute': x, 'depth': y} with positive numbers")
    if not isinstance(params.fitted, bool):
        return f"class {name!r}: fitted {params.fitted!r:.40} is not true or false"
    return None


def _error_figures_problem(errors) -> Optional[str]:
    """What :meth:`Profile.error_summary` cannot read in ``errors``, or ``None``."""
    if not isinstance(errors, dict):
        return "'errors' is not an object"
    held = errors.get("held_out") or {}
    if not isinstance(held, dict):
        return "'errors.held_out' is not an object"
    for part in ("over_threshold", "all"):
        figures = held.get(part) or {}
        if not isinstance(figures, dict) or not all(
                figures.get(key) is None or _number(figures[key], 0.0)
                for key in ("cases", "within_25", "direction", "direction_cases")):
            return f"'errors.held_out.{part}' must map figure names to numbers"
    return None


def _profile_problem(profile: "Profile") -> Optional[str]:
    """What is wrong with a profile's figures (a type, a non-finite or out-of-range
    number: the latency model divides by them), or ``None``."""
    for field in ("name", "backend", "dtype", "compile", "math", "date", "peak_source",
                  "notes"):
        if not isinstance(getattr(profile, field), str):
            return f"{field} {getattr(profile, field)!r:.40} is not a string"
    for field in ("device", "fit"):
        if not isinstance(getattr(profile, field), dict):
            return f"{field!r} is not an object"
    for field in ("peak_flops", "bandwidth"):
        if not _number(getattr(profile, field), 0.0, False):
            return f"{field} {getattr(profile, field)!r:.40} is not a positive finite number"
    if not _number(profile.call_overhead_ms, 0.0):
        return f"call_overhead_ms {profile.call_overhead_ms!r:.40} is not a finite number >= 0"
    if profile.depth_norm is not None and not _number(profile.depth_norm, 0.0, False):
        return f"depth_norm {profile.depth_norm!r:.40} is not a positive finite number"
    for field in ("dtype_bytes", "cpu_threads"):
        value = getattr(profile, field)
        if not (value is None and field == "cpu_threads") and not (
                isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2 ** 16):
            return f"{field} {value!r:.40} is not a small positive integer"
    fusion = profile.fusion
    if not isinstance(fusion, dict) or not all(
            _number(fusion.get(key), 0.0) for key in ("after_compute", "after_elementwise")):
        return "fusion must hold after_compute and after_elementwise, finite numbers >= 0"
    for name, params in profile.classes.items():
        problem = _class_problem(name, params)
        if problem:
            return problem
    return _error_figures_problem(profile.errors)


def cache_dir() -> str:
    """Where calibrated profiles go: ``$KERAS_CNNKIT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/keras-cnnkit``, else ``~/.cache/keras-cnnkit``; then
    ``/profiles``."""
    root = os.environ.get("KERAS_CNNKIT_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
            os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "keras-cnnkit")
    return os.path.join(root, "profiles")


def packaged_dir() -> str:
    """The directory of the profiles shipped with the package."""
    return _PACKAGED


def _names_in(directory: str) -> list:
    if not os.path.isdir(directory):
        return []
    return sorted(n[:-5] for n in os.listdir(directory) if n.endswith(".json"))


def list_profiles() -> dict:
    """Profile name → file, packaged ones first; a calibrated profile in the cache
    directory shadows a packaged one of the same name."""
    found = {}
    for directory in (_PACKAGED, cache_dir()):
        for name in _names_in(directory):
            found[name] = os.path.join(directory, f"{name}.json")
    return found


def load_profile(name_or_path: str) -> Profile:
    """The profile named ``name_or_path`` (see :func:`list_profiles`), or read from that
    path when it is a JSON file.

    Raises:
        ProfileError: no such profile, or the file is malformed.
    """
    path = name_or_path if name_or_path.endswith(".json") and os.path.isfile(
        name_or_path) else list_profiles().get(name_or_path)
    if path is None:
        raise ProfileError(f"no device profile {name_or_path!r} (known: "
                           f"{', '.join(list_profiles()) or 'none'})")
    text = read_text_file(path, MAX_PROFILE_BYTES, "device profile", _file_error)
    try:
        data = json.loads(text)
    except RecursionError:
        raise ProfileError(f"{path}: not a device profile: JSON nested too deeply") \
            from None
    except ValueError as exc:
        raise ProfileError(f"{path}: not JSON ({exc})") from None
    try:
        return Profile.from_dict(data)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None


def _file_error(path: str, problem: str) -> ProfileError:
    """How :func:`~keras_cnnkit.io_guard.read_text_file` refuses a profile file."""
    return ProfileError(f"{path}: {problem}")


def resolve_profile(name: Optional[str] = None) -> tuple:
    """``(profile, why)``: the profile ``--device-profile NAME`` asks for, or the default
    (the calibrated local profile if one exists, else the generic CPU profile), with a
    line saying which was chosen and why."""
    if name:
        profile = load_profile(name)
        return profile, f"device profile {profile.label()} (chosen)"
    local = os.path.join(cache_dir(), f"{LOCAL}.json")
    if os.path.isfile(local):
        profile = load_profile(local)
        return profile, f"device profile {profile.label()} (calibrated on this machine)"
    profile = load_profile(GENERIC_CPU)
    return profile, (f"device profile {profile.label()} (default: no calibrated profile; "
                     "run cnnkit-lint --calibrate)")
