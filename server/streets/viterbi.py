"""Max-product decoding of many hidden-Markov sequences at once, on (sequence, step, state) arrays.

What trajectory matching (``server.streets.trajectory``) decodes: one sequence per uninterrupted
run of a truck's lifts, the states the segments near each fix. The sequences of a batch are
stacked and padded: an impossible state scores -inf, and a sequence shorter than the longest is
carried to the end by identity steps (emission 0, transition 0 to the same state, -inf elsewhere),
which change no score. The loops are over steps only; the sums are those of a scalar Viterbi,
in the same order, so the results are the same to the last bit.
"""

from __future__ import annotations

import math

import numpy as np


def decode(emit: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best path, max-marginals, back-pointers) of log-scores ``emit`` (sequences, steps, states)
    and ``trans`` (sequences, steps - 1, from state, to state).

    ``max_marginal[s, k, j]`` is the score of the best whole path through state j at step k: the
    max-product forward pass plus the backward pass. ``pointer[s, k, j]`` is the state at step k
    of the best path into state j at step k + 1. Equal scores go to the first state.
    """
    n_seqs, n_steps, n_states = emit.shape
    forward = np.empty(emit.shape)
    pointer = np.zeros((n_seqs, max(n_steps - 1, 0), n_states), dtype=np.intp)
    forward[:, 0] = emit[:, 0]
    for k in range(1, n_steps):
        values = forward[:, k - 1, :, None] + trans[:, k - 1]
        pointer[:, k - 1] = values.argmax(axis=1)  # the first of equals, as a strict > scan
        forward[:, k] = values.max(axis=1) + emit[:, k]
    backward = np.zeros(emit.shape)
    for k in range(n_steps - 1, 0, -1):
        backward[:, k - 1] = (trans[:, k - 1] + emit[:, k, None, :] + backward[:, k, None, :]).max(axis=2)
    path = np.empty((n_seqs, n_steps), dtype=np.intp)
    path[:, -1] = forward[:, -1].argmax(axis=1)
    rows = np.arange(n_seqs)
    for k in range(n_steps - 2, -1, -1):
        path[:, k] = pointer[rows, k, path[:, k + 1]]
    return path, forward + backward, pointer


def settled(pointer: np.ndarray, alive: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per (sequence, step): whether the best paths into every possible last state (``alive``,
    sequences x states) all pass through one group (a street) at that step.

    Whatever comes next, the best path of a longer sequence runs through one of today's last
    states and follows its back-pointers from there: where they all agree, no later step can change
    the group (the convergence point of online map matching, Goh et al. 2012).
    """
    n_seqs, n_steps, _ = group.shape
    agreed = np.ones((n_seqs, n_steps), dtype=bool)
    for k in range(n_steps - 1, -1, -1):
        lowest = np.where(alive, group[:, k], np.iinfo(np.int64).max).min(axis=1)
        highest = np.where(alive, group[:, k], -1).max(axis=1)
        agreed[:, k] = lowest >= highest
        if k:
            seq, state = np.nonzero(alive)
            alive = np.zeros_like(alive)
            alive[seq, pointer[seq, k - 1, state]] = True
    return agreed


def identity_steps(n_states: int) -> np.ndarray:
    """The transition of a padding step: stay in the same state, at no cost."""
    return np.where(np.eye(n_states, dtype=bool), 0.0, -math.inf)


def group_confidence(score: np.ndarray, group: np.ndarray, path: np.ndarray) -> list[list[float]]:
    """Per (sequence, step): the best path through the chosen state's group (a street) against the
    best through each group among the states, ``1 / sum(exp(other - best))``, groups summed in the
    order of their first state; ``group`` is -1 for a padded state."""
    same = group[..., :, None] == group[..., None, :]
    best_of = np.where(same, score[..., None, :], -math.inf).max(axis=-1)  # per state: its group's best
    earlier = np.tril(np.ones(same.shape[-2:], dtype=bool), k=-1)
    first = ~(same & earlier).any(axis=-1) & (group >= 0)  # the first state of each group
    top = np.take_along_axis(best_of, path[..., None], axis=-1)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):  # padding steps have no state
        shares = np.where(first, np.exp(best_of - top), 0.0)
        return (1.0 / shares.sum(axis=-1)).tolist()
