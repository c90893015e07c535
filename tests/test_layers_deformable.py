"""``DeformableConv2D`` against ``Conv2D`` (zero offsets) and a plain-numpy reference."""
import keras
import numpy as np
import pytest

from keras_cnnkit.layers import DeformableConv2D, deform_conv2d


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _same_pad(size, k, s, d):
    out = -(-size // s)
    return max((out - 1) * s + (k - 1) * d + 1 - size, 0) // 2, out


def _bilinear(img, y, x):
    """Bilinear sample of ``img`` (H, W, C) at (y, x), zeros outside."""
    h, w, _ = img.shape
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    value = np.zeros(img.shape[-1])
    for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
        if 0 <= yy < h and 0 <= xx < w:
            value += (1 - abs(y - yy)) * (1 - abs(x - xx)) * img[yy, xx]
    return value


def reference(x, offsets, kernel, mask, strides, padding, dilation, groups):
    """Loop-by-loop deformable convolution (float64)."""
    b_, h, w, c = x.shape
    kh, kw, _, f = kernel.shape
    taps, cg = kh * kw, c // groups
    if padding == "same":
        top, out_h = _same_pad(h, kh, strides[0], dilation[0])
        left, out_w = _same_pad(w, kw, strides[1], dilation[1])
    else:
        top = left = 0
        out_h = (h - (kh - 1) * dilation[0] - 1) // strides[0] + 1
        out_w = (w - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    out = np.zeros((b_, out_h, out_w, f))
    for b in range(b_):
        for i in range(out_h):
            for j in range(out_w):
                cols = np.zeros((kh, kw, c))
                for ki in range(kh):
                    for kj in range(kw):
                        k = ki * kw + kj
                        for g in range(groups):
                            dy, dx = offsets[b, i, j, 2 * (g * taps + k):2 * (g * taps + k) + 2]
                            y = i * strides[0] - top + ki * dilation[0] + dy
                            xx = j * strides[1] - left + kj * dilation[1] + dx
                            val = _bilinear(x[b, :, :, g * cg:(g + 1) * cg], y, xx)
                            if mask is not None:
                                val = val * mask[b, i, j, g * taps + k]
                            cols[ki, kj, g * cg:(g + 1) * cg] = val
                out[b, i, j] = np.tensordot(cols, kernel, axes=3)
    return out


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("kwargs", [
    {}, {"strides": 2}, {"padding": "valid"}, {"dilation_rate": 2},
    {"strides": 2, "padding": "valid", "kernel_size": (3, 5)},
])
def test_zero_offsets_equal_conv2d(kwargs, rng):
    """A fresh v1 layer (zero offsets) equals Conv2D with the same kernel, to 1e-5."""
    kwargs = {"kernel_size": 3, "padding": "same", **kwargs}
    x = rng.standard_normal((2, 9, 8, 4)).astype("float32")
    layer = DeformableConv2D(5, **kwargs)
    y = _np(layer(x))
    conv = keras.layers.Conv2D(5, **kwargs)
    conv.build(x.shape)
    conv.set_weights([_np(layer.kernel), rng.standard_normal(5).astype("float32")])
    layer.bias.assign(conv.get_weights()[1])
    np.testing.assert_allclose(_np(layer(x)), _np(conv(x)), atol=1e-5)
    assert y.shape == _np(conv(x)).shape


@pytest.mark.backend_agnostic
def test_zero_offsets_unit_mask_equal_conv2d(rng):
    """``deform_conv2d`` with zero offsets and modulation 1 is a plain convolution; a
    fresh modulated layer scales every tap by sigmoid(0) = 0.5."""
    x = rng.standard_normal((2, 7, 7, 6)).astype("float32")
    kernel = rng.standard_normal((3, 3, 6, 4)).astype("float32")
    conv = _np(keras.ops.conv(x, kernel, padding="same"))
    offsets = np.zeros((2, 7, 7, 2 * 2 * 9), "float32")
    mask = np.ones((2, 7, 7, 2 * 9), "float32")
    out = deform_conv2d(x, offsets, kernel, mask, padding="same", deformable_groups=2)
    np.testing.assert_allclose(_np(out), conv, atol=1e-5)
    layer = DeformableConv2D(4, 3, modulated=True, use_bias=False)
    layer.build(x.shape)
    layer.kernel.assign(kernel)
    np.testing.assert_allclose(_np(layer(x)), 0.5 * conv, atol=1e-5)


@pytest.mark.parametrize("strides,padding,dilation,groups,modulated", [
    ((1, 1), "same", (1, 1), 1, False),
    ((1, 1), "valid", (2, 1), 2, True),
    ((1, 2), "valid", (1, 1), 2, False),
    ((2, 2), "same", (1, 1), 1, True),
])
def test_random_offsets_match_numpy_reference(rng, strides, padding, dilation, groups,
                                              modulated):
    """Random fractional offsets, some sampling outside the image, match the reference."""
    x = rng.standard_normal((2, 6, 7, 4)).astype("float32")
    layer = DeformableConv2D(3, 3, strides=strides, padding=padding, dilation_rate=dilation,
                             deformable_groups=groups, modulated=modulated)
    out_shape = layer.compute_output_shape(x.shape)
    taps = 9 * groups
    channels = taps * (3 if modulated else 2)
    # Offsets (and mask logits) vary per position: put them in a random offset-conv
    # kernel and bias, then read them back from a plain numpy convolution.
    offset_kernel = 0.3 * rng.standard_normal((3, 3, 4, channels)).astype("float32")
    offset_bias = rng.uniform(-2.5, 2.5, channels).astype("float32")
    layer.build(x.shape)
    layer.offset_conv.set_weights([offset_kernel, offset_bias])
    raw = _np(keras.ops.conv(x, offset_kernel, strides=strides, padding=padding,
                             dilation_rate=dilation)) + offset_bias
    assert raw.shape[:3] == tuple(out_shape[:3])
    offsets = raw[..., :2 * taps].astype("float64")
    mask = 1 / (1 + np.exp(-raw[..., 2 * taps:].astype("float64"))) if modulated else None
    expected = reference(x.astype("float64"), offsets, _np(layer.kernel).astype("float64"),
                         mask, strides, padding, dilation, groups) + _np(layer.bias)
    np.testing.assert_allclose(_np(layer(x)), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("modulated", [False, True])
def test_gradients_reach_the_offset_conv(rng, modulated):
    """One SGD step moves the zero-initialised offset conv (offsets and mask)."""
    x = rng.standard_normal((4, 6, 6, 3)).astype("float32")
    y = rng.standard_normal((4, 6, 6, 2)).astype("float32")
    layer = DeformableConv2D(2, 3, modulated=modulated)
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    assert not np.any(_np(layer.offset_conv.kernel))
    model.train_on_batch(x, y)
    moved = np.abs(_np(layer.offset_conv.kernel)).sum(axis=(0, 1, 2))
    assert np.all(moved[:18] > 0)  # every offset channel
    if modulated:
        assert np.all(moved[18:] > 0)  # every mask channel


def test_channels_first_equals_channels_last(rng):
    """channels_first runs (transposed internally) and agrees with channels_last."""
    x = rng.standard_normal((2, 6, 6, 4)).astype("float32")
    last = DeformableConv2D(3, 3, modulated=True)
    first = DeformableConv2D(3, 3, modulated=True, data_format="channels_first")
    last.build(x.shape)
    first.build((2, 4, 6, 6))
    weights = [w + rng.standard_normal(w.shape).astype("float32") * 0.2
               for w in last.get_weights()]
    last.set_weights(weights)
    first.set_weights(weights)
    out_first = _np(first(np.transpose(x, (0, 3, 1, 2))))
    np.testing.assert_allclose(np.transpose(out_first, (0, 2, 3, 1)), _np(last(x)), atol=1e-5)
    assert first.compute_output_shape((None, 4, 6, 6)) == (None, 3, 6, 6)
