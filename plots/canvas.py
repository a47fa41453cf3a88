"""The one matplotlib setting: the Agg backend (no screen needed), set before pyplot is imported."""
from __future__ import annotations

import io


def figure(ncols: int = 1, *, size: tuple[float, float] | None = None, nrows: int = 1):
    """(pyplot, figure, axes) of ``nrows`` x ``ncols`` panels, laid out to fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = size or (5.2 * ncols, 4.4 * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=size, constrained_layout=True, squeeze=False)
    return plt, fig, axes if nrows > 1 else (axes[0] if ncols > 1 else axes[0][0])


def png(plt, fig, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()
