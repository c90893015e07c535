"""The benchmark harness on CPU (tiny shapes), and on a GPU where one is visible."""
import io

import keras
import numpy as np
import pytest

from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.bench import (BenchResult, Progress, benchmark_findings, detect,
                                gpu_available, measure, order_findings)
from keras_cnnkit.bench.timing import measure_interleaved, random_inputs
from keras_cnnkit.lint.findings import Finding, Replacement, Severity
from keras_cnnkit.lint.report import finding_message

pytestmark = pytest.mark.backend_agnostic


@pytest.fixture(autouse=True, scope="module")
def _single_thread_torch_cpu():
    """PyTorch's CPU thread pool waits for scheduler ticks on a busy 2-core machine,
    which makes sub-millisecond timings erratic; one thread keeps them stable."""
    if keras.backend.backend() == "torch" and not detect().is_gpu:
        import torch  # pylint: disable=import-error
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        yield
        torch.set_num_threads(threads)
    else:
        yield

FAST = {"warmup": 1, "repeats": 3, "min_sample_s": 0.001, "budget_s": 1.0}


def conv(name, src, shape, filters, kernel, activation=None):
    """A 'same' conv node, stride 1."""
    return Node(name, OpKind.CONV, [src], [shape], shape[:-1] + (filters,),
                {"rank": 2, "kernel": (kernel, kernel), "strides": (1, 1),
                 "dilation": (1, 1), "padding": "same", "groups": 1,
                 "in_channels": shape[-1], "filters": filters, "use_bias": True,
                 "activation": activation})


def graph_and_findings(size=8, channels=8):
    """x → conv5 → relu → gap, with a large-kernel finding and a made-up slower 'fix'."""
    shape = (size, size, channels)
    g = Graph(name="toy")
    g.add(Node("x", OpKind.INPUT, output_shape=shape))
    g.add(conv("conv5", "x", shape, channels, 5))
    g.add(Node("relu", OpKind.ACTIVATION, ["conv5"], [shape], shape, {"activation": "relu"}))
    g.add(conv("pw", "relu", shape, channels, 1))
    g.add(Node("gap", OpKind.GLOBAL_POOL, ["pw"], [shape], (channels,),
               {"pool_type": "avg", "rank": 2}))
    g.inputs, g.outputs = ["x"], ["gap"]
    stacked = Replacement(["conv5"], [conv("a", "x", shape, channels, 3, "relu"),
                                      conv("b", "a", shape, channels, 3)], "b")
    good = Finding("CNK101", "large-kernel", Severity.WARNING, "conv5", "5x5",
                   params_before=25 * channels ** 2 + channels,
                   params_after=2 * (9 * channels ** 2 + channels),
                   flops_before=2, flops_after=1, replacement=stacked)
    # a 'fix' that claims a saving but swaps a 1×1 for a much bigger 9×9 conv
    slower = Replacement(["pw"], [conv("pw9", "relu", shape, channels, 9)], "pw9")
    bad = Finding("CNK999", "made-up", Severity.WARNING, "pw", "pw",
                  params_before=100, params_after=10, flops_before=10, flops_after=1,
                  replacement=slower)
    advisory = Finding("CNK201", "advice", Severity.INFO, "relu", "no fix")
    return g, [advisory, good, bad]


def test_measure_excludes_warmup_and_reports_median_and_iqr():
    """A scripted clock: each call takes the next duration in the list."""
    durations = iter([100.0] * 2 + [0.010] + [0.010, 0.012, 0.011, 0.020, 0.009])
    now = [0.0]
    calls = []

    def run():
        calls.append(1)
        now[0] += next(durations)

    timing = measure(run, lambda _: None, warmup=2, repeats=5, min_sample_s=0.0,
                     budget_s=100.0, clock=lambda: now[0])
    assert len(calls) == 2 + 1 + 5  # warm-up, calibration, samples
    assert timing.calls_per_sample == 1
    assert timing.samples_ms == pytest.approx([10.0, 12.0, 11.0, 20.0, 9.0])
    assert timing.median_ms == pytest.approx(11.0)
    assert timing.iqr_ms == pytest.approx(12.0 - 10.0)   # numpy's linear quartiles
    assert timing.min_ms == pytest.approx(9.0)


def test_measure_batches_fast_calls_into_samples():
    now = [0.0]

    def run():
        now[0] += 0.001

    timing = measure(run, lambda _: None, warmup=1, repeats=3, min_sample_s=0.01,
                     clock=lambda: now[0])
    assert timing.calls_per_sample == 10
    assert timing.median_ms == pytest.approx(1.0)


def test_random_inputs_are_random_and_shaped():
    x = keras.Input((4, 5, 3))
    model = keras.Model(x, keras.layers.Identity()(x))
    data = random_inputs(model, 2)[0]
    assert data.shape == (2, 4, 5, 3) and data.dtype == np.float32
    assert np.count_nonzero(data) == data.size and data.std() > 0.5
    y = keras.Input((None, None, 3))
    with pytest.raises(ValueError, match="unknown dimension"):
        random_inputs(keras.Model(y, keras.layers.Identity()(y)), 1)


def test_progress_is_silent_off_a_terminal():
    """Nothing is written off a terminal; forced on, the bar ends complete (rich)."""
    stream = io.StringIO()
    with Progress(3, "demo", stream=stream) as progress:
        progress.step("a")
    assert stream.getvalue() == ""
    stream = io.StringIO()
    with Progress(2, "demo", stream=stream, enabled=True) as progress:
        progress.step("first")
        progress.step("second")
    text = stream.getvalue()
    assert "demo" in text and "2/2" in text and "done\n" in text   # the line is finished


def test_detect_names_the_backend_and_device():
    info = detect()
    assert info.backend == keras.backend.backend()
    assert info.kind in ("cpu", "gpu") and info.name
    assert str(info).startswith(info.kind + ":")


def test_harness_measures_findings_and_whole_model():
    # big enough that the 9×9 'fix' (81× the MACs of the 1×1) dwarfs call overheads
    graph, findings = graph_and_findings(size=16, channels=32)
    progress = Progress(1, stream=io.StringIO())
    result = benchmark_findings(graph, findings, batches=(1, 2), progress=progress, **FAST)
    assert isinstance(result, BenchResult)
    good, bad = findings[1], findings[2]
    for f in (good, bad):
        m = result.fields_of(f)
        assert m["device"] == str(result.device) and m["backend"] == keras.backend.backend()
        assert m["dtype"] == "float32" and m["batch"] == 2
        assert m["latency_before_ms"] > 0 and m["latency_after_ms"] > 0
        assert m["speedup"] == pytest.approx(m["latency_before_ms"] / m["latency_after_ms"])
        assert {(r["batch"], r["mode"]) for r in m["runs"]} == {(1, "inference"),
                                                                (2, "inference")}
    assert not result.fields_of(findings[0])   # advisory: nothing to time
    # A fix that measures slower says so, and only then.  (Which of the two is faster is
    # the machine's business: timings are asserted in benchmarks/, not in tests.)
    for f in (good, bad):
        assert ("Measured slower" in finding_message(f, result)) == \
            (result.fields_of(f)["speedup"] < 1)
        assert "Measured slower" not in f.message   # the finding itself is never edited
    assert [c.batch for c in result.whole_model] == [1, 2]
    assert len(result.whole_model_fixes) == 2
    # ordered by measured saving, the advisory finding (nothing measured) after them
    assert result.findings[-1] is findings[0]
    savings = [result.fields_of(f)["saving_ms"] for f in result.findings[:-1]]
    assert savings == sorted(savings, reverse=True)
    text = result.format_text()
    assert "whole model (2 fixes)" in text and "large-kernel" in text
    assert result.to_dict()["backend"] == keras.backend.backend()


def test_harness_times_training_steps_and_other_dtypes():
    graph, findings = graph_and_findings(size=6, channels=8)
    result = benchmark_findings(graph, findings[1:2], batches=(2,), dtype="bfloat16",
                                train=True, whole_model=False,
                                progress=Progress(1, stream=io.StringIO()), **FAST)
    m = result.fields_of(findings[1])
    assert m["dtype"] == "bfloat16"
    assert m["train_latency_before_ms"] > 0 and m["train_latency_after_ms"] > 0
    assert not result.whole_model and not result.skipped
    with pytest.raises(ValueError, match="dtype"):
        benchmark_findings(graph, findings, dtype="float64")


def test_opaque_layers_are_skipped_and_named():
    graph, findings = graph_and_findings()
    shape = graph["relu"].output_shape
    opaque = Node("mystery", OpKind.OPAQUE, ["relu"], [shape], shape,
                  {"class_name": "Lambda"}, source_class="Lambda")
    g = Graph(name="g")
    for node in graph:
        if node.name == "pw":
            g.add(opaque)
            node = Node(**{**node.__dict__, "inputs": ["mystery"]})
        g.add(node)
    g.inputs, g.outputs = graph.inputs, graph.outputs
    touching = Finding("CNK998", "touches-opaque", Severity.WARNING, "mystery", "m",
                       flops_before=5, flops_after=1,
                       replacement=Replacement(["mystery"], [], "relu"))
    result = benchmark_findings(g, [findings[1], touching], batches=(1,),
                                progress=Progress(1, stream=io.StringIO()), **FAST)
    skipped = dict(result.skipped)
    assert "mystery" in skipped[touches_label(touching)]
    assert "mystery" in skipped["whole model"]
    assert result.fields_of(findings[1])["latency_before_ms"] > 0   # the rest still ran


def touches_label(finding):
    return f"{finding.code} {finding.symbol} @ {finding.layer}"


def test_measurement_text_for_the_text_formatter():
    from keras_cnnkit.lint.report import measurement_text
    f = Finding("C1", "a", Severity.INFO, "l", "m")
    assert measurement_text(f.measurements) == ""
    f.measurements.update(latency_before_ms=3.587, latency_after_ms=0.623, speedup=5.757,
                          batch=32)
    assert measurement_text(f.measurements) == "3.59 → 0.623 ms (5.76×, b32)"


def test_order_findings_falls_back_to_estimated_flops():
    a = Finding("C1", "a", Severity.INFO, "l", "m", flops_before=10, flops_after=9)
    b = Finding("C2", "b", Severity.INFO, "l", "m", flops_before=10, flops_after=1)
    c = Finding("C3", "c", Severity.INFO, "l", "m")
    assert order_findings([a, b, c], {touches_label(c): 0.5}) == [c, b, a]


@pytest.mark.gpu
def test_harness_runs_on_the_gpu_when_one_is_visible():
    """The GPU code path: the device the harness reports and measures on is the GPU."""
    visible, why = gpu_available()
    if not visible:
        print(f"GPU test skipped: {why}")
        pytest.skip(why)
    graph, findings = graph_and_findings(size=56, channels=64)
    result = benchmark_findings(graph, findings[1:2], batches=(1, 32),
                                progress=Progress(1, stream=io.StringIO()))
    assert result.device.kind == "gpu"
    m = result.fields_of(findings[1])
    assert m["device"].startswith("gpu:") and m["latency_before_ms"] > 0


def test_benchmark_a_live_model_end_to_end():
    """lint → time every fix → measurements in the report, findings re-ordered."""
    from keras_cnnkit.bench import benchmark
    x = keras.Input((6, 6, 16))
    y = keras.layers.Conv2D(16, 5, padding="same", name="c5")(x)
    y = keras.layers.Flatten(name="flat")(y)
    model = keras.Model(x, keras.layers.Dense(8, name="fc")(y))
    report, result = benchmark(model, batches=(1,), progress=Progress(1, stream=io.StringIO()),
                               **FAST)
    # every alternative of every site is timed
    fixable = [f for f in report.rule_findings if f.replacement is not None]
    assert {f.symbol for f in fixable} >= {"large-kernel", "flatten-dense-head"}
    assert all(report.measurements_of(f)["batch"] == 1 for f in fixable)
    savings = [result.fields_of(f)["saving_ms"] for f in result.findings
               if result.fields_of(f)]
    assert savings == sorted(savings, reverse=True)
    # the report's sites were rebuilt with the measurements, deciding at batch 1
    assert report.benchmark is result and report.context().batches == (1,)
    assert all(set(alt.measured) <= {1} for site in report.findings
               for alt in site.alternatives)
    # the whole-model A/B applies what a bare --fix would; on this tiny model the timings
    # may leave no fix recommended, and then it is skipped with that reason
    if any(site.recommended is not None for site in report.findings):
        assert result.whole_model and result.whole_model[0].after.median_ms > 0
    else:
        assert any(what == "whole model" and "no fix to apply" in why
                   for what, why in result.skipped)


def test_benchmark_a_file_with_a_lambda_never_runs_it(tmp_path):
    """An opaque Lambda: the fixes around it are timed, it is named as skipped, and the
    file's code is never executed (the Lambda would create a marker file)."""
    from keras_cnnkit.bench import benchmark
    marker = tmp_path / "lambda-ran"
    fn = eval(f"lambda t: t * 1.0 if open({str(marker)!r}, 'w') else t")  # pylint: disable=eval-used
    x = keras.Input((6, 6, 16))
    y = keras.layers.Conv2D(16, 5, padding="same", name="c5")(x)
    y = keras.layers.Lambda(fn, name="mystery")(y)
    model = keras.Model(x, keras.layers.GlobalAveragePooling2D(name="gap")(y))
    path = tmp_path / "lam.keras"
    model.save(path)
    marker.unlink()
    report, result = benchmark(str(path), batches=(1,),
                               progress=Progress(1, stream=io.StringIO()), **FAST)
    assert not marker.exists()
    large = report.by_rule("large-kernel")
    assert large and report.measurements_of(large[0])["latency_before_ms"] > 0
    skipped = dict(result.skipped)
    assert "mystery" in skipped["whole model"]


def test_measure_interleaved_alternates_samples():
    order = []
    now = [0.0]

    def make(tag, seconds):
        def run():
            order.append(tag)
            now[0] += seconds
        return run

    a, b = measure_interleaved([(make("a", 0.002), lambda _: None),
                                (make("b", 0.004), lambda _: None)],
                               warmup=1, repeats=3, min_sample_s=0.0, clock=lambda: now[0])
    assert order == ["a", "a", "b", "b"] + ["a", "b"] * 3   # warm-up + calibration, then ABAB
    assert a.median_ms == pytest.approx(2.0) and b.median_ms == pytest.approx(4.0)


def test_measure_interleaved_retakes_a_measurement_with_a_wide_spread():
    """A burst during the first attempt (one side's samples all over the place): the
    measurement is taken again and the steady attempt is kept."""
    now = [0.0]
    durations = iter([0.001] * 4                      # warm-up + calibration of a and b
                     + [0.001, 0.001] + [0.001, 0.004] + [0.001, 0.001]   # attempt 1: b bursts
                     + [0.001] * 6                      # attempt 2: steady
                     + [0.001] * 100)

    def run():
        now[0] += next(durations)

    a, b = measure_interleaved([(run, lambda _: None), (run, lambda _: None)],
                               warmup=1, repeats=3, min_sample_s=0.0, clock=lambda: now[0],
                               max_rel_iqr=0.1)
    assert a.attempts == b.attempts == 2
    assert b.median_ms == pytest.approx(1.0) and b.iqr_ms == pytest.approx(0.0)
    # without the option the burst stays in the figures
    now[0] = 0.0
    durations = iter([0.001] * 4 + [0.001, 0.001, 0.001, 0.004, 0.001, 0.001] + [0.001] * 10)
    _, b = measure_interleaved([(run, lambda _: None), (run, lambda _: None)], warmup=1,
                               repeats=3, min_sample_s=0.0, clock=lambda: now[0])
    assert b.attempts == 1 and b.iqr_ms == pytest.approx(1.5)
