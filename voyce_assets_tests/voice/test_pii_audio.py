"""Personal data in transcripts: word timestamps, the redacted row, the silenced audio and
its check, and the setting that turns it all off, on real synthesized speech.

The redactor (``privacy.pii``) is improved elsewhere: what it finds in a transcript is read
from ``pii.redact`` itself, never assumed here, except written emails, which it always finds.
"""

from __future__ import annotations

import json
import os
import re
import uuid

import numpy as np
import pytest
import soundfile as sf
from dagster import materialize

from voyce_assets.catalog import table, volume
from voyce_assets.feedback import write_partition
from voyce_assets.privacy import pii
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.voice import redaction
from voyce_assets.voice.audio.decode import TARGET_RATE
from voyce_assets.voice.audio.normalize import (
    SILENT_PEAK,
    load_processed,
    original_samples,
    peak,
    process_file,
    read_processed,
    silence,
)
from voyce_assets.voice.chunks import Chunk, WorkItem
from voyce_assets.voice.compute import VoiceCompute
from voyce_assets.voice.processed_audio import processed_audio
from voyce_assets.voice.tasks import VoiceJob
from voyce_assets.voice.transcriber import Transcriber, Transcript
from voyce_assets.voice.transcriptions import pii_audio_silent_check, transcriptions
from voyce_assets.voice.whisper.scoring import Word
from voyce_assets_tests.voice.test_bad_recordings import DAY, _mirror, _speech

ORG = str(uuid.uuid4())
TRANSCRIPTIONS = table("raw_data/transcriptions")
# tiny.en writes "you can email me at jon at gmail.com the delivery was late" (or runs the
# address together, "jahnatgmail.com", depending on its packing neighbour): the spoken form,
# which the redactor finds once it reads spoken emails. Until then the row's entities are
# whatever it finds, and the silencing is tested on spans the test sets.
EMAIL_SCRIPT = "You can email me at john, at gmail dot com. The delivery was late."
PLAIN_SCRIPT = "The delivery was late again and nobody called me."


def assert_words_fit(transcript: Transcript) -> None:
    """A transcript's words: every one placed in its text, in order, within the clip."""
    words = transcript.words
    assert words and transcript.text
    offsets = redaction.word_offsets(transcript.text, words)
    assert all(offsets), [w.text for w, o in zip(words, offsets, strict=True) if not o]
    starts = [o[0] for o in offsets]
    assert starts == sorted(starts)
    for w in words:
        assert 0 <= w.start <= w.end <= transcript.audio_seconds + 0.05, w
    assert [w.start for w in words] == sorted(w.start for w in words)


# --- char spans to audio spans ------------------------------------------------------------


def test_word_offsets_follow_the_text_from_a_cursor():
    # The segment text is spaced and cased differently from the words, and one word ("uh")
    # is not in it: each word is found from where the previous one ended, never far ahead.
    text = "Hi, write to BOB@gmail.com.  Or bob@gmail.com later"
    words = [
        Word(" Hi,", 0.0, 0.3),
        Word(" uh", 0.3, 0.4),
        Word(" write", 0.5, 0.8),
        Word(" to", 0.8, 0.9),
        Word(" bob@gmail.com.", 1.0, 2.0),
        Word(" Or", 2.5, 2.6),
        Word(" bob@gmail.com", 2.7, 3.5),
        Word(" later", 3.6, 4.0),
    ]
    offsets = redaction.word_offsets(text, words)
    assert offsets[1] is None  # "uh" is nowhere near
    assert [text[a:b] for a, b in (o for o in offsets if o)] == [
        "Hi,",
        "write",
        "to",
        "BOB@gmail.com.",
        "Or",
        "bob@gmail.com",
        "later",
    ]
    found = pii.redact(text)
    emails = [e for e in found.entities if e.type == "EMAIL"]
    assert len(emails) == 2 and found.text.count("[EMAIL]") == 2
    spans = [redaction.audio_span(e.start, e.end, words, offsets, 4.1) for e in emails]
    # The overlapping word, padded, each email its own time.
    assert spans == [(0.8, 2.2), (2.5, 3.7)]
    # Clamped to the clip.
    assert redaction.audio_span(0, 3, words, offsets, 4.1) == (0.0, 0.5)
    assert redaction.audio_span(len(text) - 5, len(text), words, offsets, 3.9) == (3.4, 3.9)


def test_an_entity_no_word_covers_takes_the_time_between_its_neighbours():
    text = "call 555 0100 now"
    words = [Word(" call", 0.0, 0.4), Word(" five", 0.5, 1.5), Word(" now", 2.0, 2.3)]
    offsets = redaction.word_offsets(text, words)
    assert offsets[1] is None  # the text spells the digits, the word does not
    assert redaction.audio_span(5, 13, words, offsets, 3.0) == (0.2, 2.2)
    # No word placed at all: the whole clip, in doubt more is silenced, never less.
    assert redaction.audio_span(0, 4, [Word(" x", 0, 1)], [None], 2.5) == (0.0, 2.5)


def test_row_fields_on_and_off():
    text = "mail me at ann@example.org please"
    words = [Word(f" {t}", i * 0.5, i * 0.5 + 0.4) for i, t in enumerate(text.split())]
    on = redaction.fields(text, words, 3.0, True)
    expected = pii.redact(text)
    assert on["redaction"] == pii.VERSION and on["redacted_text"] == expected.text
    assert "[EMAIL]" in on["redacted_text"] and "ann@" not in on["redacted_text"]
    entities = json.loads(on["pii_entities"])
    assert [(e["type"], e["start"], e["end"]) for e in entities] == [
        (x.type, x.start, x.end) for x in expected.entities
    ]
    email = next(e for e in entities if e["type"] == "EMAIL")
    assert text[email["start"] : email["end"]] == "ann@example.org"
    assert (email["audio_start"], email["audio_end"]) == (1.3, 2.1)
    # Never the entity's text, anywhere in what the row holds of it.
    assert "ann" not in on["pii_entities"] and "example" not in on["pii_entities"]
    off = redaction.fields(text, words, 3.0, False)
    assert off == {"redacted_text": None, "pii_entities": None, "redaction": "off"}


@pytest.mark.parametrize(
    ("value", "on"),
    [(None, True), ("", True), ("false", False), ("0", False), ("OFF", False), ("flase", True)],
)
def test_redaction_is_a_setting_read_locally_and_in_prod(monkeypatch, value, on):
    from voyce_assets.resources.gpu_cluster import FORWARDED_SETTINGS
    from voyce_assets.voice.resources import resources

    monkeypatch.setenv("WHISPER_MODEL_SIZE", "base")  # prod requires one
    if value is not None:
        monkeypatch.setenv("VOYCE_REDACT_PII", value)
    # Off only when it says so: a typo keeps personal data redacted.
    for env in ("local", "prod"):
        transcriber = resources(env)["transcriber"].process_config_and_initialize()
        assert transcriber.redact_pii is on, env
        settings = {name: getattr(transcriber, name) for name in Transcriber.model_fields}
        assert settings["redact_pii"] is on  # travels to the tasks, and into the chunk key
    assert "VOYCE_REDACT_PII" in FORWARDED_SETTINGS  # the GPU cluster reads it too


def test_the_setting_is_part_of_the_staged_chunk_key(tmp_path):
    item = WorkItem("f", ORG, DAY.isoformat(), None, None, 0)
    keys = {
        on: VoiceJob("transcribe", "e/m", str(tmp_path), {"redact_pii": on}).key(Chunk(0, (item,)))
        for on in (True, False)
    }
    assert keys[True] != keys[False]


# --- real speech --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech")
    return {
        "email": _speech(root / "email.wav", EMAIL_SCRIPT),
        "plain": _speech(root / "plain.wav", PLAIN_SCRIPT),
    }


def _bare(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def test_every_path_carries_words_with_times(uploads):
    engine = Transcriber()
    single, _ = engine.transcribe_file(uploads["plain"])
    assert_words_fit(single)
    clips = [engine._as_processed(p)[1] for p in uploads.values()]
    packed = engine.transcribe_many(clips)  # batch_size 8: both in one window
    for transcript, clip in zip(packed, clips, strict=True):
        assert_words_fit(transcript)
        # Times are the clip's own, not the packed window's.
        assert transcript.words[-1].end <= len(clip) / TARGET_RATE + 0.05
    # Packed or alone, the same words are said at about the same time.
    alone = engine.transcribe(clips[1])
    # (Capitals and punctuation follow what came before in the window: "the" packed may be
    # "The" alone, "me" may be "me.".)
    assert [_bare(w.text) for w in packed[1].words] == [_bare(w.text) for w in alone.words]
    assert (
        max(abs(a.start - b.start) for a, b in zip(packed[1].words, alone.words, strict=True)) < 0.3
    )


def test_silencing_a_span_keeps_the_copy_time_and_the_staged_key(uploads, tmp_path):
    engine = Transcriber()
    copy = tmp_path / "processed" / "plain.wav.wav"
    processed = process_file(uploads["plain"], copy, 900)
    before = read_processed(processed)
    transcript = engine.transcribe(before)
    at = transcript.text.lower().index("delivery")
    offsets = redaction.word_offsets(transcript.text, transcript.words)
    span = redaction.audio_span(
        at, at + len("delivery"), transcript.words, offsets, transcript.audio_seconds
    )
    assert peak(before, *span) > 0.1  # the word is loud before

    item = WorkItem("f", ORG, DAY.isoformat(), str(uploads["plain"]), str(copy), 1)
    job = VoiceJob("transcribe", engine.label, str(tmp_path / "stage"), {"redact_pii": True})
    key = job.key(Chunk(0, (item,)))
    stat = copy.stat()
    done = silence(processed, [span], before)
    after = read_processed(done)
    assert peak(after, *span) == 0.0 < SILENT_PEAK
    outside = np.concatenate(
        [after[: int(span[0] * TARGET_RATE)], after[int(span[1] * TARGET_RATE) + 1 :]]
    )
    keep = np.concatenate(
        [before[: int(span[0] * TARGET_RATE)], before[int(span[1] * TARGET_RATE) + 1 :]]
    )
    assert np.array_equal(outside, keep)  # nothing else changed
    # Same size and modification time: the staged chunk key still finds the chunk.
    assert (copy.stat().st_size, copy.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert job.key(Chunk(0, (item,))) == key
    assert load_processed(copy).silenced == [list(span)]
    # Again: the same file, byte for byte.
    data = copy.read_bytes()
    silence(load_processed(copy), [span], after)
    assert copy.read_bytes() == data
    # The word is gone from what Whisper hears, and the upload still gives the original.
    assert "delivery" not in engine.transcribe(after).text.lower()
    assert np.array_equal(original_samples(load_processed(copy), 900), before)
    assert not list(copy.parent.glob("*.tmp*"))


def test_the_check_fails_on_a_loud_span_and_names_the_feedback(uploads, tmp_path):
    copy = tmp_path / "email.wav.wav"
    processed = process_file(uploads["email"], copy, 900)
    samples = read_processed(processed)
    loud = [(0.5, 1.5)]
    assert max(peak(samples, a, b) for a, b in loud) > 0.1
    entities = json.dumps(
        [{"type": "EMAIL", "start": 12, "end": 40, "audio_start": 0.5, "audio_end": 1.5}]
    )
    rows = [
        {"voice_feedback_id": "f1", "pii_entities": entities},
        {"voice_feedback_id": "f2", "pii_entities": "[]"},
        {"voice_feedback_id": "f3", "pii_entities": None},
    ]
    copies = {"f1": copy, "f2": None, "f3": None}
    failed = pii_audio_silent_check(rows, copies)
    assert not failed.passed and "f1" in failed.description
    assert list(failed.metadata["not_silent"].value) == ["f1"]
    silence(processed, loud, samples)
    passed = pii_audio_silent_check(rows, copies)
    assert passed.passed and passed.metadata["rows_with_entities"].value == 1
    # A copy that is gone cannot show it is silent.
    copy.unlink()
    assert not pii_audio_silent_check(rows, copies).passed


# --- the asset ------------------------------------------------------------------------------


def _run(lakehouse, redact_pii=True, assets=(transcriptions,)):
    resources = {
        "lakehouse": lakehouse,
        "transcriber": Transcriber(redact_pii=redact_pii),
        "voice_compute": VoiceCompute(),
        "gpu_step_launcher": None,
    }
    result = materialize(list(assets), resources=resources, partition_key=DAY.isoformat())
    assert result.success
    (mat,) = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "transcriptions"
    ]
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    rows = {r["voice_feedback_id"]: r for r in lakehouse.read(TRANSCRIPTIONS, [DAY]).to_pylist()}
    counts = {k: mat.metadata[k].value for k in ("transcribed", "reused", "failed")}
    return rows, counts, checks


def test_transcriptions_redact_silence_reuse_and_turn_off(uploads, tmp_path):
    lakehouse = Lakehouse(catalog="c", root_uri=str(tmp_path / "lake"), volumes_root=str(tmp_path))
    folder = lakehouse.volume_path(volume("raw_data/audio_files")) / ORG
    folder.mkdir(parents=True)
    for path in uploads.values():
        (folder / path.name).write_bytes(path.read_bytes())
    ids = _mirror(lakehouse, {name: (ORG, f"{ORG}/{path.name}") for name, path in uploads.items()})
    copies = {
        name: lakehouse.volume_path(volume("processed_data/processed_audio"))
        / ORG
        / f"{path.name}.wav"
        for name, path in uploads.items()
    }

    rows, counts, checks = _run(lakehouse, assets=(processed_audio, transcriptions))
    assert counts == {"transcribed": 2, "reused": 0, "failed": 0}
    first = {name: rows[ids[name]] for name in ids}
    for name, row in first.items():
        # What the redactor makes of the text, exactly, with the audio of each entity.
        expected = pii.redact(row["transcription_text"])
        assert row["redaction"] == pii.VERSION
        assert row["redacted_text"] == expected.text
        entities = json.loads(row["pii_entities"])
        assert [(e["type"], e["start"], e["end"]) for e in entities] == [
            (x.type, x.start, x.end) for x in expected.entities
        ]
        samples, _ = sf.read(copies[name], dtype="float32")
        seconds = len(samples) / TARGET_RATE
        for e in entities:
            assert 0 <= e["audio_start"] < e["audio_end"] <= seconds
            assert peak(samples, e["audio_start"], e["audio_end"]) < SILENT_PEAK, (name, e)
        spans = redaction.spans(row["pii_entities"])
        assert (load_processed(copies[name]).silenced or []) == [list(s) for s in spans]
        # The rest still speaks.
        mask = np.ones(len(samples), bool)
        for a, b in spans:
            mask[int(a * TARGET_RATE) : int(np.ceil(b * TARGET_RATE))] = False
        assert np.max(np.abs(samples[mask])) > 0.1
    assert "delivery" in first["email"]["transcription_text"].lower()
    assert checks["pii_audio_silent"].passed and checks["failure_rate"].passed

    # Again: every row kept, nothing transcribed, whatever silencing did to the copies.
    rows, counts, checks = _run(lakehouse)
    assert counts == {"transcribed": 0, "reused": 2, "failed": 0}
    assert {k: rows[k]["created_at"] for k in rows} == {ids[n]: first[n]["created_at"] for n in ids}

    # A copy that is loud where its row says personal data was said (a copy put back from
    # somewhere else, say): the check fails and names it.
    plain = dict(first["plain"])
    loud = [0.4, 1.2]
    plain["pii_entities"] = json.dumps(
        [{"type": "PERSON", "start": 0, "end": 3, "audio_start": loud[0], "audio_end": loud[1]}]
    )
    write_partition(lakehouse, TRANSCRIPTIONS, [first["email"], plain], [DAY])
    rows, counts, checks = _run(lakehouse)
    assert counts["reused"] == 2
    check = checks["pii_audio_silent"]
    assert not check.passed and ids["plain"] in check.description
    assert list(check.metadata["not_silent"].value) == [ids["plain"]]

    # Silenced now (as a task does it): still reused, since the copy keeps its time.
    before = copies["plain"].stat().st_mtime_ns
    processed = load_processed(copies["plain"])
    silence(processed, [tuple(loud)], read_processed(processed))
    assert copies["plain"].stat().st_mtime_ns == before
    rows, counts, checks = _run(lakehouse)
    assert counts == {"transcribed": 0, "reused": 2, "failed": 0}
    assert checks["pii_audio_silent"].passed

    # Off: every row made again, the raw text only, the copies as uploaded (the silenced one
    # given its audio back, heard from its upload: the same text as before).
    rows, counts, checks = _run(lakehouse, redact_pii=False)
    assert counts == {"transcribed": 2, "reused": 0, "failed": 0}
    for name in ids:
        row = rows[ids[name]]
        assert row["redaction"] == "off"
        assert row["redacted_text"] is None and row["pii_entities"] is None
        assert row["transcription_text"] == first[name]["transcription_text"]
        assert load_processed(copies[name]).silenced is None
        samples, _ = sf.read(copies[name], dtype="float32")
        assert peak(samples, *loud) > 0.1
        assert os.stat(copies[name]).st_mtime_ns <= row["created_at"].timestamp() * 1e9
    assert checks["pii_audio_silent"].passed
    rows, counts, _ = _run(lakehouse, redact_pii=False)
    assert counts == {"transcribed": 0, "reused": 2, "failed": 0}
