"""Benchmark of the voice stage as a Spark job (issue: the voice stage on the whole cluster).
Run with ``make bench`` (``--quick``: a tenth of the recordings).

On the same spoken recordings (demo lines, eSpeak NG, 16 kHz WAV, processed first), reports:
- the transcriptions asset through ``SparkVoice`` at ``local[1]`` and at ``local[2]``: audio
  seconds per wall second and the scaling between them (one CTranslate2 thread per task, as a
  task slot is one core);
- standalone faster-whisper's ``BatchedInferencePipeline`` (batch 8, all cores) on the same
  copies, the same model;
- peak RSS of a whole in-process transcriptions run (a fresh process each) at N and 10N
  recordings: flat, since only one chunk's audio is held at a time.
Models are loaded and Spark sessions started before any clock starts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
DAY = dt.date(2026, 6, 1)
ORG = "7d0c1a5e-1f7e-4c59-8a1b-2a4b9d1e0f33"


def lake(root: Path, recordings: int, lines_per_clip: int = 1):
    """A voice_feedback mirror of ``recordings`` uploads on one day, each ``lines_per_clip``
    of the demo's spoken lines one after another; returns the Lakehouse."""
    import numpy as np
    import pyarrow as pa

    from voyce_assets.catalog import table, volume
    from voyce_assets.demo import speech
    from voyce_assets.demo.texts import SENTIMENTS, TOPICS, feedback_script
    from voyce_assets.lake import replace_partitions
    from voyce_assets.resources.lakehouse import Lakehouse

    lakehouse = Lakehouse(catalog="b", root_uri=str(root / "lake"), volumes_root=str(root / "v"))
    uploads = lakehouse.volume_path(volume("raw_data/audio_files")) / ORG
    uploads.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    lines = [feedback_script(rng, TOPICS[k % 6], SENTIMENTS[k % 3]) for k in range(24)]
    voice = speech.Speaker("en-us+m3", 160, 45)
    spoken = []
    for text in lines:
        samples, rate = speech.synthesize(text, voice)
        spoken.append(speech.resample(samples, rate, 16000, 1))
    pause = np.zeros((8000, *spoken[0].shape[1:]), dtype=spoken[0].dtype)
    for n in range(len(lines)):
        parts = [spoken[(n + k) % len(lines)] for k in range(lines_per_clip)]
        clip = np.concatenate([x for part in parts for x in (part, pause)])
        (uploads / f"line-{n}.wav").write_bytes(speech.encode(clip, 16000, "wav"))
    rows = []
    when = dt.datetime.combine(DAY, dt.time(12), dt.UTC)
    for n in range(recordings):
        name = f"r-{n}.wav"
        shutil.copy(uploads / f"line-{n % len(lines)}.wav", uploads / name)
        rows.append(
            {
                "id": str(uuid.UUID(int=n + 1)),
                "organization_id": ORG,
                "audio_file_path": f"{ORG}/{name}",
                "status": "pending",
                "created_at": when,
                "updated_at": when,
                "event_date": DAY,
            }
        )
    spec = table("raw_data/voice_feedback")
    schema = pa.schema([f.with_nullable(True) for f in spec.arrow_schema()])
    batch = pa.RecordBatch.from_pylist(rows, schema=schema).cast(spec.arrow_schema())
    replace_partitions(lakehouse.ensure_table(spec), spec, [batch], [DAY])
    return lakehouse


def resources(lakehouse, compute, threads: int) -> dict:
    from voyce_assets.voice.transcriber import Transcriber

    return {
        "lakehouse": lakehouse,
        "transcriber": Transcriber(cpu_threads=threads),
        "voice_compute": compute,
        "gpu_step_launcher": None,
    }


def transcribe_seconds(lakehouse, compute, threads: int) -> float:
    """Wall seconds of one transcriptions run over the day, nothing reused."""
    from dagster import materialize

    from voyce_assets.catalog import table
    from voyce_assets.voice.transcriptions import transcriptions

    uri = lakehouse.table_uri(table("raw_data/transcriptions"))
    shutil.rmtree(uri, ignore_errors=True)  # every run transcribes everything
    started = time.perf_counter()
    result = materialize(
        [transcriptions], resources=resources(lakehouse, compute, threads), partition_key=str(DAY)
    )
    assert result.success
    return time.perf_counter() - started


def rss_run(root: str, recordings: int) -> None:
    """(child) One in-process transcriptions run over ``recordings``; prints the process's
    peak RSS, its RSS before the run and the highest RSS sampled during it, in MB."""
    import resource
    import threading

    from dagster import materialize

    from voyce_assets.voice.compute import VoiceCompute
    from voyce_assets.voice.processed_audio import processed_audio
    from voyce_assets.voice.transcriptions import transcriptions

    # Recordings of about 30 s: holding all 10N of them at once would be 2 MB each.
    lakehouse = lake(Path(root), recordings, lines_per_clip=6)
    res = resources(lakehouse, VoiceCompute(), 2)
    assert materialize([processed_audio], resources=res, partition_key=str(DAY)).success

    def rss() -> float:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    before, during, running = rss(), [0.0], threading.Event()
    running.set()

    def sample():
        while running.is_set():
            during[0] = max(during[0], rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        assert materialize([transcriptions], resources=res, partition_key=str(DAY)).success
    finally:
        running.clear()
        sampler.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"peak_rss_mb": peak, "before_mb": before, "during_mb": during[0]}))


def peak_rss(recordings: int) -> dict:
    with tempfile.TemporaryDirectory() as root:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(recordings), "--root", root],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def rss_lines(quick: bool) -> list[str]:
    small, large = (6, 60) if quick else (12, 120)
    at_small, at_large = peak_rss(small), peak_rss(large)
    grew = lambda r: r["during_mb"] - r["before_mb"]  # noqa: E731
    return [
        "- RSS of an in-process transcriptions run (a fresh process each, after its "
        f"processed_audio run) over recordings of about 30 s: highest during the run "
        f"{at_small['during_mb']:.0f} MB at {small} recordings, {at_large['during_mb']:.0f} MB "
        f"at {large} ({at_large['during_mb'] / at_small['during_mb']:.2f}x; goal within 15%); "
        f"growth over the RSS before the run {grew(at_small):.0f} MB and {grew(at_large):.0f} MB; "
        f"all {large} decoded at once would be {large * 30 * 16000 * 4 / 2**20:.0f} MB; "
        f"process peaks {at_small['peak_rss_mb']:.0f} / {at_large['peak_rss_mb']:.0f} MB",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a tenth of the recordings")
    parser.add_argument("--recordings", type=int, default=240)
    parser.add_argument("--rss-only", action="store_true", help="only the memory figures")
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--root", default="", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "voice_spark.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.rss_child:
        rss_run(args.root, args.rss_child)
        return
    if args.rss_only:
        print("\n".join(rss_lines(args.quick)))
        return
    n = max(24, args.recordings // 10) if args.quick else args.recordings

    from dagster import materialize

    from voyce_assets.catalog import volume
    from voyce_assets.voice.audio.normalize import load_processed, read_processed
    from voyce_assets.voice.compute import SparkVoice, VoiceCompute
    from voyce_assets.voice.processed_audio import processed_audio
    from voyce_assets.voice.transcriber import Transcriber
    from voyce_assets.voice.whisper.bundled import bundled_ct2_model

    with tempfile.TemporaryDirectory() as root:
        lakehouse = lake(Path(root), n)
        res = resources(lakehouse, VoiceCompute(), 1)
        assert materialize([processed_audio], resources=res, partition_key=str(DAY)).success
        Transcriber(cpu_threads=1).load()
        processed = lakehouse.volume_path(volume("processed_data/processed_audio"))
        copies = sorted(processed.rglob("r-*.wav.wav"))
        clips = [read_processed(load_processed(p)) for p in copies]
        audio_seconds = sum(len(c) for c in clips) / 16000

        rates = {}
        for master in ("local[1]", "local[2]"):
            compute = SparkVoice(master=master)
            compute.session()  # started before the clock, as a cluster's is
            transcribe_seconds(lakehouse, compute, 1)  # warm-up: workers load the model
            rates[master] = audio_seconds / transcribe_seconds(lakehouse, compute, 1)
            compute.session().stop()
        in_process = audio_seconds / transcribe_seconds(lakehouse, VoiceCompute(), 2)

        from faster_whisper import BatchedInferencePipeline, WhisperModel

        model = WhisperModel(str(bundled_ct2_model("tiny.en")), device="cpu", compute_type="int8")
        pipeline = BatchedInferencePipeline(model=model)
        list(pipeline.transcribe(clips[0], batch_size=8)[0])  # warm-up
        started = time.perf_counter()
        for clip in clips:
            list(pipeline.transcribe(clip, batch_size=8, beam_size=1)[0])
        batched = audio_seconds / (time.perf_counter() - started)

    scaling = rates["local[2]"] / rates["local[1]"]
    report = "\n".join(
        [
            f"Voice on Spark benchmark, {dt.date.today()} ({os.cpu_count()} CPUs, no GPU on this "
            f"machine): {n} recordings of demo speech, {audio_seconds:.0f} s, Whisper tiny.en "
            "int8, packed (batch_size 8), staged in chunks.",
            "",
            "| contender | audio s / wall s |",
            "|---|---:|",
            f"| transcriptions asset, SparkVoice local[1] (1 task, 1 thread) | {rates['local[1]']:.1f} |",
            f"| transcriptions asset, SparkVoice local[2] (2 tasks, 1 thread each) | {rates['local[2]']:.1f} |",
            f"| transcriptions asset, in process (2 threads) | {in_process:.1f} |",
            f"| standalone faster-whisper BatchedInferencePipeline (batch 8, all cores), per clip | {batched:.1f} |",
            "",
            f"- scaling local[1] -> local[2]: {scaling:.2f}x (goal >= 1.7x on 2 cores)",
            f"- ours at local[2] / BatchedInferencePipeline: {rates['local[2]'] / batched:.2f}x",
            *rss_lines(args.quick),
            "- the asset runs include the Dagster run, reading the copies and the Delta write; "
            "BatchedInferencePipeline only transcribes clips already in memory.",
            "",
        ]
    )
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)


if __name__ == "__main__":
    main()
