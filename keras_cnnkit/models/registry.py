"""The model registry: builders register themselves by decorator, users create by name.

Modelled on timm's ``register_model`` / ``create_model`` / ``list_models``::

    @register_model
    def build_densenet121(...): ...

    create_model("densenet121", include_top=False, input_shape=(224, 224, 3))
    list_models("densenet*")  # ['densenet121', 'densenet169', 'densenet201']
"""
from __future__ import annotations

import fnmatch
import functools
from typing import Callable

_MODELS: dict[str, Callable] = {}


def _model_name(fn: Callable) -> str:
    name = fn.__name__
    return name[len("build_"):] if name.startswith("build_") else name


def register_model(fn: Callable | None = None, *, name: str | None = None, **defaults):
    """Register a builder under ``name`` (default: its function name without ``build_``).

    Keyword ``defaults`` register a variant: ``register_model(name="shufflenet_v2_x0_5",
    width_multiplier=0.5)(build_shufflenet_v2)`` creates the builder with those arguments
    unless the caller overrides them.  Returns the builder unchanged.
    """

    def decorator(builder: Callable) -> Callable:
        key = name or _model_name(builder)
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered")
        _MODELS[key] = functools.partial(builder, **defaults) if defaults else builder
        return builder

    return decorator(fn) if fn is not None else decorator


def list_models(pattern: str | None = None) -> list[str]:
    """Names of the registered models, sorted; ``pattern`` is an ``fnmatch`` filter."""
    names = sorted(_MODELS)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in _MODELS


def create_model(name: str, **kwargs):
    """Build the registered model ``name``; ``kwargs`` go to its builder."""
    if name not in _MODELS:
        raise ValueError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}"
        )
    return _MODELS[name](**kwargs)
