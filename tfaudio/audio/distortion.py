"""Mel cepstral distortion (MCD) between two utterances of the same text, after dynamic
time warping, so a synthesised utterance is compared with the real recording even
when its timing differs.

MCD [dB] = (10 / ln 10) * sqrt(2 * sum_{d=1..D} (c_d - c'_d)^2), averaged over the
DTW path, where c are the DCT-II (orthonormal) cepstra of the natural-log mel
spectrum without c_0 (energy). Lower is better; identical inputs give 0.
"""

from __future__ import annotations

import numpy as np

_MCD_SCALE = 10.0 / np.log(10.0) * np.sqrt(2.0)


def mel_cepstrum(log_mel: np.ndarray, coefficients: int = 13) -> np.ndarray:
    """Cepstra [T, coefficients] (c_0 first) of natural-log mel frames [T, n_mels]."""
    n = log_mel.shape[-1]
    k = np.arange(coefficients)[:, None]
    basis = np.cos(np.pi * k * (np.arange(n)[None, :] + 0.5) / n) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return log_mel @ basis.T


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) of the cheapest monotone path through cost [T1, T2] from (0, 0)
    to (T1 - 1, T2 - 1) with steps (1, 0), (0, 1) and (1, 1)."""
    t1, t2 = cost.shape
    total = np.full((t1 + 1, t2 + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, t1 + 1):
        row = total[i - 1, :-1]
        diag_or_up = np.minimum(row, total[i - 1, 1:]) + cost[i - 1]
        # left moves within a row are a running minimum
        current = np.empty(t2)
        best = np.inf
        for j in range(t2):
            best = min(diag_or_up[j], best + cost[i - 1, j])
            current[j] = best
        total[i, 1:] = current
    i, j, path = t1 - 1, t2 - 1, [(t1 - 1, t2 - 1)]
    while i > 0 or j > 0:
        moves = [(total[i, j], i - 1, j - 1), (total[i, j + 1], i - 1, j), (total[i + 1, j], i, j - 1)]
        _, i, j = min((m for m in moves if m[1] >= 0 and m[2] >= 0), key=lambda m: m[0])
        path.append((i, j))
    pairs = np.array(path[::-1])
    return pairs[:, 0], pairs[:, 1]


def mel_cepstral_distortion(log_mel_a: np.ndarray, log_mel_b: np.ndarray, coefficients: int = 13) -> float:
    """MCD in dB between natural-log mel frames [T1, n_mels] and [T2, n_mels] after DTW."""
    a = mel_cepstrum(np.asarray(log_mel_a, np.float64), coefficients)[:, 1:]
    b = mel_cepstrum(np.asarray(log_mel_b, np.float64), coefficients)[:, 1:]
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    cost = np.sqrt(np.sum(np.square(a[:, None, :] - b[None, :, :]), -1))
    i, j = dtw_path(cost)
    return float(_MCD_SCALE * np.mean(cost[i, j]))
