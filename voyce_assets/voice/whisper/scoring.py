"""``confidence_score``: Whisper re-reading a transcript against the recording's own audio.

Word probabilities that come out of decoding depend on everything else in the window: packed
with other recordings, the same recording's words shift by up to ±0.27 (tiny.en, measured),
because the decoder has read the neighbours' words first and the encoder has heard their
audio. So the score is not taken from decoding. Once the text is known, it is scored again
with the recording as the only audio: each stretch of at most 30 s is encoded at its own
length (no padding, no neighbour), its words are forced through the decoder after the start
sequence alone (in the transcript's language), and a word's probability is the mean of its
tokens' probabilities (what both engines' word timestamps report). The score is the geometric
mean of the word probabilities.

The result depends on the samples, the text and its language only: not on ``batch_size``,
packing, neighbours or VAD. Encoding a clip at its own length costs about what its share of a
packed window costs, so packing keeps most of its gain; with a multilingual model the same
encoding first tells the clip's language (``ct2_language``), so packing per language costs no
second encoder pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RATE = 16000
HOP = 160  # samples per mel frame
WINDOW_SECONDS = 30.0
WINDOW_FRAMES = 3000


@dataclass(frozen=True)
class Word:
    """One decoded word, its time relative to the recording's start."""

    text: str  # with its leading space, as the tokenizer wants it
    start: float
    end: float


def geometric_mean(probabilities: Sequence[float]) -> float:
    """exp of the mean log-probability, in 0..1; 0 when there is no word."""
    if not probabilities:
        return 0.0
    logp = sum(math.log(max(p, 1e-6)) for p in probabilities) / len(probabilities)
    return max(0.0, min(1.0, math.exp(logp)))


def windows(words: Sequence[Word], seconds: float) -> list[tuple[int, int, str]]:
    """(first sample, end sample, text) per stretch of at most 30 s that holds words.

    A word belongs to the stretch that holds its midpoint; a recording of 30 s or less is
    one stretch whatever its word times say, so the same text always gets the same score.
    """
    total = round(seconds * RATE)
    if seconds <= WINDOW_SECONDS:
        text = "".join(w.text for w in words)
        return [(0, total, text)] if text.strip() else []
    grouped: dict[int, list[str]] = {}
    for w in words:
        index = min(int(((w.start + w.end) / 2) // WINDOW_SECONDS), int(seconds // WINDOW_SECONDS))
        grouped.setdefault(max(index, 0), []).append(w.text)
    step = int(WINDOW_SECONDS * RATE)
    return [
        (k * step, min((k + 1) * step, total), "".join(parts))
        for k, parts in sorted(grouped.items())
        if "".join(parts).strip()
    ]


def word_probabilities(token_probs: Sequence[float], word_tokens: Sequence[Sequence[int]]):
    """Each word's probability: the mean of its tokens' probabilities."""
    out, i = [], 0
    for tokens in word_tokens:
        j = i + len(tokens)
        if j > i and j <= len(token_probs):
            out.append(float(np.mean(token_probs[i:j])))
        i = j
    return out


def _even(frames: int) -> int:
    # The encoder's second convolution halves the frames: give it an even count.
    return max(2, min(WINDOW_FRAMES, frames + (frames % 2)))


def ct2_encode(model, samples: np.ndarray):
    """The CTranslate2 encoder output of ``samples`` (their first 30 s) at their own length:
    no padding, no neighbour. Both scoring and language detection read it."""
    import ctranslate2

    mel = model.feature_extractor(samples[: int(WINDOW_SECONDS * RATE)])
    frames = _even(mel.shape[-1])
    features = np.zeros((mel.shape[0], frames), dtype=np.float32)
    features[:, : min(frames, mel.shape[-1])] = mel[:, :frames]
    return model.model.encode(ctranslate2.StorageView.from_array(features[None]), to_cpu=False)


def ct2_language(model, encoded) -> str:
    """The language Whisper hears in ``ct2_encode``'s output (multilingual models only)."""
    return model.model.detect_language(encoded)[0][0][0][2:-2]  # "<|de|>" -> "de"


def ct2_confidence(
    model, samples: np.ndarray, words: Sequence[Word], language: str = "en", encoded=None
) -> float:
    """The score with a faster-whisper ``WhisperModel`` (CTranslate2 ``encode`` + ``align``).

    ``encoded``: ``ct2_encode(model, samples)`` when the caller already has it; it is only
    read for a recording of 30 s or less (one stretch, the same encoding)."""
    from faster_whisper.tokenizer import Tokenizer

    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, "transcribe", language)
    if len(samples) > WINDOW_SECONDS * RATE:
        encoded = None
    probabilities: list[float] = []
    for start, end, text in windows(words, len(samples) / RATE):
        if encoded is None:
            encoded = ct2_encode(model, samples[start:end])
        frames = encoded.shape[1] * 2  # the encoder halves the (even) frame count
        tokens = tokenizer.encode(text)
        result = model.model.align(encoded, tokenizer.sot_sequence, [tokens], frames)[0]
        encoded = None
        _, word_tokens = tokenizer.split_to_word_tokens([*tokens, tokenizer.eot])
        probabilities += word_probabilities(result.text_token_probs, word_tokens[:-1])
    return geometric_mean(probabilities)


def torch_confidence(
    model, samples: np.ndarray, words: Sequence[Word], language: str = "en"
) -> float:
    """The score with an openai-whisper model (its encoder run at the stretch's length)."""
    import torch
    import whisper
    from whisper.tokenizer import get_tokenizer

    tokenizer = get_tokenizer(model.is_multilingual, language=language, task="transcribe")
    encoder = model.encoder
    probabilities: list[float] = []
    for start, end, text in windows(words, len(samples) / RATE):
        mel = whisper.log_mel_spectrogram(
            torch.from_numpy(np.ascontiguousarray(samples[start:end])), model.dims.n_mels
        )
        frames = _even(mel.shape[-1])
        mel = torch.nn.functional.pad(mel, (0, max(0, frames - mel.shape[-1])))[:, :frames]
        tokens = tokenizer.encode(text)
        prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps, *tokens, tokenizer.eot]
        with torch.no_grad():
            x = mel[None].to(model.device, dtype=encoder.conv1.weight.dtype)
            x = torch.nn.functional.gelu(encoder.conv1(x))
            x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
            x = x + encoder.positional_embedding[: x.shape[1]].to(x.dtype)
            for block in encoder.blocks:
                x = block(x)
            audio = encoder.ln_post(x)
            logits = model.decoder(torch.tensor([prompt], device=model.device), audio)[0]
        first = len(tokenizer.sot_sequence) + 1  # the logits that predict the first text token
        probs = logits[first - 1 : first - 1 + len(tokens)].float().softmax(-1)
        token_probs = probs[torch.arange(len(tokens)), torch.tensor(tokens)].cpu().numpy()
        _, word_tokens = tokenizer.split_to_word_tokens([*tokens, tokenizer.eot])
        probabilities += word_probabilities(token_probs, word_tokens[:-1])
    return geometric_mean(probabilities)
