"""A generated stream of real spoken commands, and a score for a list of words found in it.

The clips come from the Speech Commands testing partition (`../shared/data/speech_commands_real`), speakers the
bundled model never heard; quiet and loud words alternate over a steady noise bed, with pauses of 0.3 to 1.5 s.
Where each word is (its "position") is measured on the clip alone, before mixing: the frames within 25 dB of
the clip's loudest one, so the truth does not come from the word-finder under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.serving import load_audio

REAL_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "speech_commands_real"
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
RATE = 16000
LOUD_PEAK, QUIET_PEAK = 0.7, 0.04  # peak amplitudes: about −3 dBFS and −28 dBFS
BED_RMS = 10 ** (-62 / 20)  # the room's noise between words, −62 dBFS
WORD_DB = 25.0  # a frame within this many dB of the clip's loudest frame is part of the word


@dataclass
class Word:
    """One word in the stream: what was said and where its loud frames are, in seconds."""

    word: str
    start: float
    end: float
    quiet: bool


def pick_clips(n_words: int, seed: int = 0) -> list[tuple[str, Path]]:
    """(word, path) of `n_words` testing-partition clips: the words in turn, speakers and takes drawn by `seed`."""
    listed = (REAL_DATA / "testing_list.txt").read_text().split()
    by_word = {w: sorted(line for line in listed if line.split("/")[0] == w) for w in WORDS}
    rng = np.random.default_rng(seed)
    picks = []
    for i in range(n_words):
        word = WORDS[(i * 3) % len(WORDS)]  # 3 is coprime to 10: all ten words before one repeats
        picks.append((word, REAL_DATA / by_word[word][int(rng.integers(len(by_word[word])))]))
    return picks


def word_span(clip: np.ndarray, rate: int = RATE, frame_s: float = 0.02) -> tuple[float, float]:
    """The first and last 20 ms frame within WORD_DB of the loudest one → (start s, end s) in the clip."""
    frame = round(frame_s * rate)
    n = clip.shape[0] // frame
    level = 10 * np.log10(np.square(clip[: n * frame].astype(np.float64)).reshape(n, frame).mean(1) + 1e-20)
    loud = np.flatnonzero(level > level.max() - WORD_DB)
    return loud[0] * frame / rate, (loud[-1] + 1) * frame / rate


def real_word_stream(n_words: int = 15, seed: int = 0) -> tuple[torch.Tensor, list[Word]]:
    """(the stream (L,) at 16 kHz, its words): pause, clip, pause, ..., pause; every other word quiet."""
    rng = np.random.default_rng(seed + 1)
    parts, words, at = [], [], 0.0
    for i, (word, path) in enumerate(pick_clips(n_words, seed)):
        pause = np.zeros(round(rng.uniform(0.3, 1.5) * RATE), np.float32)
        clip = load_audio(path).numpy()
        quiet = i % 2 == 1
        clip = clip * ((QUIET_PEAK if quiet else LOUD_PEAK) / np.abs(clip).max())
        at += pause.shape[0] / RATE
        start, end = word_span(clip)
        words.append(Word(word, at + start, at + end, quiet))
        parts += [pause, clip]
        at += clip.shape[0] / RATE
    parts.append(np.zeros(RATE, np.float32))
    stream = np.concatenate(parts)
    stream += rng.standard_normal(stream.shape[0]).astype(np.float32) * BED_RMS
    return torch.from_numpy(stream), words


@dataclass
class Score:
    """How a list of (start s, end s, word) found in a stream compares with the words said."""

    found: int  # word positions with a listed entry
    right: int  # ... whose listed word is the word said
    missed: list[Word]
    false: list[tuple[float, float, str]]  # entries over no word, or a second entry for one word

    def __str__(self) -> str:
        quiet = sum(w.quiet for w in self.missed)
        return (
            f"found {self.found}, of them {self.right} the right word; missed {len(self.missed)} ({quiet} quiet); "
            f"false {len(self.false)}"
        )


def score(listed: list[tuple[float, float, str]], words: list[Word]) -> Score:
    """Match each listed (start, end, word), oldest first, to the first word said not yet matched whose loud
    frames it overlaps."""
    taken: dict[int, str] = {}
    false = []
    for start, end, word in sorted(listed):
        hit = [i for i, w in enumerate(words) if start < w.end and w.start < end and i not in taken]
        if hit:
            taken[hit[0]] = word
        else:
            false.append((start, end, word))
    right = sum(words[i].word == word for i, word in taken.items())
    missed = [w for i, w in enumerate(words) if i not in taken]
    return Score(len(taken), right, missed, false)
