"""Figures logged with runs. matplotlib is imported here only, with a non-interactive backend."""

from __future__ import annotations

import torch


def samples_figure(samples: torch.Tensor, reference: torch.Tensor, title: str, max_points: int = 3000):
    """Scatter of the first two coordinates of samples (over the reference); 1-D data as histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = samples[:max_points].detach().double().cpu().reshape(min(len(samples), max_points), -1).numpy()
    r = reference[:max_points].detach().double().cpu().reshape(min(len(reference), max_points), -1).numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    if s.shape[1] == 1:
        ax.hist(r[:, 0], bins=60, density=True, alpha=0.5, label="reference")
        ax.hist(s[:, 0], bins=60, density=True, alpha=0.5, label="samples")
    else:
        ax.scatter(r[:, 0], r[:, 1], s=2, alpha=0.3, label="reference", color="tab:gray")
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.4, label="samples", color="tab:blue")
        ax.set_xlabel("x[0]")
        ax.set_ylabel("x[1]")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8, markerscale=4)
    fig.tight_layout()
    return fig
