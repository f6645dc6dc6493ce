"""The word-finder, for the microphone and for files: a voice-activity gate cuts the audio into utterances, each
utterance is classified once, and the commands among them enter a list (live mode shows it newest first).

Why once per utterance, with a window centred on it: the model learned one-second clips that hold one word and
start from a zero state. The recurrent state of the step view carries one word into the next, and a window
that slides by chunks cuts the word at a different place each time it is said; both gave a repeated word
different answers. A one-second window centred on the utterance's energy is the same window wherever the
word falls in the stream, so the same word gets the same answer. It costs one forward pass per utterance.
A file goes through the same `Listener` in one push (`find_words`): the gate decides per 20 ms frame whatever the
push size, so a file gets the list live mode would give it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from app.bundle import is_command, top
from app.inputs import NOISE_FLATNESS, spectral_flatness

FRAME_SECONDS = 0.02  # the gate decides per 20 ms frame, the usual VAD frame: short enough for word edges
FLOOR_SECONDS = 2.0  # noise floor = the quietest frame of the last 2 s: a command is shorter, a pause is not
OPEN_DB = 9.0  # a frame this far above the floor opens an utterance ...
CLOSE_DB = 5.0  # ... which stays open while frames stay this far above it (hysteresis: no flicker at the edge)
MIN_OPEN_DBFS = -55.0  # in a silent room the floor is very low: a breath or hum below this never opens
HANGOVER_SECONDS = 0.3  # quiet inside a word (the closure before "t", "p") is shorter; a pause is longer
MIN_VOICED_SECONDS = 0.08  # a click or a tap is shorter than any syllable
DIGITAL_SILENCE_DBFS = -120.0  # the level of all-zero frames (log of zero)
MIN_CONFIDENCE = 0.5  # a command enters the list only when the model is at least this sure of it
MAX_ENTRIES = 50  # the list keeps the newest entries


@dataclass
class Utterance:
    """A stretch of voice, in absolute samples at the model's rate since the stream began."""

    start: int  # the first sample of the first voiced frame
    end: int  # one past the last voiced frame
    centre: int  # the energy centroid of its voiced frames


@dataclass
class Heard:
    """One entry of the list: when the utterance began and ended (s since the stream began), the word, its
    probability."""

    start: float
    end: float
    word: str
    confidence: float


@dataclass
class _Open:
    start: int
    end: int
    energy: float  # Σ x² over voiced frames
    moment: float  # Σ t·x² over voiced frames: moment / energy is the centroid
    voiced: int  # voiced samples


class VoiceGate:
    """An energy gate over 20 ms frames: an utterance opens OPEN_DB above the noise floor and closes after
    HANGOVER_SECONDS below CLOSE_DB above it, or when it has lasted `max_samples` (what one window can hold).

    The floor is the quietest frame of the last FLOOR_SECONDS, so it follows the room (fan, street, a
    recording's noise bed) and a word does not lift it. push(samples) → the utterances that closed.
    """

    def __init__(self, rate: int, max_samples: int) -> None:
        self.frame = max(1, round(FRAME_SECONDS * rate))
        self.levels: deque[float] = deque(maxlen=max(1, round(FLOOR_SECONDS / FRAME_SECONDS)))
        self.hangover = round(HANGOVER_SECONDS * rate)
        self.min_voiced = round(MIN_VOICED_SECONDS * rate)
        self.max_samples = max_samples
        self.rest = torch.zeros(0)  # samples short of a whole frame, waiting for the next push
        self.position = 0  # absolute index of rest[0]
        self.current: _Open | None = None

    @property
    def is_open(self) -> bool:
        """Whether an utterance is in progress (someone is speaking, or was within the hangover)."""
        return self.current is not None

    def push(self, samples: Tensor) -> list[Utterance]:
        """Samples (k,) at the model's rate → the utterances that closed within them."""
        buffer = torch.cat([self.rest, samples])
        n = buffer.shape[0] // self.frame
        frames = buffer[: n * self.frame].double().view(n, self.frame).pow(2)
        index = self.position + torch.arange(n * self.frame, dtype=torch.float64).view(n, self.frame)
        energy, moment = frames.sum(1).tolist(), (frames * index).sum(1).tolist()
        closed = []
        for f in range(n):
            utterance = self._frame(self.position + f * self.frame, energy[f], moment[f])
            if utterance is not None:
                closed.append(utterance)
        self.rest = buffer[n * self.frame :]
        self.position += n * self.frame
        return closed

    def flush(self) -> list[Utterance]:
        """The stream ended: close the utterance in progress, if any."""
        utterance = self._close() if self.current is not None else None
        return [] if utterance is None else [utterance]

    def _frame(self, start: int, energy: float, moment: float) -> Utterance | None:
        mean = energy / self.frame
        level = 10 * math.log10(mean) if mean > 0 else DIGITAL_SILENCE_DBFS
        floor = min(self.levels) if self.levels else level
        self.levels.append(max(level, DIGITAL_SILENCE_DBFS))
        end, now = start + self.frame, self.current
        if now is None:
            if level > max(floor + OPEN_DB, MIN_OPEN_DBFS):
                self.current = _Open(start, end, energy, moment, self.frame)
            return None
        if level > floor + CLOSE_DB:
            now.end, now.voiced = end, now.voiced + self.frame
            now.energy, now.moment = now.energy + energy, now.moment + moment
            return self._close() if end - now.start >= self.max_samples else None
        return self._close() if end - now.end >= self.hangover else None

    def _close(self) -> Utterance | None:
        now, self.current = self.current, None
        if now.voiced < self.min_voiced:
            return None
        return Utterance(now.start, now.end, round(now.moment / now.energy))


class Listener:
    """Gate → one centred window per utterance → `classify` → the list of commands heard.

    `classify` maps a window (W,) at the model's rate to {shown class name: probability}. An utterance waits
    until the audio up to its window's end has arrived (at most half a window after it closed), so the word
    sits in the middle of the window as in the training clips; `finish` classifies what still waits.
    `check_noise`: a 10-class model has no "silence" answer, so flat-spectrum noise is kept out by the rule
    the file classifier warns with; a 12-class model judges noise itself.
    """

    def __init__(
        self,
        rate: int,
        window: int,
        classify: Callable[[Tensor], dict[str, float]],
        check_noise: bool,
        min_confidence: float = MIN_CONFIDENCE,
    ) -> None:
        self.rate, self.window, self.classify = rate, window, classify
        self.check_noise, self.min_confidence = check_noise, min_confidence
        self.gate = VoiceGate(rate, window)
        self.recent = torch.zeros(0)  # the last few windows of audio
        self.recent_start = 0  # absolute index of recent[0]
        self.waiting: list[Utterance] = []
        self.heard: list[Heard] = []  # newest first
        self.labelled: list[tuple[Utterance, dict[str, float]]] = []  # every utterance classified, in order
        self.closed = 0  # utterances closed so far (the step engine resets its state on each)

    def push(self, samples: Tensor) -> list[Heard]:
        """Samples (k,) at the model's rate → the entries this push added to the list."""
        self.recent = torch.cat([self.recent, samples])
        # Keep what a waiting utterance's window can reach back to (≤ 2 windows), plus this push.
        drop = max(0, self.recent.shape[0] - (3 * self.window + samples.shape[0]))
        self.recent, self.recent_start = self.recent[drop:], self.recent_start + drop
        closed = self.gate.push(samples)
        self.closed += len(closed)
        self.waiting += closed
        heard_until = self.recent_start + self.recent.shape[0]
        ready = [u for u in self.waiting if self._first(u) + self.window <= heard_until]
        return self._take(ready)

    def finish(self) -> list[Heard]:
        """The stream stopped: classify the utterance in progress and those still waiting (their windows end in
        zeros, as a recording that stops there would)."""
        closed = self.gate.flush()
        self.closed += len(closed)
        self.waiting += closed
        return self._take(list(self.waiting))

    @property
    def last(self) -> tuple[Utterance, dict[str, float]] | None:
        """The latest utterance classified, with its label."""
        return self.labelled[-1] if self.labelled else None

    def rows(self) -> list[list]:
        """The list for a table: time (s), command, confidence; newest first."""
        return heard_rows(self.heard)

    def _first(self, utterance: Utterance) -> int:
        return utterance.centre - self.window // 2

    def _take(self, ready: list[Utterance]) -> list[Heard]:
        added = []
        for utterance in ready:
            self.waiting.remove(utterance)
            clip = self._clip(self._first(utterance))
            label = self.classify(clip)
            self.labelled.append((utterance, label))
            word, confidence = top(label)
            if not is_command(word) or confidence < self.min_confidence:
                continue
            if self.check_noise and spectral_flatness(clip) > NOISE_FLATNESS:
                continue
            added.append(Heard(utterance.start / self.rate, utterance.end / self.rate, word, confidence))
        self.heard = (added[::-1] + self.heard)[:MAX_ENTRIES]
        return added

    def _clip(self, first: int) -> Tensor:
        return window_at(self.recent, first - self.recent_start, self.window)


def window_at(wave: Tensor, first: int, window: int) -> Tensor:
    """The window [first, first + window) of `wave` (L,); zeros where it reaches before the start or past the end."""
    part = wave[max(0, first) : max(0, first + window)]
    left = min(window, max(0, -first))
    return torch.cat([torch.zeros(left), part, torch.zeros(window - left - part.shape[0])])


def heard_rows(heard: list[Heard]) -> list[list]:
    """Entries → rows of the "commands heard" table: time (s), command, confidence. One format for files and live."""
    return [[round(h.start, 1), h.word, f"{h.confidence:.0%}"] for h in heard]


def find_words(
    wave: Tensor, rate: int, window: int, classify: Callable[[Tensor], dict[str, float]], check_noise: bool
) -> Listener:
    """A whole recording (L,) at the model's rate through live mode's word-finder → the listener, finished: its
    `heard` (newest first) and `labelled` (every utterance with its label, in order)."""
    listener = Listener(rate, window, classify, check_noise)
    listener.push(wave)
    listener.finish()
    return listener
