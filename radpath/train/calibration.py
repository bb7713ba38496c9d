"""Calibration and the refer threshold, fitted on a run's held-out split (never on test data).

A clinician reading "G, 0.91" needs that 0.91 to mean about nine in ten. Softmax outputs of a
network trained with label smoothing and class-balanced sampling are not calibrated, so one
temperature T is fitted (probabilities = mean over the test-time views of softmax(logits / T)) by
minimising the negative log-likelihood on the held-out split; the exporter builds T into the
SavedModel, so served probabilities are the calibrated ones.

T is never below MIN_TEMPERATURE = 1: the fit may soften the trained model's probabilities, never
sharpen them. Label smoothing leaves a network's probabilities a little under its accuracy on cases
like its training cases, so a small held-out split (45 cases in the demo) that happens to be easy asks
for T well under 1 (0.54-0.89 in seven demo-recipe runs), and new cases are harder than that split.
Measured on a fresh 150-case cohort of the same generator (README, tests/bench/bench_calibration_rule.py):
with the free fit, ECE 0.07-0.14 (mean 0.100); with T >= 1, 0.05-0.08 (mean 0.065) against a sampling
floor of about 0.07, and the NLL lower in 5 of 7 runs (mean 0.570 -> 0.525); the best temperature there
was 0.82-1.11. `temperature_free` in the report keeps what the split alone asked for.

The refer threshold is the smallest top-class probability at which the held-out cases that would be
accepted have an error rate at or under the target (default 5 %); below it the answer is "refer".
It is fitted only on at least `contract.refer.MIN_THRESHOLD_CASES` cases; on fewer it is "not
assessed" (`contract.refer.NOT_ASSESSED`) and every answer of the model is referred.
Both are chosen on the same small split they are reported on, which flatters them: `cross_fitted`
gives the honest estimate (fit on one half, measure on the other, and the reverse).
"""

from __future__ import annotations

import numpy as np

from radpath.contract.refer import MIN_THRESHOLD_CASES, NOT_ASSESSED, REFER_MAX_ERROR

ECE_BINS = 15
MIN_TEMPERATURE = 1.0
"""The fitted temperature's lower bound: calibration never sharpens the trained probabilities (module docstring)."""
_T_GRID = np.exp(np.linspace(np.log(0.05), np.log(20.0), 241))


def views_to_proba(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """[n, 3] probabilities from per-view logits [n, views, 3]: the mean of softmax(logits / T)."""
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    return p.mean(axis=1)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0))))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: sum over equal-width confidence bins of |accuracy - confidence| x bin share."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, lowest: float = MIN_TEMPERATURE) -> float:
    """The T >= `lowest` minimising the NLL of `views_to_proba(logits, T)` (grid, then a local refinement).
    `lowest=0` fits freely (what the split alone asks for)."""
    if len(labels) == 0:
        return max(1.0, lowest)
    grid = _T_GRID
    if lowest > grid[0]:
        grid = np.concatenate([[lowest], grid[grid >= lowest]])
    losses = np.array([nll(views_to_proba(logits, t), labels) for t in grid])
    i = int(losses.argmin())
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    fine = np.linspace(lo, hi, 41)
    return float(fine[int(np.argmin([nll(views_to_proba(logits, t), labels) for t in fine]))])


def refer_threshold(probs: np.ndarray, labels: np.ndarray, max_error: float = REFER_MAX_ERROR) -> float:
    """Smallest top-class probability t such that the cases with confidence >= t have an error rate
    <= `max_error` (the most cases accepted). 1.0 (refer everything) when no t achieves it."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    best = 1.0
    for t in np.unique(conf)[::-1]:
        accepted = conf >= t
        if 1.0 - correct[accepted].mean() <= max_error:
            best = float(t)
    return best


def coverage_report(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """Share of cases accepted (not referred) and their error rate at `threshold`."""
    accepted = probs.max(axis=1) >= threshold
    correct = probs.argmax(axis=1) == labels
    return {
        "threshold": float(threshold),
        "coverage": float(accepted.mean()) if len(labels) else 0.0,
        "accepted": int(accepted.sum()),
        "referred": int((~accepted).sum()),
        "accepted_error_rate": float(1.0 - correct[accepted].mean()) if accepted.any() else None,
    }


def ece_noise_floor(probs: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE a perfectly calibrated model with these probabilities would show on this many cases
    (labels drawn from its own probabilities): on a small split, the ECE that is sampling noise alone."""
    if len(probs) == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    cum = np.cumsum(probs, axis=1)
    out = []
    for _ in range(draws):
        labels = (rng.random((len(probs), 1)) > cum).sum(axis=1).clip(0, probs.shape[1] - 1)
        out.append(expected_calibration_error(probs, labels))
    return float(np.mean(out))


def calibrate(logits: np.ndarray, labels: np.ndarray, max_error: float = REFER_MAX_ERROR, seed: int = 0) -> dict:
    """Temperature, refer threshold and their report on the held-out split; see the module docstring."""
    before = views_to_proba(logits, 1.0)
    t = fit_temperature(logits, labels)
    after = views_to_proba(logits, t)
    assessed = len(labels) >= MIN_THRESHOLD_CASES
    threshold = refer_threshold(after, labels, max_error) if assessed else NOT_ASSESSED
    report = {
        "temperature": t,
        "temperature_free": fit_temperature(logits, labels, lowest=0.0),
        "min_temperature": MIN_TEMPERATURE,
        "bins": ECE_BINS,
        "n": int(len(labels)),
        "ece_before": expected_calibration_error(before, labels),
        "nll_before": nll(before, labels),
        "ece_after": expected_calibration_error(after, labels),
        "nll_after": nll(after, labels),
        "refer_max_error": max_error,
        "refer": {**coverage_report(after, labels, threshold), "assessed": assessed},
        "cross_fitted": cross_fitted(logits, labels, max_error, seed),
        "ece_noise_floor": ece_noise_floor(after, seed=seed),
    }
    return report


def cross_fitted(
    logits: np.ndarray, labels: np.ndarray, max_error: float, seed: int, lowest: float = MIN_TEMPERATURE
) -> dict | None:
    """ECE and refer coverage/error when T (>= `lowest`, as in `fit_temperature`) and the threshold are
    fitted on one half of the split and measured on the other (both ways, pooled): what to expect on new cases."""
    n = len(labels)
    if n < 10:
        return None
    order = np.random.default_rng(seed).permutation(n)
    halves = (order[: n // 2], order[n // 2 :])
    probs = np.zeros((n, logits.shape[-1]))
    accepted = np.zeros(n, dtype=bool)
    for fit_idx, eval_idx in (halves, halves[::-1]):
        t = fit_temperature(logits[fit_idx], labels[fit_idx], lowest)
        thr = refer_threshold(views_to_proba(logits[fit_idx], t), labels[fit_idx], max_error)
        probs[eval_idx] = views_to_proba(logits[eval_idx], t)
        accepted[eval_idx] = probs[eval_idx].max(axis=1) >= thr
    correct = probs.argmax(axis=1) == labels
    return {
        "ece": expected_calibration_error(probs, labels),
        "nll": nll(probs, labels),
        "coverage": float(accepted.mean()),
        "accepted_error_rate": float(1.0 - correct[accepted].mean()) if accepted.any() else None,
    }


def reliability_diagram(
    probs_before: np.ndarray,
    probs_after: np.ndarray,
    labels: np.ndarray,
    path,
    title: str = "Reliability (held-out split)",
) -> None:
    """PNG: accuracy against confidence per bin, before and after temperature scaling."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(0, 1, ECE_BINS + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    fig, ax = plt.subplots(figsize=(4.8, 4.8), dpi=100)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    for probs, name, color in ((probs_before, "before", "#d62728"), (probs_after, "after (T)", "#1f77b4")):
        conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
        which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, ECE_BINS - 1)
        acc = [correct[which == b].mean() if (which == b).any() else np.nan for b in range(ECE_BINS)]
        ece = expected_calibration_error(probs, labels)
        ax.plot(centers, acc, "o-", color=color, label=f"{name}: ECE {ece:.3f}")
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}, n={len(labels)}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
