"""o1pruner.plots: the figures the demo writes (length histograms before /
after, length and accuracy per difficulty before / after with the relative
change, training curves) render headless and save non-empty PNGs."""

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import o1pruner  # noqa: E402
from o1pruner import plots  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def result(name, mean_len, acc, seed, n=60):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        level = 1 + i % 3
        length = max(1, int(rng.normal(mean_len * (0.7 + 0.3 * level), 5)))
        recs.append({"problem_id": i, "problem": f"p{i}", "ground_truth_answer": "1", "solution": "x",
                     "length": length, "correct": bool(rng.random() < acc / level), "difficulty": level})
    return o1pruner.evaluate_samples(recs, name=name)


def history(steps, lam=False, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(1, steps + 1):
        r = 1 + 0.01 * rng.normal()
        out.append({"step": s, "loss": float(rng.normal()), "clip_fraction": float(rng.random() * 0.1),
                    "ratio_mean": r, "ratio_min": r - 0.02, "ratio_max": r + 0.02, "approx_kl": 1e-3 * s,
                    "lam": 2.0 + 0.1 * s if lam else None, "lr": 1e-4})
    return out


@pytest.fixture
def results():
    return {"reference": result("reference", 100, 0.9, 0), "O1-Pruner": result("O1-Pruner", 60, 0.9, 1)}


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000


def test_no_pyplot_and_no_display(tmp_path):
    # the figures use matplotlib.figure.Figure and the Agg canvas: no pyplot
    # state, no GUI backend, no display needed (a fresh process without DISPLAY)
    import os
    import subprocess

    code = ("import sys, numpy as np, o1pruner\n"
            "from o1pruner import plots\n"
            "recs = [{'problem_id': i, 'problem': 'p', 'ground_truth_answer': '1', 'solution': 'x', 'length': 5 + i,\n"
            "         'correct': i % 2 == 0, 'difficulty': 1 + i % 2} for i in range(10)]\n"
            "r = o1pruner.evaluate_samples(recs, name='m')\n"
            "fig = plots.length_histograms({'m': r})\n"
            "plots.save_figure(fig, sys.argv[1])\n"
            "print(type(fig.canvas).__name__, 'matplotlib.pyplot' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(o1pruner.__file__)))
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "h.png")], env=env, capture_output=True, text=True,
                       timeout=120, cwd=str(tmp_path))  # not the source tree: `-c` puts the cwd first on sys.path
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["FigureCanvasAgg", "False"]
    assert_png(tmp_path / "h.png")


def test_length_histograms(results, tmp_path):
    fig = plots.length_histograms(results, bins=20, title="before / after")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("reference (mean ") and labels[1].startswith("O1-Pruner (mean ")
    # the dashed mean markers sit at the means
    xs = sorted(line.get_xdata()[0] for line in ax.lines)
    assert xs == pytest.approx(sorted(r.mean_length for r in results.values()))
    assert ax.get_title() == "before / after"
    plots.save_figure(fig, str(tmp_path / "h.png"))
    assert_png(tmp_path / "h.png")


def test_per_difficulty_panels(results, tmp_path):
    fig = plots.per_difficulty(results)
    ax_len, ax_acc, ax_rel = fig.axes[:3]
    assert [a.get_title() for a in (ax_len, ax_acc, ax_rel)] == [
        "Length per difficulty", "Accuracy per difficulty", "Length change per difficulty"]
    ref, new = results["reference"], results["O1-Pruner"]
    # bar heights: mean length per level of each model, then the relative change
    heights = [p.get_height() for p in ax_len.patches]
    want = [b["mean_length"] for b in ref.buckets] + [b["mean_length"] for b in new.buckets]
    assert heights == pytest.approx(want)
    acc = [p.get_height() for p in ax_acc.patches]
    assert acc == pytest.approx([100 * b["accuracy"] for b in ref.buckets] + [100 * b["accuracy"] for b in new.buckets])
    rel = [p.get_height() for p in ax_rel.patches]
    assert rel == pytest.approx([100 * (b["mean_length"] - a["mean_length"]) / a["mean_length"]
                                 for a, b in zip(ref.buckets, new.buckets)])
    # bars start at 0 (issue 12: an axis cut at 88% exaggerated the differences)
    assert ax_acc.get_ylim()[0] == 0.0 and ax_acc.get_ylim()[1] >= 100
    plots.save_figure(fig, str(tmp_path / "d.png"))
    assert_png(tmp_path / "d.png")
    # one model: no relative panel
    one = plots.per_difficulty({"reference": ref})
    assert len(one.axes) == 2
    with pytest.raises(ValueError, match="results"):
        plots.per_difficulty({})


def test_training_curves(tmp_path):
    fig = plots.training_curves({"O1-Pruner": history(30, lam=True), "SFT-shortest": history(1, seed=1)})
    titles = [a.get_title() for a in fig.axes]
    assert titles == ["loss", "clip fraction", "ratio (mean, min-max)", plots.KL_LABEL, "lambda", "learning rate"]
    loss = fig.axes[0]
    assert len(loss.lines) == 2 and len(loss.lines[1].get_xdata()) == 1
    assert loss.lines[1].get_marker() == "o"  # a one-step run stays visible
    lam = fig.axes[4]
    assert len(lam.lines) == 1 and np.allclose(lam.lines[0].get_ydata(), [2.0 + 0.1 * s for s in range(1, 31)])
    plots.save_figure(fig, str(tmp_path / "t.png"))
    assert_png(tmp_path / "t.png")
    # the KL panel is the k3 estimate, ratio_mean - 1 + approx_kl: never negative
    # even where the k1 estimate (approx_kl) is
    h = history(4)
    h[1]["approx_kl"], h[1]["ratio_mean"] = -0.01, 1.0101
    h[2]["approx_kl"], h[2]["ratio_mean"] = -0.02, 0.97
    kl = plots.training_curves({"run": h}).axes[3]
    got = kl.lines[0].get_ydata()
    want = [max(0.0, r["ratio_mean"] - 1 + r["approx_kl"]) for r in h]
    assert np.allclose(got, want) and (got >= 0).all() and got[2] == 0.0
    # a quantity no run logs (lambda without the dual ascent) gets no panel
    fig = plots.training_curves({"run": history(5)})
    assert [a.get_title() for a in fig.axes] == ["loss", "clip fraction", "ratio (mean, min-max)", plots.KL_LABEL,
                                                 "learning rate"]
    assert all(a.lines for a in fig.axes)


def test_missing_matplotlib_is_a_clear_error(monkeypatch, results):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plots.length_histograms(results)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plots.require_matplotlib()
