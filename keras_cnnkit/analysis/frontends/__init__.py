"""Frontends: model sources → the linter's graph IR.

* :mod:`~keras_cnnkit.analysis.frontends.keras_live` — a live Keras model;
* ``static_file`` — ``.keras``/``.h5``/``.json`` files read without importing Keras;
* ``onnx_frontend`` — ONNX graphs.

Each produces a :class:`~keras_cnnkit.analysis.ir.Graph`; nothing downstream reaches back
into a frontend.
"""
