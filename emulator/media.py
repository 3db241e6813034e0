"""The files of finished tasks, as their public URLs serve them: which file a URL names, the
scenario's file effects (404, expire, corrupt), rendering off the event loop, and one
byte-bounded cache for every kind of file (PNG, JPEG, WebP, MP4, MP3).

A file is rendered on its first download, on a pool of worker threads (the encoders, zlib,
libx264 and LAME, release the GIL; a render never holds up the requests of other tasks), once:
requests for a file being rendered wait for that render. The renderers load on the first
download, not at start-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from .catalogue import Catalogue, Model
from .errors import NotFound
from .tasks import State, Task, TaskStore, observe

__all__ = ["FileCache", "Media", "MediaFile", "file_name", "render_file"]

#: ``{n}.{ext}``: ASCII decimal digits, no leading zero (``00.png`` and ``².png`` name nothing)
_FILE_NAME = re.compile(r"(0|[1-9][0-9]{0,2})\.([a-z0-9]{3,4})", re.ASCII)


class MediaFile(NamedTuple):
    """One served file: its bytes, a strong ETag (quoted blake2b-128 of the body) and its
    media type."""

    body: bytes
    etag: str
    media_type: str


def file_name(name: str) -> tuple[int, str]:
    """The file index and extension a file name (``{n}.{ext}``) names, or 404 saying what a
    name looks like."""
    found = _FILE_NAME.fullmatch(name)
    if found is None:
        raise NotFound(
            f"No file at this URL: expected /files/{{task_id}}/{{n}}.{{ext}} (e.g. 0.png, "
            f"0.mp4), got {name[:80]!r}"
        )
    return int(found.group(1)), found.group(2)


def etag_of(body: bytes) -> str:
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


#: a rendered file: (task id, index, extension); a music clip's MP3 and its cover share an index
FileKey = tuple[str, int, str]


class FileCache:
    """LRU cache of rendered files keyed by (task_id, index, ext), bounded by their total bytes.
    A file larger than the whole budget is served but not kept. Used from event loops only."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[FileKey, MediaFile] = OrderedDict()
        self._by_task: dict[str, set[tuple[int, str]]] = {}
        self.size_bytes = 0

    def get(self, key: FileKey) -> MediaFile | None:
        """The cached file for ``key`` (now the most recently used), or None."""
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def put(self, key: FileKey, file: MediaFile) -> None:
        if len(file.body) > self.max_bytes or key in self._entries:
            return
        self._entries[key] = file
        self._by_task.setdefault(key[0], set()).add(key[1:])
        self.size_bytes += len(file.body)
        while self.size_bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))

    def discard(self, task_id: str) -> None:
        """Drop every cached file of ``task_id`` (it left the store)."""
        for index, ext in list(self._by_task.get(task_id, ())):
            self._remove((task_id, index, ext))

    def clear(self) -> None:
        self._entries.clear()
        self._by_task.clear()
        self.size_bytes = 0

    def _remove(self, key: FileKey) -> None:
        self.size_bytes -= len(self._entries.pop(key).body)
        indexes = self._by_task[key[0]]
        indexes.discard(key[1:])
        if not indexes:
            del self._by_task[key[0]]

    def __len__(self) -> int:
        return len(self._entries)


def render_file(
    task: Task, index: int, model: Model | None, max_pixels: int, ext: str | None = None
) -> MediaFile:
    """Render file ``index`` of a finished task (pure: the same task gives the same bytes),
    or its cover when ``ext`` is its output's cover extension. Runs on a worker thread."""
    kind = model.output.kind if model is not None else "image"
    main = model.file_ext(task.params) if model is not None else "png"
    cover = model.output.cover if model is not None else None
    if cover is not None and ext == cover[0]:
        from .images import Placeholder, render_png

        placeholder = Placeholder(
            width=cover[2], height=cover[3], seed=task.seed + index, model=task.model,
            prompt=task.prompt, task_id=task.id, index=index, count=task.images,
        )  # fmt: skip
        body = render_png(placeholder, max_pixels=max(max_pixels, cover[2] * cover[3]))
        return MediaFile(body, etag_of(body), cover[1])
    ext = main
    media_type = model.output.formats[ext] if model is not None else "image/png"
    if kind == "video":
        from .video import VideoPlaceholder, render_mp4

        assert model is not None
        body = render_mp4(
            VideoPlaceholder(
                width=task.width, height=task.height, duration_s=model.duration_s(task.params),
                seed=task.seed, model=task.model, prompt=task.prompt, task_id=task.id,
                index=index, audio=_with_sound(task),
            ),
            max_pixels=max_pixels,
        )  # fmt: skip
    elif kind in ("audio", "music"):
        from .audio import AudioPlaceholder, render_mp3
        from .wire import clip_title

        assert model is not None
        body = render_mp3(
            AudioPlaceholder(
                duration_s=model.file_seconds(task.params, task.seed, index), seed=task.seed,
                kind="music" if kind == "music" else "speech",
                title=clip_title(task) if kind == "music" else task.prompt[:80],
                task_id=task.id, index=index,
            )
        )  # fmt: skip
    else:
        from .images import Placeholder, encode_as, render_png

        placeholder = Placeholder(
            width=task.width, height=task.height, seed=task.seed, model=task.model,
            prompt=task.prompt, task_id=task.id, index=index, count=task.images,
        )  # fmt: skip
        transparent = model is not None and model.route.name == "remove-bg"
        body = render_png(placeholder, max_pixels=max_pixels, transparent=transparent)
        if ext != "png":
            body = encode_as(body, ext)
    return MediaFile(body, etag_of(body), media_type)


#: request fields that ask for a video's sound track
_SOUND_FIELDS = ("sound", "generateAudio")


def _with_sound(task: Task) -> bool:
    return any(task.params.get(name) is True for name in _SOUND_FIELDS)


class Media:
    """The files of one emulator's tasks."""

    def __init__(
        self,
        tasks: TaskStore,
        clock: Callable[[], float],
        cache_bytes: int,
        catalogue: Catalogue,
        workers: int | None = None,
    ) -> None:
        self.tasks = tasks
        self.clock = clock
        self.catalogue = catalogue
        self.max_pixels = catalogue.max_pixels
        self.cache = FileCache(cache_bytes)
        self.workers = workers or min(8, os.cpu_count() or 1)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        #: renders in flight: a request for a file being rendered waits for the same render
        self._rendering: dict[FileKey, concurrent.futures.Future[MediaFile]] = {}

    def model_of(self, task: Task) -> Model | None:
        return self.catalogue.models.get(task.model)

    def finished(self, task_id: str, index: int, ext: str | None = None) -> Task:
        """The task whose file ``index`` (with extension ``ext``) a URL names, as its
        scenario serves it; 404 saying why when there is none."""
        task = self.tasks.get(task_id)
        now = self.clock()
        if task is None or not 0 <= index < task.images:
            raise NotFound(f"No file at this URL: task {task_id!r} has no file {index}")
        model = self.model_of(task)
        wanted = model.file_ext(task.params) if model is not None else "png"
        cover = model.output.cover if model is not None else None
        if ext is not None and ext != wanted and (cover is None or ext != cover[0]):
            also = f" (and .{cover[0]} covers)" if cover is not None else ""
            raise NotFound(
                f"No file at this URL: the files of task {task_id!r} are .{wanted}{also}, not "
                f".{ext}"
            )
        view = observe(task, now)
        if view.state is not State.SUCCEEDED and not (
            model is not None and _early(model.output.first_at, view.state, view.progress,
                                         index, ext in (None, wanted))
        ):  # fmt: skip
            raise NotFound(
                f"Task {task_id!r} has not completed: it has no files yet. Poll it until its "
                "status is final."
            )
        effect = task.image
        if effect is not None and effect.mode == "404":
            raise NotFound(f"No file at this URL (scenario: image 404) for task {task_id!r}")
        if effect is not None and effect.mode == "expire":
            ended = task.finished_at if task.finished_at is not None else now
            if now >= ended + effect.after_s:
                raise NotFound(f"The file of task {task_id!r} has expired")
        return task

    def _key(self, task: Task, index: int, ext: str | None) -> FileKey:
        model = self.model_of(task)
        return task.id, index, ext or (model.file_ext(task.params) if model else "png")

    async def file(self, task_id: str, index: int, ext: str | None = None) -> MediaFile:
        """File ``index`` of a finished task (no key: file URLs are public, like a CDN's), as
        its scenario serves it, rendered off the event loop on first use."""
        task = self.finished(task_id, index, ext)
        key = self._key(task, index, ext)
        found = self.cache.get(key)
        if found is None:
            pending = self._rendering.get(key)
            if pending is None:
                pending = self._pool_of().submit(
                    render_file, task, index, self.model_of(task), self.max_pixels, key[2]
                )
                self._rendering[key] = pending
            try:
                found = await asyncio.wrap_future(pending)
            finally:
                if self._rendering.get(key) is pending and pending.done():
                    del self._rendering[key]
            if self.tasks.peek(task.id) is task:  # not forgotten or reset meanwhile
                self.cache.put(key, found)
        if task.image is not None and task.image.mode == "corrupt":
            return _corrupted(found)
        return found

    def file_now(self, task_id: str, index: int, ext: str | None = None) -> MediaFile:
        """As :meth:`file`, rendered on the calling thread (for code with no event loop)."""
        task = self.finished(task_id, index, ext)
        key = self._key(task, index, ext)
        found = self.cache.get(key)
        if found is None:
            found = render_file(task, index, self.model_of(task), self.max_pixels, key[2])
            self.cache.put(key, found)
        if task.image is not None and task.image.mode == "corrupt":
            return _corrupted(found)
        return found

    def _pool_of(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                self.workers, thread_name_prefix="aio-render"
            )
        return self._pool

    def forget(self, task_id: str) -> None:
        """Drop the cached files of a task that left the store."""
        self.cache.discard(task_id)

    def clear(self) -> None:
        self.cache.clear()

    def close(self) -> None:
        """Stop the render threads (renders in flight finish first)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _early(first_at: int | None, state: State, progress: int, index: int, main: bool) -> bool:
    """Whether a running task serves its first file already (Suno's first clip streams from
    ``first_at`` percent of the run)."""
    return (
        first_at is not None
        and state is State.RUNNING
        and progress >= first_at
        and (index == 0 and main)
    )


def _corrupted(file: MediaFile) -> MediaFile:
    """The file with bytes 64-255 flipped (a file no decoder accepts), under its own ETag."""
    body = file.body[:64] + bytes(b ^ 0x5A for b in file.body[64:256])
    return MediaFile(body, '"corrupt-' + file.etag.strip('"') + '"', file.media_type)
