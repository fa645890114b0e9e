"""``bow``: bag-of-words place recognition (DBoW2 scoring as in ORB-SLAM2's ``KeyFrameDatabase``), with a flat
vocabulary learnt from the keyframes themselves.

The vocabulary's ``n_words`` visual words are clustered from the keyframes' descriptors (at most ``train_samples``
of them, drawn with ``seed``): k-majority for binary descriptors (each word is the bitwise majority of its
cluster), k-means for float ones, ``iterations`` rounds. A keyframe is described by the descriptors of its
keypoints that observe map points, a query frame by all of its descriptors; each becomes a tf-idf weighted,
L1-normalised word histogram, and the similarity is DBoW2's L1 score ``sum_w min(a_w, b_w)`` (equal to
``1 - |a - b|_1 / 2``). The idf weights ``log(K / K_w)`` follow the K keyframes indexed at query time.

Incremental use (SLAM): keyframes are indexed as they arrive and forgotten when culled. The vocabulary is learnt
when the first query comes, and learnt again, from every indexed keyframe, whenever the number of keyframes has
doubled since it was last learnt; until then new keyframes are assigned to the current words. Learning it again
is local mapping's work after a keyframe (``background_fit``: learnt from a snapshot while tracking goes on with
the current words, then installed), so that no later query waits for it. ``fit`` learns it
from all keyframes at once (``build-map`` and ``replay --map-out`` do this before saving a map). A recognizer
restored from a map file keeps that map's vocabulary: the descriptors it was learnt from are not saved, only the
words of each keyframe.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rapnet_loc.errors import MapFormatError
from rapnet_loc.features.base import DISTANCES
from rapnet_loc.features.matching import pairwise_distances
from rapnet_loc.vpr.base import PlaceRecognizer, Ranking, View, register, require

ASSIGN_CHUNK = 2048
N_WORDS = 512
TRAIN_SAMPLES = 10_000
TRAIN_ITERATIONS = 5


class Vocabulary:
    """Flat visual vocabulary.

    Args:
        descriptors: (S, B) training descriptors (uint8 packed bits for ``'hamming'``, float32 for ``'l2'``).
        distance: descriptor metric.
        n_words: words wanted (fewer when there are fewer distinct training descriptors).
        samples: training descriptors used at most (a random subset of them beyond that).
        iterations: clustering rounds.
        seed: seed of the sampling and initialisation.
    Attributes:
        words: (W, B) word descriptors.
    """

    def __init__(self, descriptors: np.ndarray, distance: str, n_words: int = N_WORDS, samples: int = TRAIN_SAMPLES,
                 iterations: int = TRAIN_ITERATIONS, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.distance = distance
        if len(descriptors) > samples:
            descriptors = descriptors[rng.choice(len(descriptors), samples, replace=False)]
        unique = np.unique(descriptors, axis=0)
        self.words = unique[rng.choice(len(unique), min(n_words, len(unique)), replace=False)]
        for _ in range(iterations):
            self._update(descriptors, self.assign(descriptors))

    @classmethod
    def from_words(cls, words: np.ndarray, distance: str) -> Vocabulary:
        """A vocabulary of given (W, B) ``words``."""
        vocabulary = cls.__new__(cls)
        vocabulary.words, vocabulary.distance = words, distance
        return vocabulary

    def assign(self, descriptors: np.ndarray) -> np.ndarray:
        """(N,) int64 nearest word of each of (N, B) descriptors."""
        out = np.zeros(len(descriptors), np.int64)
        for start in range(0, len(descriptors), ASSIGN_CHUNK):
            chunk = descriptors[start:start + ASSIGN_CHUNK]
            out[start:start + len(chunk)] = pairwise_distances(chunk, self.words, self.distance).argmin(axis=1)
        return out

    def _update(self, descriptors: np.ndarray, labels: np.ndarray) -> None:
        """Each word with members becomes their bitwise majority (``'hamming'``) or mean (``'l2'``)."""
        order = np.argsort(labels, kind='stable')
        members, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        if self.distance == 'hamming':
            sums = np.add.reduceat(np.unpackbits(descriptors[order], axis=1).astype(np.int32), starts, axis=0)
            self.words[members] = np.packbits(2 * sums > counts[:, None], axis=1)
        else:
            sums = np.add.reduceat(descriptors[order].astype(np.float64), starts, axis=0)
            self.words[members] = (sums / counts[:, None]).astype(self.words.dtype)


@register('bow')
class BagOfWords(PlaceRecognizer):
    """Bag-of-words keyframe index (see the module doc). Descriptors: the (n, B) local descriptors of a view."""

    default_conf = {'n_words': N_WORDS, 'train_samples': TRAIN_SAMPLES, 'iterations': TRAIN_ITERATIONS, 'seed': 0}

    def __init__(self, conf: dict | None = None):
        super().__init__(conf)
        self.vocabulary: Vocabulary | None = None
        self._descriptors: dict[int, np.ndarray] | None = {}    # None once restored: the vocabulary is fixed
        self._words: dict[int, np.ndarray] = {}                 # keyframe id -> (n,) word of each descriptor
        self._trained_on = 0

    @property
    def ids(self) -> list[int]:
        return list(self._words)

    def describe(self, view: View) -> np.ndarray:
        descriptors = view.features.descriptors
        return descriptors if view.observed is None else descriptors[view.observed]

    def add(self, kf_id: int, descriptor: np.ndarray) -> None:
        kf_id = int(kf_id)
        if self._descriptors is not None:
            self._descriptors[kf_id] = descriptor
        self._words[kf_id] = (np.zeros(0, np.int64) if self.vocabulary is None
                              else self.vocabulary.assign(descriptor))

    def remove(self, kf_id: int) -> None:
        self._words.pop(int(kf_id), None)
        if self._descriptors is not None:
            self._descriptors.pop(int(kf_id), None)

    def fit(self) -> None:
        """Learn the vocabulary from every indexed keyframe's descriptors and re-assign their words (nothing to do
        without keyframes, or for a recognizer restored from a file)."""
        if self._descriptors:
            self._install(*self._learn(self._descriptors))

    def background_fit(self) -> Callable[[], Callable[[], None]] | None:
        """Once the keyframes have doubled since the vocabulary was learnt (by the first query, then here): learning
        from a snapshot of them (it leaves the index alone), which returns the install of its result (keyframes
        indexed or re-indexed meanwhile get their words then, forgotten ones stay forgotten)."""
        if self.vocabulary is None or not self._stale():
            return None
        snapshot = dict(self._descriptors)

        def learn() -> Callable[[], None]:
            vocabulary, words, trained_on = self._learn(snapshot)

            def install() -> None:
                unchanged = {k: w for k, w in words.items() if self._descriptors.get(k) is snapshot[k]}
                self._install(vocabulary, unchanged, trained_on)
            return install
        return learn

    def _learn(self, descriptors: dict[int, np.ndarray]) -> tuple[Vocabulary | None, dict[int, np.ndarray], int]:
        """A vocabulary learnt from keyframes' ``descriptors`` {id: (n, B)}, their words and their number (no
        vocabulary when they have no descriptors)."""
        stacked = np.concatenate(list(descriptors.values()))
        if len(stacked) == 0:
            return None, {}, 0
        distance = 'hamming' if stacked.dtype == np.uint8 else 'l2'
        conf = self.conf
        vocabulary = Vocabulary(stacked, distance, conf['n_words'], conf['train_samples'], conf['iterations'],
                                conf['seed'])
        return vocabulary, {k: vocabulary.assign(d) for k, d in descriptors.items()}, len(descriptors)

    def _install(self, vocabulary: Vocabulary | None, words: dict[int, np.ndarray], trained_on: int) -> None:
        """Use ``vocabulary``, learnt from ``trained_on`` keyframes, with the ``words`` of the keyframes they were
        learnt from; the other indexed keyframes are assigned to it here."""
        if vocabulary is None:
            return
        self.vocabulary, self._trained_on = vocabulary, trained_on
        self._words = {k: words[k] if k in words else vocabulary.assign(d) for k, d in self._descriptors.items()}

    def _stale(self) -> bool:
        return self._descriptors is not None and bool(self._words) and (
            self.vocabulary is None or len(self._words) >= 2 * self._trained_on)

    def query(self, descriptor: np.ndarray, k: int | None = None) -> Ranking:
        """Keyframes by L1 score, best first; those sharing no word with the query score 0. Learns the vocabulary
        when there is none yet (re-learning it is ``background_fit``'s)."""
        if self.vocabulary is None and self._stale():
            self.fit()
        if not self._words or self.vocabulary is None or len(descriptor) == 0:
            return Ranking(np.zeros(0, np.int64), np.zeros(0))
        n = len(self.vocabulary.words)
        ids = np.array(list(self._words), np.int64)
        counts = np.stack([np.bincount(w, minlength=n) for w in self._words.values()]).astype(np.float64)
        idf = np.log(len(ids) / np.maximum((counts > 0).sum(axis=0), 1))
        vectors = _normalise(counts * idf)
        query = _normalise(np.bincount(self.vocabulary.assign(descriptor), minlength=n) * idf)
        scores = np.minimum(vectors, query).sum(axis=1)
        order = np.argsort(-scores, kind='stable')[:k]
        return Ranking(ids[order], scores[order])

    def state(self) -> dict[str, np.ndarray]:
        if self._stale():
            self.fit()
        words = [self._words[k] for k in self.ids]
        return {'words': np.zeros((0, 0), np.uint8) if self.vocabulary is None else self.vocabulary.words,
                'distance': np.array('' if self.vocabulary is None else self.vocabulary.distance),
                'ids': np.array(self.ids, np.int64),
                'offsets': np.r_[0, np.cumsum([len(w) for w in words])].astype(np.int64),
                'kf_words': np.concatenate(words).astype(np.int64) if words else np.zeros(0, np.int64)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        require(state, ('words', 'distance', 'ids', 'offsets', 'kf_words'), self.name)
        words, distance, ids, offsets = state['words'], str(state['distance']), state['ids'], state['offsets']
        kf_words = state['kf_words']
        if (distance not in DISTANCES or len(offsets) != len(ids) + 1 or offsets[-1] != len(kf_words)
                or np.any(np.diff(offsets) < 0) or np.any((kf_words < 0) | (kf_words >= len(words)))):
            raise MapFormatError(f'the saved state of place recognizer {self.name!r} is inconsistent (metric '
                                 f'{distance!r}, {len(ids)} keyframes, {len(offsets)} offsets, {len(words)} words)')
        self.vocabulary = Vocabulary.from_words(words, distance)
        self._words = {int(k): kf_words[a:b] for k, a, b in zip(ids.tolist(), offsets[:-1], offsets[1:])}
        self._descriptors, self._trained_on = None, len(ids)


def _normalise(v: np.ndarray) -> np.ndarray:
    """Rows of ``v`` divided by their sums (L1)."""
    return v / np.maximum(v.sum(axis=-1, keepdims=True), 1e-12)
