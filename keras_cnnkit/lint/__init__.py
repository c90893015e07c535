"""The model linter: rules over the graph IR, findings with exact savings, reports.

``keras_cnnkit.lint`` is both this package and the linting function:
``keras_cnnkit.lint(model_or_path, select=..., ignore=...)`` calls
:func:`keras_cnnkit.lint.api.lint` and returns a :class:`~keras_cnnkit.lint.report.Report`.
``python -m keras_cnnkit.lint`` runs the ``cnnkit-lint`` command line.
"""
import sys
import types


class _CallableModule(types.ModuleType):
    """Lets ``keras_cnnkit.lint(...)`` call :func:`keras_cnnkit.lint.api.lint`."""

    def __call__(self, *args, **kwargs):
        from keras_cnnkit.lint.api import lint  # pylint: disable=import-outside-toplevel
        return lint(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
