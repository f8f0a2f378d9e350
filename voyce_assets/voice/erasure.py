"""How the voice stage's stores forget an erased subject: the upload in
``raw_data.audio_files``, its processed copy and sidecar in ``processed_data.processed_audio``
and any staged chunk of a voice run that holds one of its rows (``privacy.erasure``)."""

from __future__ import annotations

import json
from pathlib import Path

from voyce_assets.catalog import volume
from voyce_assets.feedback import Feedback
from voyce_assets.privacy.erasure import Plan, StoreEraser
from voyce_assets.voice.audio.normalize import sidecar_path
from voyce_assets.voice.paths import audio_paths, stage_root

UPLOADS = "raw_data/audio_files"
PROCESSED = "processed_data/processed_audio"


def _unlink(path: Path) -> int:
    try:
        path.unlink()
        return 1
    except FileNotFoundError:
        return 0


def _staged_with(root: Path, ids: set[str]) -> list[Path]:
    """Staged chunk files (JSON lines) holding a row of one of ``ids``."""
    found = []
    for path in sorted(root.glob("*.jsonl")) if root.is_dir() else []:
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        except (OSError, ValueError):
            continue
        if any(
            str(r.get("voice_feedback_id") or r.get("feedback_id") or "") in ids
            or any(i in line for i in ids for line in [json.dumps(r)])
            for r in rows
        ):
            found.append(path)
    return found


def forget(plan: Plan, resources) -> dict[str, int]:
    lakehouse = resources.lakehouse
    counts = {"audio_files": 0, "processed_audio": 0, "voice_staged_chunks": 0}
    if not plan.feedback:
        return counts
    # A volume not mounted where this runs: its files are not checked and the log says so
    # (``<store>_unchecked``); a missing file is a 0 only inside a volume that is there.
    mounted = {
        store: lakehouse.volume_path(volume(path)).is_dir()
        for store, path in (("audio_files", UPLOADS), ("processed_audio", PROCESSED))
    }
    for store, here in mounted.items():
        if not here:
            del counts[store]
            counts[f"{store}_unchecked"] = 1
    if not mounted["processed_audio"]:
        del counts["voice_staged_chunks"]
    for f in plan.feedback:
        if not f.audio_file_path or not f.organization_id:
            continue
        try:
            paths = audio_paths(
                lakehouse, Feedback(f.id, f.organization_id, f.audio_file_path, f.event_date)
            )
        except ValueError:  # an unsafe path was never read nor written: nothing of ours
            continue
        if mounted["audio_files"]:
            counts["audio_files"] += _unlink(paths.upload)
        if mounted["processed_audio"]:
            counts["processed_audio"] += _unlink(paths.processed)
            counts["processed_audio"] += _unlink(sidecar_path(paths.processed))
    if mounted["processed_audio"]:
        for path in _staged_with(Path(stage_root(lakehouse)), plan.feedback_ids):
            counts["voice_staged_chunks"] += _unlink(path)
    return counts


ERASER = StoreEraser("voice", forget, frozenset({"lakehouse"}))
