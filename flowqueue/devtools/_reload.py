"""What ``flowqueue dev`` watches for a reload: the Python files of the flow modules
(``FLOWQUEUE_WORKERS``) and the project's ``celeryconfig.py``.

Changes are found by ``watchfiles`` (inotify and friends) when it is installed, else by
comparing modification times twice a second. Directories are watched, never single files:
an editor that saves by writing a new file and renaming it over the old one would end a
watch on the file itself after the first save.
"""

from __future__ import annotations

import importlib.util
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Watched:
    """Package directories (their whole tree) and single files (their directory only)."""

    trees: frozenset[Path] = field(default_factory=frozenset)
    files: frozenset[Path] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.trees or self.files)

    def wants(self, path: Path) -> bool:
        if path.suffix != ".py":
            return False
        return path in self.files or any(path.is_relative_to(tree) for tree in self.trees)

    def describe(self, cwd: Path) -> str:
        names = [_shown(p, cwd) + "/" for p in sorted(self.trees)]
        return ", ".join(names + [_shown(p, cwd) for p in sorted(self.files)])


def _shown(path: Path, cwd: Path) -> str:
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def watched_for(workers: str, cwd: Path) -> Watched:
    """The flow modules named in ``workers`` (comma-separated, as FLOWQUEUE_WORKERS) that
    can be found, and ``celeryconfig.py`` in ``cwd`` if there is one."""
    trees: set[Path] = set()
    files: set[Path] = set()
    for name in (part.strip() for part in workers.split(",") if part.strip()):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None  # a parent package that does not import: the worker will say why
        if spec is None:
            continue
        if spec.submodule_search_locations:
            trees.update(Path(p).resolve() for p in spec.submodule_search_locations)
        elif spec.origin:
            files.add(Path(spec.origin).resolve())
    config = cwd / "celeryconfig.py"
    if config.is_file():
        files.add(config.resolve())
    return Watched(frozenset(trees), frozenset(files))


class Reloader:
    """Watches in background threads; ``changed()`` returns the files changed since the
    last call (empty if none), without waiting."""

    def __init__(self, watched: Watched) -> None:
        self.watched = watched
        self.engine = "watchfiles" if _has_watchfiles() else "polling"
        self._stop = threading.Event()
        self._changes: queue.SimpleQueue[set[Path]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> Reloader:
        # A tree is watched recursively; a single file through its directory, alone.
        groups = [(self.watched.trees, True), ({f.parent for f in self.watched.files}, False)]
        for roots, recursive in groups:
            if roots:
                thread = threading.Thread(
                    target=self._watch, args=(sorted(roots), recursive), daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return self

    def changed(self) -> set[Path]:
        found: set[Path] = set()
        while not self._changes.empty():
            found |= self._changes.get()
        return found

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)

    def _watch(self, roots: list[Path], recursive: bool) -> None:
        batches = self._watchfiles if self.engine == "watchfiles" else self._poll
        for batch in batches(roots, recursive):
            wanted = {path for path in batch if self.watched.wants(path)}
            if wanted:
                self._changes.put(wanted)

    def _watchfiles(self, roots: list[Path], recursive: bool) -> Iterator[set[Path]]:
        import watchfiles

        for changes in watchfiles.watch(
            *roots,
            watch_filter=watchfiles.PythonFilter(),
            stop_event=self._stop,
            recursive=recursive,
            debounce=400,  # a save that touches several files reloads once
            raise_interrupt=False,
        ):
            yield {Path(path) for _, path in changes}

    def _poll(self, roots: list[Path], recursive: bool) -> Iterator[set[Path]]:
        before = _snapshot(roots, recursive)
        while not self._stop.wait(0.5):
            now = _snapshot(roots, recursive)
            changed = {p for p in before.keys() | now.keys() if before.get(p) != now.get(p)}
            before = now
            if changed:
                yield changed


def _has_watchfiles() -> bool:
    return importlib.util.find_spec("watchfiles") is not None


def _snapshot(roots: Iterable[Path], recursive: bool) -> dict[Path, tuple[int, int]]:
    """(mtime in ns, size) of each ``.py`` file under ``roots``."""
    seen: dict[Path, tuple[int, int]] = {}
    for root in roots:
        for path in root.rglob("*.py") if recursive else root.glob("*.py"):
            try:
                stat = path.stat()
            except OSError:
                continue  # deleted while we looked: the next snapshot says so
            seen[path] = (stat.st_mtime_ns, stat.st_size)
    return seen
