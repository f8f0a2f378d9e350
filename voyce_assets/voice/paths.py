"""Where a voice feedback's upload (``raw_data.audio_files``) and its processed copy
(``processed_data.processed_audio``) live, and the guard that keeps both inside their volume.

``audio_file_path`` comes from the app database: a value is never trusted. It must resolve
(``..``, absolute paths and symbolic links followed) inside the organization's folder of the
upload volume; otherwise the feedback is a row error and nothing is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voyce_assets.catalog import volume
from voyce_assets.feedback import Feedback
from voyce_assets.resources.lakehouse import Lakehouse
from voyce_assets.voice.chunks import WorkItem


class PathOutsideVolume(ValueError):
    """The feedback's audio_file_path does not resolve inside its organization's folder."""


@dataclass(frozen=True)
class FeedbackAudio:
    upload: Path  # the recording as uploaded
    processed: Path  # its normalized 16 kHz copy (a sidecar sits next to it)


def audio_paths(lakehouse: Lakehouse, feedback: Feedback) -> FeedbackAudio:
    """The upload and processed-copy paths of ``feedback``; PathOutsideVolume if unsafe."""
    uploads = lakehouse.volume_path(volume("raw_data/audio_files")).resolve()
    org = str(feedback.organization_id or "")
    relative = Path(feedback.audio_file_path or "")
    org_root = (uploads / org).resolve()
    # The organization's folder itself, not a link to another organization's.
    if not org or Path(org).name != org or org_root != uploads / org:
        raise PathOutsideVolume(
            f"path outside the volume: organization {org!r} has no folder of its own in "
            "raw_data.audio_files"
        )
    upload = (uploads / relative).resolve()
    if relative.is_absolute() or not upload.is_relative_to(org_root) or upload == org_root:
        raise PathOutsideVolume(
            f"path outside the volume: {feedback.audio_file_path!r} is not inside the "
            f"organization's folder of raw_data.audio_files"
        )
    # The copy mirrors the upload's (resolved) place, with its extension kept in the name:
    # a.m4a -> a.m4a.wav, so two uploads differing only by extension never share a copy.
    inside = upload.relative_to(uploads)
    processed_root = lakehouse.volume_path(volume("processed_data/processed_audio"))
    return FeedbackAudio(upload=upload, processed=processed_root / f"{inside}.wav")


def error_text(exc: BaseException) -> str:
    """One recording's failure as its row's error_message (bounded, type named)."""
    if isinstance(exc, PathOutsideVolume):
        return str(exc)[:500]
    return f"{type(exc).__name__}: {exc}"[:500]


def work_item(
    lakehouse: Lakehouse, feedback: Feedback, reads: str, word_count: int | None = None
) -> WorkItem:
    """``feedback`` as a voice task takes it: its paths, weighed by the size of the file the
    work ``reads`` (``upload`` or ``processed``); an unsafe path is the item's error."""
    common = {
        "feedback_id": feedback.id,
        "organization_id": feedback.organization_id,
        "event_date": feedback.event_date.isoformat(),
        "word_count": word_count,
    }
    try:
        paths = audio_paths(lakehouse, feedback)
    except Exception as exc:  # unsafe, a link loop, a name the filesystem refuses
        return WorkItem(upload=None, processed=None, size=0, error=error_text(exc), **common)
    try:
        size = getattr(paths, reads).stat().st_size
    except OSError:  # not there (yet), unreadable: the task says why in the row
        size = 0
    return WorkItem(upload=str(paths.upload), processed=str(paths.processed), size=size, **common)


def stage_root(lakehouse: Lakehouse) -> str:
    """Where voice tasks stage finished chunks: inside the processed-audio volume, which
    every node of a cluster sees."""
    return str(lakehouse.volume_path(volume("processed_data/processed_audio")) / ".voice-stage")
