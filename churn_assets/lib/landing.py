"""A dataset's landing folders and the moves between them.

``incoming/`` is where deliveries are dropped (writers use dot-prefixed temporary names and
rename when done, so half-written files are never picked up). The sensor validates a file and
moves it to ``pending/`` while its ingest runs; the load moves it to ``accepted/`` (appending it
to ``accepted/manifest.json``, which fixes the order deliveries are replayed in) or to
``quarantine/`` with a ``<file>.reason.txt`` that says why and where the file now is.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MANIFEST = "manifest.json"
DELIVERY_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class LandingFolders:
    incoming: Path
    pending: Path
    accepted: Path
    quarantine: Path

    def ensure(self) -> LandingFolders:
        for folder in (self.incoming, self.pending, self.accepted, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def waiting(folders: LandingFolders) -> list[Path]:
    """Finished files in ``incoming/``, oldest name first."""
    if not folders.incoming.exists():
        return []
    return sorted(
        p
        for p in folders.incoming.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in DELIVERY_SUFFIXES
    )


def _manifest(folders: LandingFolders) -> list[dict[str, str]]:
    path = folders.accepted / MANIFEST
    return json.loads(path.read_text()) if path.exists() else []


def accepted(folders: LandingFolders) -> list[Path]:
    """Accepted deliveries in the order they were accepted (files still present)."""
    paths = [folders.accepted / entry["file"] for entry in _manifest(folders)]
    return [p for p in paths if p.exists()]


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix, n = target.stem, target.suffix, 1
    while target.exists():
        target = folder / f"{stem}.{n}{suffix}"
        n += 1
    return target


def _tags_file(path: Path) -> Path:
    return path.with_name(f"{path.name}.tags.json")


def move_to_pending(folders: LandingFolders, path: Path, tags: dict[str, str]) -> Path:
    """Move a validated delivery to ``pending/`` with its run tags beside it (so later ticks
    re-request its ingest without reading the file again)."""
    folders.ensure()
    target = _free_name(folders.pending, path.name)
    _write_atomic(_tags_file(target), json.dumps(tags, indent=2))
    shutil.move(str(path), target)
    return target


def pending(folders: LandingFolders) -> list[tuple[Path, dict[str, str]]]:
    """Deliveries waiting for their ingest run, with their run tags."""
    if not folders.pending.exists():
        return []
    return [
        (path, json.loads(_tags_file(path).read_text()) if _tags_file(path).exists() else {})
        for path in sorted(folders.pending.iterdir())
        if path.suffix.lower() in DELIVERY_SUFFIXES and not path.name.startswith(".")
    ]


def _in(folder: Path, path: Path) -> bool:
    return path.resolve().parent == folder.resolve()


def accept(folders: LandingFolders, path: Path) -> Path:
    """Record the delivery in the manifest first, then move it from ``pending/`` (a file given
    in run config from elsewhere is copied: the user's own file stays where it is). A crash in
    between leaves it recorded and still in pending, where the next load reads it."""
    folders.ensure()
    target = _free_name(folders.accepted, path.name)
    entries = [
        *_manifest(folders),
        {"file": target.name, "accepted_at": datetime.now(UTC).isoformat()},
    ]
    _write_atomic(folders.accepted / MANIFEST, json.dumps(entries, indent=2) + "\n")
    if _in(folders.pending, path):
        shutil.move(str(path), target)
        _tags_file(path).unlink(missing_ok=True)
    else:
        shutil.copyfile(path, target)
    return target


def quarantine(folders: LandingFolders, path: Path, reason: str) -> Path:
    """Move a delivery aside with a human-readable reason next to it, naming where the file now
    is (only files of the landing folder move: a user's own file is left where it is)."""
    folders.ensure()
    if not (_in(folders.incoming, path) or _in(folders.pending, path)):
        return path
    target = _free_name(folders.quarantine, path.name)
    if path.exists():
        shutil.move(str(path), target)
    _tags_file(path).unlink(missing_ok=True)
    text = f"{target}\n\n{reason.rstrip()}\n"
    (folders.quarantine / f"{target.name}.reason.txt").write_text(text)
    return target


def clear(folders: LandingFolders, pattern: str) -> list[Path]:
    """Remove matching deliveries from every folder but quarantine (a replay restarting)."""
    removed = []
    for folder in (folders.incoming, folders.pending, folders.accepted):
        for path in sorted(folder.glob(pattern)) if folder.exists() else []:
            path.unlink()
            _tags_file(path).unlink(missing_ok=True)
            removed.append(path)
    manifest = folders.accepted / MANIFEST
    if manifest.exists():
        kept = [e for e in _manifest(folders) if (folders.accepted / e["file"]).exists()]
        _write_atomic(manifest, json.dumps(kept, indent=2) + "\n")
    return removed
