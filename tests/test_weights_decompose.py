"""The decompositions that carry trained kernels, checked in numpy from their definitions.

Each approximate method gets a kernel of planted (known) rank: the test builds it from
orthonormal factors and known singular values, composes the returned factors itself (with
its own einsum or loops, never the module's helpers), and asserts exactness at full rank
and, below it, an error equal to the energy of the discarded singular values.
"""
import itertools

import numpy as np
import pytest

from keras_cnnkit.rewrite import decompose
from keras_cnnkit.rewrite.decompose import RankRule

S = np.array([5.0, 4.0, 3.0, 2.0, 1.0])


def orthonormal(rng, n, k):
    """An ``(n, k)`` matrix with orthonormal columns."""
    q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return q[:, :k]


def discarded(s, rank):
    """The Frobenius error of a rank-``rank`` truncation: √(Σ of the dropped s²)."""
    return float(np.sqrt(np.sum(np.asarray(s)[rank:] ** 2)))


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# -- truncated SVD (Dense) ----------------------------------------------------------


def test_svd_dense_exact_at_full_rank_and_discarded_energy_below(rng):
    a, b = orthonormal(rng, 12, 5), orthonormal(rng, 7, 5)
    kernel = a @ np.diag(S) @ b.T                       # (in 12, out 7), rank 5
    first, second = decompose.svd_dense(kernel, 5)
    assert first.shape == (12, 5) and second.shape == (5, 7)
    np.testing.assert_allclose(first @ second, kernel, atol=1e-12)
    for rank in (1, 2, 3, 4):
        first, second = decompose.svd_dense(kernel, rank)
        assert np.linalg.norm(first @ second - kernel) == pytest.approx(discarded(S, rank))


# -- Tucker-2 and the input-mode form -------------------------------------------------


def planted_tucker(rng, k=3, c_in=6, c_out=8):
    """``K[h,w,i,o] = Σ_j s_j E_j[h,w] A[i,j] B[o,j]``: both channel unfoldings have
    singular values ``S`` (A, B orthonormal, each E_j of unit norm)."""
    a, b = orthonormal(rng, c_in, len(S)), orthonormal(rng, c_out, len(S))
    e = rng.standard_normal((len(S), k, k))
    e /= np.linalg.norm(e.reshape(len(S), -1), axis=1)[:, None, None]
    return np.einsum("j,jhw,ij,oj->hwio", S, e, a, b)


def test_tucker2_exact_at_full_rank_and_discarded_energy_below(rng):
    kernel = planted_tucker(rng)
    for rank in (5, 6):                                  # 6 > the planted rank: still exact
        reduce, core, expand = decompose.tucker2(kernel, rank, rank)
        assert reduce.shape == (1, 1, 6, rank) and expand.shape == (1, 1, rank, 8)
        rebuilt = np.einsum("ia,hwab,bo->hwio", reduce[0, 0], core, expand[0, 0])
        np.testing.assert_allclose(rebuilt, kernel, atol=1e-12)
    for rank in (1, 2, 3, 4):
        reduce, core, expand = decompose.tucker2(kernel, rank, rank)
        rebuilt = np.einsum("ia,hwab,bo->hwio", reduce[0, 0], core, expand[0, 0])
        assert np.linalg.norm(rebuilt - kernel) == pytest.approx(discarded(S, rank))


def test_tucker_in_exact_at_full_rank_and_discarded_energy_below(rng):
    kernel = planted_tucker(rng)
    for rank in (5, 2):
        reduce, conv = decompose.tucker_in(kernel, rank)
        assert reduce.shape == (1, 1, 6, rank) and conv.shape == (3, 3, rank, 8)
        rebuilt = np.einsum("ia,hwao->hwio", reduce[0, 0], conv)
        assert np.linalg.norm(rebuilt - kernel) == pytest.approx(discarded(S, rank), abs=1e-12)


def test_tucker2_of_a_full_kernel_is_bounded_by_both_modes(rng):
    kernel = rng.standard_normal((3, 3, 8, 10))
    s_in = np.linalg.svd(np.moveaxis(kernel, 2, 0).reshape(8, -1), compute_uv=False)
    s_out = np.linalg.svd(np.moveaxis(kernel, 3, 0).reshape(10, -1), compute_uv=False)
    reduce, core, expand = decompose.tucker2(kernel, 4, 5)
    error = np.linalg.norm(np.einsum("ia,hwab,bo->hwio", reduce[0, 0], core, expand[0, 0])
                           - kernel)
    assert max(discarded(s_in, 4), discarded(s_out, 5)) <= error + 1e-9
    assert error <= np.hypot(discarded(s_in, 4), discarded(s_out, 5)) + 1e-9


# -- spatial factorisation -------------------------------------------------------------


@pytest.mark.parametrize("first_axis", [1, 0])
def test_spatial_svd_exact_at_full_rank_and_discarded_energy_below(rng, first_axis):
    n, c_in, c_out = 3, 4, 5
    a = orthonormal(rng, n * c_in, len(S)).reshape(n, c_in, len(S))   # along the first axis
    b = orthonormal(rng, n * c_out, len(S)).reshape(n, c_out, len(S))  # along the other
    if first_axis == 1:   # K[h, w, i, o] = Σ_j s_j a_j[w, i] b_j[h, o]
        kernel = np.einsum("j,wij,hoj->hwio", S, a, b)
    else:                 # K[h, w, i, o] = Σ_j s_j a_j[h, i] b_j[w, o]
        kernel = np.einsum("j,hij,woj->hwio", S, a, b)
    for rank in (5, 3, 1):
        first, second = decompose.spatial_svd(kernel, rank, first_axis)
        if first_axis == 1:
            assert first.shape == (1, n, c_in, rank) and second.shape == (n, 1, rank, c_out)
            rebuilt = np.einsum("wij,hjo->hwio", first[0], second[:, 0])
        else:
            assert first.shape == (n, 1, c_in, rank) and second.shape == (1, n, rank, c_out)
            rebuilt = np.einsum("hij,wjo->hwio", first[:, 0], second[0])
        assert np.linalg.norm(rebuilt - kernel) == pytest.approx(discarded(S, rank), abs=1e-12)


# -- rank-m per input channel: depthwise × pointwise -----------------------------------


def test_depthwise_pointwise_exact_at_full_rank_and_discarded_energy_below(rng):
    k, c_in, c_out = 3, 3, 6
    s = np.array([[3.0, 2.0, 1.0], [4.0, 0.5, 0.25], [1.0, 1.0, 1.0]])  # per input channel
    kernel = np.zeros((k, k, c_in, c_out))
    for i in range(c_in):
        u, v = orthonormal(rng, k * k, 3), orthonormal(rng, c_out, 3)
        kernel[:, :, i, :] = (u @ np.diag(s[i]) @ v.T).reshape(k, k, c_out)
    for m in (3, 2, 1):
        depthwise, pointwise = decompose.depthwise_pointwise(kernel, m)
        assert depthwise.shape == (k, k, c_in, m) and pointwise.shape == (1, 1, c_in * m, c_out)
        # Keras' depthwise output channel i·m + t feeds pointwise row i·m + t.
        rebuilt = np.einsum("hwit,ito->hwio", depthwise,
                            pointwise[0, 0].reshape(c_in, m, c_out))
        expected = float(np.sqrt(np.sum(s[:, m:] ** 2)))
        assert np.linalg.norm(rebuilt - kernel) == pytest.approx(expected, abs=1e-12)


# -- stacked 3×3 kernels -----------------------------------------------------------------


def composite(kernels):
    """The kernel of stacked stride-1 convs with nothing between: by the definition,
    summing every path of taps (explicit loops)."""
    out = kernels[0]
    for nxt in kernels[1:]:
        size = tuple(a + b - 1 for a, b in zip(out.shape[:2], nxt.shape[:2]))
        acc = np.zeros(size + (out.shape[2], nxt.shape[3]))
        for p, q, r, t in itertools.product(range(out.shape[0]), range(out.shape[1]),
                                            range(nxt.shape[0]), range(nxt.shape[1])):
            acc[p + r, q + t] += out[p, q] @ nxt[r, t]
        out = acc
    return out


def test_stacked_exact_where_the_width_represents_the_kernel(rng):
    kernel = rng.standard_normal((5, 5, 3, 4))
    kernels = decompose.stacked(kernel, 2, 12)          # 4 tiles × 3 input channels
    assert [k.shape for k in kernels] == [(3, 3, 3, 12), (3, 3, 12, 4)]
    np.testing.assert_allclose(composite(kernels), kernel, atol=1e-10)
    kernel7 = rng.standard_normal((7, 7, 2, 3))
    kernels = decompose.stacked(kernel7, 3, 40)
    assert [k.shape[:2] for k in kernels] == [(3, 3)] * 3
    np.testing.assert_allclose(composite(kernels), kernel7, atol=1e-10)


def test_stacked_last_kernel_is_the_least_squares_fit(rng):
    """Below that width the last kernel is the least-squares solution given the first:
    the test solves the same problem with its own design matrix."""
    kernel = rng.standard_normal((5, 5, 3, 4))
    first, last = decompose.stacked(kernel, 2, 5)
    rows, cols = [], []
    for p, q, i in itertools.product(range(5), range(5), range(3)):
        row = np.zeros((3, 3, 5))
        for r, t in itertools.product(range(3), range(3)):
            if 0 <= p - r < 3 and 0 <= q - t < 3:
                row[r, t] = first[p - r, q - t, i]
        rows.append(row.reshape(-1))
        cols.append(kernel[p, q, i])
    best, *_ = np.linalg.lstsq(np.array(rows), np.array(cols), rcond=None)
    ours = np.linalg.norm(composite([first, last]) - kernel)
    optimum = np.linalg.norm(composite([first, best.reshape(3, 3, 5, 4)]) - kernel)
    assert ours == pytest.approx(optimum, rel=1e-9)
    assert 0 < ours < np.linalg.norm(kernel)


def test_stacked_rejects_a_window_that_is_not_2_depth_plus_1():
    with pytest.raises(ValueError):
        decompose.stacked(np.zeros((5, 5, 1, 1)), 3, 4)


# -- heads ----------------------------------------------------------------------------------


def test_gap_dense_is_exact_on_spatially_constant_features(rng):
    h, w, c, units = 3, 4, 5, 6
    kernel = rng.standard_normal((h * w * c, units))
    features = rng.standard_normal(c)
    constant = np.broadcast_to(features, (h, w, c))       # every position the same
    flat = constant.reshape(-1)                           # channels-last Flatten order
    position, channel = decompose.flatten_positions((h, w, c), channels_first=False)
    np.testing.assert_allclose(features @ decompose.gap_dense(kernel, channel, c),
                               flat @ kernel, atol=1e-12)
    varying = rng.standard_normal((h, w, c))
    assert not np.allclose(varying.mean(axis=(0, 1)) @ decompose.gap_dense(kernel, channel, c),
                           varying.reshape(-1) @ kernel)
    assert list(position[:c]) == [0] * c                  # first position, every channel


def test_dense_as_conv_is_exact(rng):
    h, w, c, units = 3, 4, 5, 6
    kernel = rng.standard_normal((h * w * c, units))
    x = rng.standard_normal((h, w, c))
    position, channel = decompose.flatten_positions((h, w, c), channels_first=False)
    conv = decompose.dense_as_conv(kernel, (h, w), position, channel)
    assert conv.shape == (h, w, c, units)
    np.testing.assert_allclose(np.einsum("hwc,hwcu->u", x, conv), x.reshape(-1) @ kernel,
                               atol=1e-12)


def test_flatten_positions_follow_the_tensor_layout():
    # channels_first (C, H, W) flattened as is: channel-major
    position, channel = decompose.flatten_positions((2, 1, 3), channels_first=True)
    assert list(channel) == [0, 0, 0, 1, 1, 1] and list(position) == [0, 1, 2, 0, 1, 2]
    # Flatten(data_format="channels_first") moves the channels last first
    position, channel = decompose.flatten_positions((2, 1, 3), channels_first=True,
                                                    flatten_channels_first=True)
    assert list(channel) == [0, 1, 0, 1, 0, 1] and list(position) == [0, 0, 1, 1, 2, 2]


# -- ranks ------------------------------------------------------------------------------------


def test_rank_rules():
    s = [4.0, 2.0, 1.0, 1.0]                             # energies 16, 4, 1, 1 of 22
    assert RankRule.parse(None).choose(s, 7) == 7        # the rule's width
    assert RankRule.parse("3").choose(s, 7) == 3
    assert RankRule.parse(2).choose(s, 7) == 2
    assert RankRule.parse("energy:0.7").choose(s, 7) == 1   # 16/22 = 0.727
    assert RankRule.parse("energy:0.9").choose(s, 7) == 2   # 20/22 = 0.909
    assert RankRule.parse("energy:1").choose(s, 7) == 4
    assert RankRule.parse("ratio:0.25").choose(s, 7) == 1
    assert RankRule.parse("ratio:0.5").choose(s, 7) == 2
    assert str(RankRule.parse("energy:0.95")) == "energy:0.95"
    for bad in ("energy:0", "ratio:1.5", "half", "energy:x", "0"):
        with pytest.raises(ValueError):
            RankRule.parse(bad)
