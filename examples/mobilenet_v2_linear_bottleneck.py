"""Why MobileNetV2 keeps its projection linear: ReLU destroys low-dimensional manifolds.

Reproduces Figure 1 of Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018 (https://arxiv.org/abs/1801.04381): a 2-D spiral is embedded into n dimensions by a random
matrix T, passed through ReLU, and projected back with the pseudo-inverse of T.  With
n = 2, 3 or 5 much of the spiral is lost; with n = 15 or 30 it survives almost intact.  That is
why the ``relu-after-projection`` lint rule flags a non-linearity after a narrow projection.

Run: ``python examples/mobilenet_v2_linear_bottleneck.py [--out DIR] [--trials N]``.
Prints the mean share of the spiral that no affine map can recover, per dimension, and
writes a PNG.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

DIMS = (2, 3, 5, 15, 30)


def spiral(n_points: int = 400) -> np.ndarray:
    """A 2-D spiral, shape (n_points, 2), centred on the origin."""
    t = np.linspace(0.0, 4.0 * np.pi, n_points)
    r = t / (4.0 * np.pi)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def relu_roundtrip(x: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Embed ``x`` into ``dim`` dimensions, apply ReLU, project back with pinv(T)."""
    t = rng.standard_normal((2, dim))
    return np.maximum(x @ t, 0.0) @ np.linalg.pinv(t)


def reconstruction_error(x: np.ndarray, y: np.ndarray) -> float:
    """What no affine map can undo: the residual of the best fit ``y @ A + b ≈ x``.

    Relative to the spread of ``x``; 0 means the spiral survived up to an affine map.
    """
    design = np.hstack([y, np.ones((len(y), 1))])
    coef, *_ = np.linalg.lstsq(design, x, rcond=None)
    return float(np.linalg.norm(design @ coef - x) / np.linalg.norm(x - x.mean(axis=0)))


def run(trials: int = 50, seed: int = 0) -> dict:
    """Mean reconstruction error per embedding dimension over ``trials`` random T."""
    rng = np.random.default_rng(seed)
    x = spiral()
    return {dim: float(np.mean([reconstruction_error(x, relu_roundtrip(x, dim, rng))
                                for _ in range(trials)])) for dim in DIMS}


def plot(path: str, seed: int = 0) -> None:
    """Draw the spiral and its ReLU round trip at each dimension (the paper's Figure 1)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    x = spiral()
    fig, axes = plt.subplots(1, len(DIMS) + 1, figsize=(3 * (len(DIMS) + 1), 3))
    axes[0].scatter(x[:, 0], x[:, 1], c=np.arange(len(x)), s=4, cmap="viridis")
    axes[0].set_title("input")
    for ax, dim in zip(axes[1:], DIMS):
        y = relu_roundtrip(x, dim, rng)
        ax.scatter(y[:, 0], y[:, 1], c=np.arange(len(y)), s=4, cmap="viridis")
        ax.set_title(f"output/dim={dim}")
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> dict:
    """Print the table, write the PNG, and check the paper's claim."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("examples", "out"))
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="fewer trials")
    args = parser.parse_args(argv)
    errors = run(trials=20 if args.quick else args.trials)
    print(f"{'embedding dim':>14} | {'share lost to ReLU':>26}")
    print("-" * 43)
    for dim, err in errors.items():
        print(f"{dim:>14} | {err:>26.3f}")
    os.makedirs(args.out, exist_ok=True)
    png = os.path.join(args.out, "relu_information_loss.png")
    plot(png)
    print(f"figure written to {png}")
    # The paper's Figure 1: dims 2-5 lose much, 15+ lose little.
    assert min(errors[d] for d in (2, 3, 5)) > 1.5 * max(errors[d] for d in (15, 30)), errors
    assert all(errors[a] > errors[b] for a, b in zip(DIMS, DIMS[1:])), errors
    return errors


if __name__ == "__main__":
    main()
