"""The Viterbi decoding of trajectory matching against brute force over every path of small models."""

from __future__ import annotations

import itertools
import math

import numpy as np

from server.streets.viterbi import decode, settled


def best_into(emit: np.ndarray, trans: np.ndarray, last: int) -> tuple[float, tuple[int, ...]]:
    """The best path of one sequence ending in state ``last``, by enumerating every path."""
    steps, states = emit.shape
    best: tuple[float, tuple[int, ...]] = (-math.inf, ())
    for path in itertools.product(range(states), repeat=steps - 1):
        full = (*path, last)
        score = emit[0, full[0]] + sum(trans[k, full[k], full[k + 1]] + emit[k + 1, full[k + 1]]
                                       for k in range(steps - 1))
        if score > best[0]:
            best = (score, full)
    return best


def test_settled_steps_are_those_where_the_best_paths_into_every_last_state_agree() -> None:
    rng = np.random.default_rng(5)
    checked = agreed = 0
    for _ in range(60):
        n_seqs, steps, states = 2, int(rng.integers(2, 6)), 3
        emit = rng.normal(0, 1.5, (n_seqs, steps, states))
        emit[rng.random(emit.shape) < 0.15] = -math.inf  # a segment not near that fix
        emit[:, :, 0] = np.maximum(emit[:, :, 0], -2.0)  # every fix keeps one state
        group = rng.integers(0, 2, (n_seqs, steps, states))
        trans = rng.normal(0, 1.0, (n_seqs, steps - 1, states, states)) - 3.0 * (
            group[:, :-1, :, None] != group[:, 1:, None, :])
        path, score, pointer = decode(emit, trans)
        got = settled(pointer, score[:, -1] > -math.inf, group)
        for s in range(n_seqs):
            ends = [best_into(emit[s], trans[s], j) for j in range(states)]
            paths = [p for value, p in ends if value > -math.inf]
            assert max(ends)[1] == tuple(path[s]), "the best path is the brute force's"
            for k in range(steps):
                want = len({int(group[s, k, p[k]]) for p in paths}) == 1
                assert bool(got[s, k]) == want, (s, k)
                checked += 1
                agreed += want
    assert 0 < agreed < checked, "both outcomes occur"


def test_the_last_step_is_settled_only_when_all_its_states_share_a_group() -> None:
    emit = np.array([[[0.0, -1.0], [0.0, -1.0]]])
    trans = np.zeros((1, 1, 2, 2))
    _, score, pointer = decode(emit, trans)
    # Both best paths start in state 0 (the likelier, and no cost to leave it): step 0 is settled.
    assert settled(pointer, score[:, -1] > -math.inf, np.array([[[1, 2], [1, 2]]])).tolist() == [[True, False]]
    assert settled(pointer, score[:, -1] > -math.inf, np.array([[[1, 2], [1, 1]]]))[0, 1]
