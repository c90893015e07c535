"""The model linter: rules over the graph IR, findings with exact savings, reports.

``python -m keras_cnnkit.lint`` runs the ``cnnkit-lint`` command line.
"""
