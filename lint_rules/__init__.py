"""Lint rules of keras-cnnkit, one module per rule, registered through the
`keras_cnnkit.lint_rules` entry-point group."""
