"""The latency model (``keras_cnnkit.latency``): arithmetic, profiles, fitting, calibration.

The roofline arithmetic is checked against times worked out here by hand from each
node's shapes (FLOPs and bytes counted in the test, not taken from the cost model); the
fit against synthetic measurements made from known parameters.  No timed assertions:
speed claims live in ``benchmarks/bench_latency_model.py``.
"""
import copy
import json
import math
import os

import numpy as np
import pytest

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.latency import (ClassParams, Profile, ProfileError, list_profiles,
                                  load_profile, op_class, predict_node, predict_nodes,
                                  predict_speedup, resolve_profile)
from keras_cnnkit.latency.classes import LATENCY_CLASSES
from keras_cnnkit.latency.data import (Case, Observation, nodes_from_json, nodes_to_json,
                                       read_measurements, write_measurements)
from keras_cnnkit.latency.fit import CaseResult, error_figures, fit_profile
from keras_cnnkit.latency.model import fusion_roles, replacement_sides
from keras_cnnkit.latency.nominal import nominal_profile

# --- hand-made IR ---------------------------------------------------------------------


def conv(name, src, size, c_in, c_out, k=3, groups=1, bias=True, op=OpKind.CONV):
    """A 'same' conv node on a ``size``×``size``×``c_in`` input."""
    kernel = k if isinstance(k, tuple) else (k, k)
    attrs = {"rank": 2, "kernel": kernel, "strides": (1, 1), "dilation": (1, 1),
             "padding": "same", "in_channels": c_in, "filters": c_out, "groups": groups,
             "use_bias": bias, "activation": None, "data_format": "channels_last"}
    return Node(name, op, [src], [(size, size, c_in)], (size, size, c_out), attrs)


def unary(name, src, op, shape, **attrs):
    """A node of ``op`` keeping ``shape``."""
    return Node(name, op, [src], [shape], shape, dict(attrs))


def bn(name, src, shape):
    """An inference batch norm (4 weights per channel)."""
    return unary(name, src, OpKind.BATCHNORM, shape, channels=shape[-1], center=True,
                 scale=True)


def hand_profile(**changes):
    """A profile with round figures (every class the same unless changed)."""
    classes = {c: ClassParams(0.5, 0.25, 0.01) for c in LATENCY_CLASSES}
    profile = Profile(name="hand", device={"kind": "gpu", "name": "test"}, backend="jax",
                      dtype="float32", peak_flops=1e12, bandwidth=1e11,
                      call_overhead_ms=0.05, classes=classes,
                      fusion={"after_compute": 0.5, "after_elementwise": 0.0})
    for key, value in changes.items():
        setattr(profile, key, value)
    return profile


# --- classes --------------------------------------------------------------------------


def test_op_class_splits_convolutions_by_shape():
    assert op_class(conv("c", "x", 8, 16, 16, 3)) == "conv"
    assert op_class(conv("c", "x", 8, 16, 16, (1, 7))) == "conv"
    assert op_class(conv("c", "x", 8, 16, 32, 1)) == "pointwise"
    assert op_class(conv("c", "x", 8, 16, 16, 3, groups=16)) == "depthwise"
    assert op_class(conv("c", "x", 8, 16, 16, 3, groups=4)) == "grouped"
    assert op_class(conv("c", "x", 8, 16, 16, 3, groups=16,
                         op=OpKind.DEPTHWISE_CONV)) == "depthwise"


def test_op_class_of_other_kinds():
    shape = (4, 4, 8)
    expected = {OpKind.DENSE: "dense", OpKind.ACTIVATION: "elementwise",
                OpKind.ADD: "elementwise", OpKind.BATCHNORM: "norm",
                OpKind.GLOBAL_POOL: "reduction", OpKind.POOL: "reduction",
                OpKind.CONCAT: "movement", OpKind.CHANNEL_SHUFFLE: "movement",
                OpKind.FLATTEN: "none", OpKind.DROPOUT: "none", OpKind.INPUT: "none",
                OpKind.OPAQUE: None}
    attrs = {OpKind.DENSE: {"in_features": 8, "units": 8, "use_bias": True},
             OpKind.ACTIVATION: {"activation": "relu"}, OpKind.BATCHNORM: {"channels": 8},
             OpKind.POOL: {"pool_size": (2, 2)}, OpKind.CONCAT: {"axis": 2},
             OpKind.CHANNEL_SHUFFLE: {"groups": 2}}
    for op, cls in expected.items():
        assert op_class(unary("n", "x", op, shape, **attrs.get(op, {}))) == cls, op


# --- the roofline arithmetic ----------------------------------------------------------


def test_compute_bound_conv_against_hand_figures():
    """3×3 conv 16→32 on 8×8, bias, batch 4: FLOPs 2·(8·8·32)·(9·16) + 8·8·32 per
    sample; bytes: input 8·8·16 and output 8·8·32 per sample, 9·16·32 + 32 weights
    once, 4 bytes each."""
    node = conv("c", "x", 8, 16, 32)
    flops = 4 * (2 * 8 * 8 * 32 * 9 * 16 + 8 * 8 * 32)
    nbytes = 4 * (4 * (8 * 8 * 16 + 8 * 8 * 32) + 9 * 16 * 32 + 32)
    compute_ms = 1e3 * flops / (1e12 * 0.5)
    memory_ms = 1e3 * nbytes / (1e11 * 0.25)
    assert compute_ms > memory_ms
    t = predict_node(node, hand_profile(), batch=4)
    assert t.flops == flops and t.bytes == nbytes
    assert t.compute_ms == pytest.approx(compute_ms)
    assert t.memory_ms == pytest.approx(memory_ms)
    assert t.ms == pytest.approx(0.01 + compute_ms)
    assert t.bound == "launch"  # 0.01 ms launch > 0.0047 ms of work


def test_memory_bound_batch_norm_and_bf16_bytes():
    """BN on 56×56×64 at batch 32: 2 FLOPs per element; bytes: read and write every
    element, 4·64 weights once; at 2 bytes per element in a bfloat16 profile."""
    node = bn("b", "x", (56, 56, 64))
    elements = 56 * 56 * 64
    flops = 32 * 2 * elements
    for width in (4, 2):
        nbytes = width * (32 * 2 * elements + 4 * 64)
        profile = hand_profile(dtype_bytes=width)
        t = predict_node(node, profile, batch=32)
        assert t.bytes == nbytes
        assert t.ms == pytest.approx(0.01 + max(1e3 * flops / 0.5e12, 1e3 * nbytes / 0.25e11))
        assert t.bound == "memory"


def test_depth_taps_and_channel_tile_terms():
    """5×5 conv 8→8 on 4×4, batch 1: the depth floor is FLOPs per output element over the
    depth rate; the kernel-size exponent scales efficiency and rate by (25/9)^-1; a
    channel tile of 32 for 8 output channels quarters the compute efficiency."""
    node = conv("c", "x", 4, 8, 8, 5, bias=False)
    per_output = 2 * 25 * 8  # FLOPs per output element
    flops = 4 * 4 * 8 * per_output
    scale = (25 / 9) ** -1.0
    classes = {c: ClassParams(0.5, 0.25, 0.0) for c in LATENCY_CLASSES}
    classes["conv"] = ClassParams(0.5, 0.25, 0.0, depth_rate=1e6, taps_exponent=1.0,
                                  channel_tile=32.0)
    t = predict_node(node, hand_profile(classes=classes))
    depth_ms = 1e3 * per_output / (1e6 * scale)
    compute_ms = 1e3 * flops / (1e12 * 0.5 * scale * 8 / 32)
    assert t.depth_ms == pytest.approx(depth_ms)
    assert t.compute_ms == pytest.approx(compute_ms)
    assert compute_ms > t.memory_ms
    # the throughput and depth terms combine as their 2-norm by default (depth_norm 2)
    assert t.ms == pytest.approx(math.sqrt(compute_ms ** 2 + depth_ms ** 2))
    assert t.bound == "depth"


@pytest.mark.parametrize("norm, combine", [
    (None, max), (1.0, lambda a, b: a + b), (2.0, lambda a, b: math.hypot(a, b)),
    (3.0, lambda a, b: (a ** 3 + b ** 3) ** (1 / 3))])
def test_depth_norm_combines_throughput_and_depth(norm, combine):
    """3×3 conv 64→64 on 7×7, batch 1, no launch: compute 2·49·64·576 FLOPs at
    1e12·0.5; depth 2·576 FLOPs per output at 1e6/s; ``depth_norm`` p combines them as
    their p-norm (``None``: the larger)."""
    classes = {c: ClassParams(0.5, 0.25, 0.0) for c in LATENCY_CLASSES}
    classes["conv"] = ClassParams(0.5, 0.25, 0.0, depth_rate=1e6)
    node = conv("c", "x", 7, 64, 64, 3, bias=False)
    compute_ms = 1e3 * 2 * 49 * 64 * 576 / (1e12 * 0.5)
    depth_ms = 1e3 * 2 * 576 / 1e6
    t = predict_node(node, hand_profile(classes=classes, depth_norm=norm))
    assert t.compute_ms == pytest.approx(compute_ms) and t.depth_ms == pytest.approx(depth_ms)
    assert t.ms == pytest.approx(combine(compute_ms, depth_ms))


def test_kernel_factors_replace_the_power_law_per_kernel_size():
    """A kernel size in ``kernel_factors`` takes its own compute and depth factors
    (1×7 and 7×1 share a key); any other size the power law ``(taps / 9) ** -e``."""
    classes = {c: ClassParams(0.5, 0.25, 0.0) for c in LATENCY_CLASSES}
    classes["conv"] = ClassParams(
        0.5, 0.25, 0.0, depth_rate=1e6, taps_exponent=1.0, depth_taps_exponent=0.5,
        kernel_factors={"5x5": {"compute": 2.0, "depth": 0.25},
                        "1x7": {"compute": 0.8, "depth": 3.0}})
    profile = hand_profile(classes=classes)
    c_in = c_out = 16
    for kernel, compute_factor, depth_factor in (
            ((5, 5), 2.0, 0.25), ((1, 7), 0.8, 3.0), ((7, 1), 0.8, 3.0),
            ((11, 11), (121 / 9) ** -1.0, (121 / 9) ** -0.5), ((3, 3), 1.0, 1.0)):
        taps = kernel[0] * kernel[1]
        node = conv("c", "x", 8, c_in, c_out, kernel, bias=False)
        t = predict_node(node, profile)
        flops = 2 * 64 * c_out * taps * c_in
        assert t.compute_ms == pytest.approx(1e3 * flops / (1e12 * 0.5 * compute_factor)), \
            kernel
        assert t.depth_ms == pytest.approx(1e3 * 2 * taps * c_in / (1e6 * depth_factor)), \
            kernel


def test_fragment_sums_nodes_plus_call_overhead_and_fuses_elementwise():
    """conv → BN → ReLU: BN is fused after a compute kernel (factor 0.5 here), ReLU after
    an element-wise one (factor 0); standalone adds the 0.05 ms call overhead."""
    shape = (8, 8, 16)
    nodes = [conv("c", "x", 8, 16, 16), bn("b", "c", shape),
             unary("r", "b", OpKind.ACTIVATION, shape, activation="relu")]
    assert fusion_roles(nodes) == {"b": "after_compute", "r": "after_elementwise"}
    profile = hand_profile()
    conv_ms = predict_node(nodes[0], profile).ms
    bn_ms = predict_node(nodes[1], profile).ms
    whole = predict_nodes(nodes, profile)
    assert whole.ms == pytest.approx(0.05 + conv_ms + 0.5 * bn_ms + 0.0)
    inside = predict_nodes(nodes, profile, standalone=False)
    assert inside.ms == pytest.approx(conv_ms + 0.5 * bn_ms)
    # a BN whose producer has a second consumer is not fused
    nodes.append(unary("r2", "c", OpKind.ACTIVATION, shape, activation="relu"))
    assert "b" not in fusion_roles(nodes)


def test_passthrough_output_costs_a_copy_when_standalone():
    """A fix that only removes a node leaves a fragment returning its input: timed on its
    own, XLA copies it (read + write of 8·8·16 floats at batch 2)."""
    graph = Graph()
    graph.add(Node("x", OpKind.INPUT, [], [], (8, 8, 16)))
    graph.add(unary("r", "x", OpKind.ACTIVATION, (8, 8, 16), activation="relu"))

    class Rep:  # the fields of lint's Replacement that matter here
        removed, nodes, output = ["r"], [], "x"

    before, after = replacement_sides(graph, Rep)
    assert [n.name for n in before] == ["r"] and after[0].op == OpKind.IDENTITY
    profile = hand_profile()
    t = predict_nodes(after, profile, batch=2)
    copy_bytes = 2 * 2 * 8 * 8 * 16 * 4
    assert t.ms == pytest.approx(0.05 + 0.01 + 1e3 * copy_bytes / (1e11 * 0.25))
    assert predict_nodes(after, profile, batch=2, standalone=False).ms == 0.0


def test_unknown_node_makes_the_fragment_unknown_never_zero():
    nodes = [conv("c", "x", 8, 16, 16), unary("o", "c", OpKind.OPAQUE, (8, 8, 16))]
    t = predict_nodes(nodes, hand_profile())
    assert t.ms is None and t.unknown == ("o",)
    speed = predict_speedup(nodes, nodes[:1], hand_profile())
    assert speed.speedup is None and speed.profile == "hand"


def test_speedup_carries_profile_name_and_error_line():
    before = [conv("c", "x", 56, 64, 64)]
    after = [conv("dw", "x", 56, 64, 64, groups=64), conv("pw", "dw", 56, 64, 64, 1)]
    profile = hand_profile(errors={"held_out": {"over_threshold": {
        "cases": 10, "within_25": 0.8, "direction": 0.9, "direction_cases": 10}}})
    s = predict_speedup(before, after, profile, batch=32)
    assert s.profile == "hand" and "10 held-out cases" in s.error and "80%" in s.error
    b = predict_nodes(before, profile, 32).ms
    a = predict_nodes(after, profile, 32).ms
    assert s.speedup == pytest.approx(b / a) and s.ratio == pytest.approx(a / b)
    assert s.to_dict()["predicted_speedup"] == pytest.approx(b / a)


# --- profiles -------------------------------------------------------------------------


def test_profile_round_trip(tmp_path):
    profile = hand_profile(date="2026-11-30", fit={"source": "test"},
                           errors={"held_out": {}})
    profile.classes["conv"] = ClassParams(0.3, 0.2, 0.02, depth_rate=2e8,
                                          taps_exponent=0.5, channel_tile=64.0,
                                          fitted=True)
    path = profile.save(str(tmp_path / "hand.json"))
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    assert data["format"] == 1 and list(data["classes"]) == list(LATENCY_CLASSES)
    again = load_profile(path)
    assert again == profile


def test_malformed_profiles_are_refused(tmp_path):
    data = hand_profile().to_dict()
    del data["classes"]["conv"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ProfileError, match="lacks classes"):
        load_profile(str(path))
    with pytest.raises(ProfileError, match="no device profile"):
        load_profile("no-such-profile")


def test_packaged_profiles_record_device_fit_and_errors():
    names = set(list_profiles())
    assert {"h100-jax-tf32", "h100-jax-bf16", "cpu-generic"} <= names
    for name in ("h100-jax-tf32", "h100-jax-bf16", "cpu-generic"):
        profile = load_profile(name)
        assert profile.device["name"] and profile.backend and profile.dtype
        assert profile.date and profile.fit["source"] and profile.fit["held_out_groups"]
        assert profile.errors["held_out"]["over_threshold"]["cases"] > 0
        assert "held-out cases" in profile.error_summary()
    assert load_profile("h100-jax-bf16").dtype_bytes == 2


def test_default_profile_is_the_calibrated_one_if_any(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_CNNKIT_CACHE_DIR", str(tmp_path))
    profile, why = resolve_profile()
    assert profile.name == "cpu-generic" and "no calibrated profile" in why
    local = hand_profile(name="local")
    local.save(str(tmp_path / "profiles" / "local.json"))
    profile, why = resolve_profile()
    assert profile.name == "local" and "calibrated" in why
    profile, why = resolve_profile("h100-jax-tf32")
    assert profile.name == "h100-jax-tf32" and "chosen" in why


def test_nodes_and_measurements_round_trip_through_json(tmp_path):
    nodes = [conv("c", "x", 8, 16, 16, (1, 7)), bn("b", "c", (8, 8, 16))]
    again = nodes_from_json(json.loads(json.dumps(nodes_to_json(nodes))))
    assert again == nodes
    obs = [Observation(nodes, 2, 1.5, "conv-bn", "g")]
    cases = [Case("fix", "g", 1, nodes, nodes[:1], 2.0, 1.0, "rule")]
    path = write_measurements(str(tmp_path / "m.json"), {"device": {"name": "d"}}, obs,
                              cases)
    meta, obs2, cases2 = read_measurements(path)
    assert meta == {"device": {"name": "d"}} and obs2 == obs and cases2 == cases


# --- fitting and error figures --------------------------------------------------------


def _synthetic(truth: Profile, rng) -> list:
    """Observations timed by ``truth``: convs, 1×1s, depthwise convs, dense layers and
    BNs from launch-bound to compute- or memory-bound, alone and in short chains."""
    out = []
    for size, c in ((7, 512), (14, 256), (28, 128), (56, 64), (112, 32), (14, 32),
                    (7, 1024), (14, 1024)):
        shape = (size, size, c)
        frags = [[conv("c", "x", size, c, c)], [conv("p", "x", size, c, 2 * c, 1)],
                 [conv("d", "x", size, c, c, groups=c)], [bn("b", "x", shape)],
                 [conv("c", "x", size, c, c), conv("c2", "c", size, c, c)],
                 [Node("f", OpKind.FLATTEN, ["x"], [shape], (size * size * c,)),
                  Node("fc", OpKind.DENSE, ["f"], [(size * size * c,)], (256,),
                       {"in_features": size * size * c, "units": 256, "use_bias": True,
                        "activation": None})]]
        for nodes in frags:
            for batch in (1, 8, 32):
                ms = predict_nodes(nodes, truth, batch).ms
                out.append(Observation(nodes, batch, ms * math.exp(rng.normal(0, 0.01))))
    return out


def test_fit_recovers_known_parameters_from_synthetic_data(rng):
    truth = nominal_profile("truth", "gpu", "NVIDIA H100 80GB HBM3", "jax")
    truth.call_overhead_ms = 0.08
    truth.classes["conv"] = ClassParams(0.35, 0.3, 0.02)
    truth.classes["pointwise"] = ClassParams(0.6, 0.5, 0.01)
    truth.classes["depthwise"] = ClassParams(0.05, 0.2, 0.015)
    truth.classes["norm"] = ClassParams(1.0, 0.45, 0.005)
    truth.classes["dense"] = ClassParams(0.5, 0.7, 0.008)
    start = nominal_profile("start", "gpu", "NVIDIA H100 80GB HBM3", "jax")
    for params in start.classes.values():  # the synthetic truth has none of these
        params.depth_rate = None
        params.channel_tile = None
    fitted = fit_profile(_synthetic(truth, rng), start, "fitted", prior_weight=1e-4,
                         kernel_fit="none")
    assert fitted.call_overhead_ms == pytest.approx(0.08, rel=0.05)
    for cls, figure in (("conv", "compute_efficiency"), ("conv", "launch_ms"),
                        ("pointwise", "compute_efficiency"),
                        ("depthwise", "memory_efficiency"), ("norm", "memory_efficiency"),
                        ("dense", "memory_efficiency")):
        want = getattr(truth.classes[cls], figure)
        assert getattr(fitted.classes[cls], figure) == pytest.approx(want, rel=0.1), \
            (cls, figure)
    assert fitted.classes["conv"].fitted and not fitted.classes["movement"].fitted
    assert fitted.fit["converged"] and fitted.fit["observations"] == 8 * 6 * 3


def test_fit_recovers_kernel_factors_and_their_power_law(rng):
    """Synthetic times of 3×3, 5×5, 7×7 and 1×7/7×1 convs from a truth with a compute
    and a depth factor per kernel size: the fit finds each factor, and the power law it
    then fits to them is the least-squares line through the factors' logs by hand."""
    truth = nominal_profile("truth", "gpu", "NVIDIA H100 80GB HBM3", "jax")
    truth.classes["conv"] = ClassParams(
        0.4, 0.3, 0.01, depth_rate=2e8,
        kernel_factors={"5x5": {"compute": 1.3, "depth": 0.9},
                        "7x7": {"compute": 0.6, "depth": 0.2},
                        "1x7": {"compute": 1.1, "depth": 1.2}})
    out = []
    for size, c in ((7, 512), (14, 256), (28, 128), (56, 64), (7, 1024), (14, 64)):
        frags = [[conv("c", "x", size, c, c, k)] for k in (3, 5, 7)]
        frags.append([conv("a", "x", size, c, c, (1, 7)), conv("b", "a", size, c, c, (7, 1))])
        for nodes in frags:
            for batch in (1, 8, 32):
                ms = predict_nodes(nodes, truth, batch).ms
                out.append(Observation(nodes, batch, ms * math.exp(rng.normal(0, 0.01))))
    start = nominal_profile("start", "gpu", "NVIDIA H100 80GB HBM3", "jax")
    fitted = fit_profile(out, start, "fitted", prior_weight=1e-4)
    got = fitted.classes["conv"].kernel_factors
    assert sorted(got) == ["1x7", "5x5", "7x7"]
    for kernel, want in truth.classes["conv"].kernel_factors.items():
        for which in ("compute", "depth"):
            assert got[kernel][which] == pytest.approx(want[which], rel=0.15), (kernel, which)
    x = [math.log(t / 9) for t in (7, 25, 49)]
    y = [math.log(got[k]["compute"]) for k in ("1x7", "5x5", "7x7")]
    want_exponent = -sum(a * b for a, b in zip(x, y)) / sum(a * a for a in x)
    assert fitted.classes["conv"].taps_exponent == pytest.approx(want_exponent)
    assert fitted.classes["conv"].depth_taps_exponent is not None
    # "power": one exponent for every size, no factors
    power = fit_profile(out, start, "power", prior_weight=1e-4, kernel_fit="power")
    assert power.classes["conv"].kernel_factors is None
    with pytest.raises(ValueError, match="kernel_fit"):
        fit_profile(out, start, "bad", kernel_fit="smooth")


def test_error_figures_count_within_and_direction_by_hand():
    nodes = [conv("c", "x", 8, 8, 8)]

    def result(before, after, pred_before, pred_after):
        return CaseResult(Case("c", "g", 1, nodes, nodes, before, after), pred_before,
                          pred_after)

    results = [result(1.0, 0.5, 1.0, 0.55),   # speed-up 2.0 vs 1.82: within, right
               result(1.0, 2.0, 1.0, 0.8),    # slower measured, faster predicted: wrong
               result(1.0, 1.05, 1.0, 1.5),   # inside 0.9–1.1: no direction; 30% off
               result(1.0, 0.5, 1.0, 0.3)]    # speed-up 2.0 vs 3.33: outside 25%, right
    fig = error_figures(results)
    assert fig["cases"] == 4 and fig["within_25"] == 0.25
    assert fig["direction_cases"] == 3 and fig["direction"] == pytest.approx(2 / 3)


# --- with Keras -----------------------------------------------------------------------


def test_predict_replacement_on_a_lint_finding():
    keras = pytest.importorskip("keras")
    from keras_cnnkit.latency import predict_replacement
    from keras_cnnkit.lint.api import lint
    x = keras.Input((28, 28, 64))
    y = keras.layers.Conv2D(64, 3, padding="same", name="conv")(x)
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D()(y))
    report = lint(model, select=["depthwise-separable-candidate"],
                  options={"depthwise-separable-candidate": {"min_saving": 0.0}})
    (finding,) = [f for f in report.findings if f.replacement is not None]
    profile = load_profile("cpu-generic")
    by_batch = predict_replacement(report.graph, finding.replacement, profile)
    assert set(by_batch) == {1, 32}
    for batch, speed in by_batch.items():
        assert speed.batch == batch and speed.profile == "cpu-generic"
        assert speed.before_ms > 0 and speed.after_ms > 0


def test_calibrate_on_the_tiny_grid_writes_a_valid_profile(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    pytest.importorskip("scipy")
    from keras_cnnkit.bench.calibration import calibrate
    monkeypatch.setenv("KERAS_CNNKIT_CACHE_DIR", str(tmp_path))
    profile, path = calibrate(grid_name="tiny",
                              measurements_path=str(tmp_path / "m.json"))
    assert path == os.path.join(str(tmp_path), "profiles", "local.json")
    again = load_profile("local")
    assert again == profile
    assert profile.device["name"] and profile.backend and profile.date
    assert profile.fit["grid"] == "tiny" and profile.fit["observations"] == 10
    for cls in ("conv", "pointwise", "depthwise", "dense", "norm"):
        assert profile.classes[cls].fitted
    assert profile.errors["held_out"]["all"]["cases"] == 1
    _, observations, cases = read_measurements(str(tmp_path / "m.json"))
    assert len(observations) == 10 and len(cases) == 1
    assert all(np.isfinite(o.ms) and o.ms > 0 for o in observations)
    assert resolve_profile()[0].name == "local"
    assert copy.deepcopy(profile).to_dict() == profile.to_dict()


def test_gpu_stage_script_and_h200_fit_on_the_tiny_grids(tmp_path):
    """``benchmarks/latency_gpu.py`` (the ``gpu_run.sh latency`` stage) runs on this
    machine's backend on the tiny grids, and ``fit_latency_profiles.py h200`` fits and
    checks its output."""
    import importlib.util
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def load(path, name):
        spec = importlib.util.spec_from_file_location(name, os.path.join(root, path))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    sys.path.insert(0, os.path.join(root, "benchmarks"))
    stage = load("benchmarks/latency_gpu.py", "latency_gpu")
    out = str(tmp_path / "latency_gpu.json")
    assert stage.main(["--grid", "tiny", "--rule-grid", "tiny", "--batches", "1",
                       "--out", out]) == 0
    meta, observations, cases = read_measurements(out)
    assert meta["complete"] and meta["device"]["name"]
    rules = {c.rule for c in cases if c.rule}
    assert len(rules) == 9 and all(c.before_ms > 0 and c.after_ms > 0 for c in cases)
    assert len(observations) == 10
    tool = load("tools/fit_latency_profiles.py", "fit_latency_profiles")
    summary = tool.fit_h200(out, str(tmp_path / "summary.json"), str(tmp_path))
    assert summary["measured"]["rule_cases"] == 9
    assert summary["profiles"]["h100-jax-tf32 on this GPU"]["all"]["cases"] == 9
    (written,) = [p for p in os.listdir(tmp_path) if p.endswith("-tensorflow.json")
                  or p.endswith("-jax.json") or p.startswith("h200")]
    assert load_profile(str(tmp_path / written)).errors["held_out"]["all"]["cases"] == 10
