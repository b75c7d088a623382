"""Figures of an O1-Pruner run: length histograms before and after, length
and accuracy per difficulty bucket, training curves. Built on
``matplotlib.figure.Figure`` without pyplot, so they work headless (Agg) and
display inline in Jupyter; each function returns the Figure."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

__all__ = ["length_histograms", "per_difficulty", "training_curves", "save_figure", "require_matplotlib",
           "study_tradeoff", "study_levels", "study_lambda_curve"]

_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def require_matplotlib() -> None:
    """Raise a clear ImportError when matplotlib cannot be imported (a
    dependency of the package; a stripped environment may lack it). Long
    runs call this before they start, not when they are about to plot."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError as e:
        raise ImportError(f"plots need matplotlib (pip install matplotlib), which cannot be imported: {e}") from None


def _figure(w: float, h: float):
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), layout="constrained")


def save_figure(fig, path: str, dpi: int = 120) -> None:
    """Save a figure as PNG (Agg canvas; no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi)


def length_histograms(results: Mapping[str, Any], *, bins: int = 40, title: Optional[str] = None):
    """Histograms of the generated lengths of several models on the same
    problems (e.g. reference vs pruned), with each mean marked.

    Parameters
    ----------
    results : {name: EvalResult}
    bins : int
    """
    fig = _figure(7.5, 3.8)
    ax = fig.add_subplot()
    lengths = {k: np.asarray(v.lengths, dtype=np.float64) for k, v in results.items()}
    allv = np.concatenate([v for v in lengths.values() if v.size])
    edges = np.histogram_bin_edges(allv, bins=bins) if allv.size else bins
    for (name, L), c in zip(lengths.items(), _COLORS):
        ax.hist(L, bins=edges, histtype="stepfilled", alpha=0.25, color=c)
        ax.hist(L, bins=edges, histtype="step", color=c, linewidth=1.5, label=f"{name} (mean {L.mean():.1f})")
        ax.axvline(L.mean(), color=c, linestyle="--", linewidth=1)
    ax.set_xlabel("length of the greedy solution (tokens)")
    ax.set_ylabel("problems")
    ax.legend(frameon=False)
    ax.set_title(title or "Solution lengths on held-out problems")
    return fig


def per_difficulty(results: Mapping[str, Any], *, xlabel: str = "difficulty level"):
    """Mean length and accuracy per difficulty bucket, grouped bars per
    model, with the 95% intervals of each bucket as error bars; with two or
    more models, a third panel gives each later model's length change per
    bucket relative to the first (the reference), which shows whether a
    model shortens easy problems more than hard ones.

    Parameters
    ----------
    results : {name: EvalResult}
        Results with the same buckets (e.g. the task's levels); the first is
        the reference of the relative panel.
    """
    names = list(results)
    if not names:
        raise ValueError("results: need at least one model")
    relative = len(names) > 1
    fig = _figure(14.5 if relative else 10, 3.8)
    axes = fig.subplots(1, 3 if relative else 2)
    ax_len, ax_acc = axes[0], axes[1]
    buckets = [b["bucket"] for b in results[names[0]].buckets]
    x = np.arange(len(buckets))
    width = 0.8 / max(1, len(names))
    for j, (name, c) in enumerate(zip(names, _COLORS)):
        bmap = {b["bucket"]: b for b in results[name].buckets}
        rows = [bmap.get(k) for k in buckets]
        L = np.array([r["mean_length"] if r else np.nan for r in rows])
        Lci = np.array([r["length_ci"] if r else (np.nan, np.nan) for r in rows], dtype=np.float64)
        A = np.array([100 * r["accuracy"] if r else np.nan for r in rows])
        Aci = 100 * np.array([r["accuracy_ci"] if r else (np.nan, np.nan) for r in rows], dtype=np.float64)
        off = (j - (len(names) - 1) / 2) * width
        ax_len.bar(x + off, L, width, color=c, label=name,
                   yerr=np.abs(np.stack([L - Lci[:, 0], Lci[:, 1] - L])), capsize=2, error_kw={"linewidth": 0.8})
        ax_acc.bar(x + off, A, width, color=c, label=name,
                   yerr=np.abs(np.stack([A - Aci[:, 0], Aci[:, 1] - A])), capsize=2, error_kw={"linewidth": 0.8})
    for ax in (ax_len, ax_acc):
        ax.set_xticks(x, [str(b) for b in buckets])
        ax.set_xlabel(xlabel)
    ax_len.set_ylabel("mean length (tokens)")
    ax_len.set_title("Length per difficulty")
    ax_acc.set_ylabel("accuracy (%)")
    ax_acc.set_title("Accuracy per difficulty")
    # bars start at 0: a cut axis would make small differences look large
    ax_acc.set_ylim(0.0, 105.0)
    ax_len.legend(frameon=False, fontsize=8)
    if relative:
        ax_rel = axes[2]
        ref = {b["bucket"]: b["mean_length"] for b in results[names[0]].buckets}
        width_r = 0.8 / (len(names) - 1)
        for j, (name, c) in enumerate(zip(names[1:], _COLORS[1:])):
            bmap = {b["bucket"]: b for b in results[name].buckets}
            rel = np.array([100 * (bmap[k]["mean_length"] - ref[k]) / ref[k] if k in bmap and ref.get(k) else np.nan
                            for k in buckets])
            off = (j - (len(names) - 2) / 2) * width_r
            ax_rel.bar(x + off, rel, width_r, color=c, label=name)
        ax_rel.axhline(0.0, color="black", linewidth=0.8)
        ax_rel.set_xticks(x, [str(b) for b in buckets])
        ax_rel.set_xlabel(xlabel)
        ax_rel.set_ylabel(f"length change vs {names[0]} (%)")
        ax_rel.set_title("Length change per difficulty")
    return fig


KL_LABEL = "KL(ref || policy), k3 estimate"


def _kl_k3(h: Mapping[str, Any]) -> Optional[float]:
    """The k3 estimate of KL(pi_ref || pi_theta) of one step's log: the mean
    of ``r - 1 - log r`` over the same ratios as ``ratio_mean`` and
    ``approx_kl`` (the k1 mean of ``-log r``), i.e. ``ratio_mean - 1 +
    approx_kl``. Each term is >= 0, so unlike k1 it cannot go negative
    (a float rounding residue below 0 is shown as 0)."""
    if h.get("ratio_mean") is None or h.get("approx_kl") is None:
        return None
    return max(0.0, float(h["ratio_mean"]) - 1.0 + float(h["approx_kl"]))


def training_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]]):
    """Per-step training logs (:attr:`o1pruner.Trainer.history`) of one or
    more runs: loss, clip fraction, sequence ratio (mean with min-max band),
    KL(ref || policy) (the k3 estimate, never negative), lambda (only when
    a run logs it: the dual ascent) and learning rate. A quantity no run
    logs gets no panel."""
    panels = [("loss", "loss"), ("clip_fraction", "clip fraction"), ("ratio_mean", "ratio (mean, min-max)"),
              ("kl_k3", KL_LABEL), ("lam", "lambda"), ("lr", "learning rate")]

    def values(hist, key):
        if key == "kl_k3":
            return np.array([np.nan if _kl_k3(h) is None else _kl_k3(h) for h in hist], dtype=np.float64)
        return np.array([np.nan if h.get(key) is None else h[key] for h in hist], dtype=np.float64)

    panels = [(k, lab) for k, lab in panels
              if any(np.isfinite(values(h, k)).any() for h in histories.values() if len(h))]
    if not panels:
        raise ValueError("histories: no run logs any step")
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = _figure(4 * ncols, 3 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax in axes[len(panels):]:
        ax.remove()
    for (key, label), ax in zip(panels, axes):
        for (name, hist), c in zip(histories.items(), _COLORS):
            steps = np.array([h["step"] for h in hist])
            vals = values(hist, key)
            if not np.isfinite(vals).any():
                continue
            # markers on short runs, where a line of one or two steps is invisible
            ax.plot(steps, vals, color=c, label=name, linewidth=1.3, marker="o" if len(steps) < 25 else None, markersize=3)
            if key == "ratio_mean":
                lo = np.array([h["ratio_min"] for h in hist], dtype=np.float64)
                hi = np.array([h["ratio_max"] for h in hist], dtype=np.float64)
                ax.fill_between(steps, lo, hi, color=c, alpha=0.15)
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
    axes[0].legend(frameon=False, fontsize=8)
    return fig


# ---- the study's figures (o1pruner study; arguments: a study.json dict) ----------------------

def _mean_err(st: Mapping[str, Any], scale: float = 100.0):
    """(mean, [[below], [above]]) of a study statistic; a missing interval
    draws no bar."""
    m = st.get("mean")
    if m is None:
        return np.nan, np.zeros((2, 1))
    ci = st.get("ci") or [None, None]
    if ci[0] is None or ci[1] is None:
        return scale * m, np.zeros((2, 1))
    return scale * m, np.array([[scale * (m - ci[0])], [scale * (ci[1] - m)]])


def study_tradeoff(study: Mapping[str, Any]):
    """Accuracy change against length change per arm of a study (means
    over seeds with their 95% t-intervals as error bars); the reference
    is the origin."""
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot()
    ax.axhline(0.0, color="black", linewidth=0.7)
    ax.axvline(0.0, color="black", linewidth=0.7)
    ax.plot([0], [0], marker="*", color="black", markersize=11, linestyle="none", label="reference")
    colors = _COLORS + ("#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")
    for a, c in zip(study["arms"], colors * 3):
        s = study["summary"][a["name"]]
        x, xe = _mean_err(s["delta_length"])
        y, ye = _mean_err(s["delta_accuracy"])
        if not np.isfinite(x):
            continue
        ax.errorbar([x], [y], xerr=xe, yerr=ye, marker="o", color=c, capsize=3, linestyle="none", label=a["label"])
    ax.set_xlabel("length change vs reference (%)")
    ax.set_ylabel("accuracy change (points)")
    ax.set_title(f"Accuracy vs length, mean over {len(study['seeds'])} seeds (95% t-intervals)")
    ax.legend(frameon=False, fontsize=7, loc="best")
    return fig


def study_levels(study: Mapping[str, Any]):
    """Relative length change per difficulty level for each arm of a study
    (means over seeds with 95% t-intervals): a difficulty-aware method
    cuts the easy levels more."""
    levels = list(study["levels"])
    if not levels:
        return None
    fig = _figure(9.0, 4.2)
    ax = fig.add_subplot()
    x = np.arange(len(levels))
    arms = study["arms"]
    width = 0.8 / max(1, len(arms))
    colors = _COLORS + ("#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd")
    for j, (a, c) in enumerate(zip(arms, colors * 3)):
        rows = {r["level"]: r for r in study["per_level"][a["name"]]}
        ms, errs = zip(*[_mean_err(rows[lv]["delta_length"]) if lv in rows else (np.nan, np.zeros((2, 1)))
                         for lv in levels])
        off = (j - (len(arms) - 1) / 2) * width
        ax.bar(x + off, ms, width, color=c, label=a["label"], yerr=np.hstack(errs), capsize=2,
               error_kw={"linewidth": 0.7})
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, [str(lv) for lv in levels])
    ax.set_xlabel("difficulty level (1 = easiest)")
    ax.set_ylabel("length change vs reference (%)")
    ax.set_title("Length cut per level (mean over seeds, 95% t-intervals)")
    ax.legend(frameon=False, fontsize=7, ncol=2)
    return fig


def study_lambda_curve(study: Mapping[str, Any]):
    """Length change and accuracy change against lambda (O1-Pruner, the
    demo's other settings), means over seeds with 95% t-intervals; the
    ``lam="auto"`` arm, when run, as a horizontal band. None with fewer
    than two lambdas."""
    curve = list(study["lambda_curve"])
    if len(curve) < 2:
        return None
    fig = _figure(10.0, 3.8)
    ax_l, ax_a = fig.subplots(1, 2)
    lams = np.array([r["lam"] for r in curve], dtype=np.float64)
    for ax, key, ylab in ((ax_l, "delta_length", "length change (%)"), (ax_a, "delta_accuracy", "accuracy change (points)")):
        ms, errs = zip(*[_mean_err(r[key]) for r in curve])
        ax.errorbar(lams, ms, yerr=np.hstack(errs), marker="o", color=_COLORS[0], capsize=3, label="fixed lambda")
        auto = study["summary"].get("o1pruner_auto")
        if auto is not None and auto[key]["mean"] is not None:
            m, e = _mean_err(auto[key])
            ax.axhline(m, color=_COLORS[1], linestyle="--", linewidth=1, label="lambda = auto")
            if e.any():
                ax.axhspan(m - e[0, 0], m + e[1, 0], color=_COLORS[1], alpha=0.15)
        ax.axhline(0.0, color="black", linewidth=0.7)
        ax.set_xlabel("lambda")
        ax.set_ylabel(ylab)
    ax_l.set_title("Length vs lambda")
    ax_a.set_title("Accuracy vs lambda")
    ax_a.legend(frameon=False, fontsize=8)
    return fig
