"""The files of finished tasks, as their public URLs serve them: which file a URL names, the
scenario's file effects (404, expire, corrupt), rendering off the event loop, and one
byte-bounded cache for every kind of file (PNG, JPEG, WebP, MP4, MP3).

A file is rendered on its first download, off the event loop (images on threads, videos and
audio in worker processes, all at the lowest CPU priority: a render never holds up the
requests of other tasks), once: requests for a file being rendered wait for that render. A
caller whose thread serves one request at a time and nothing else (the in-process bridge of a
sync client) sets :data:`RENDER_HERE`: the render then runs on that thread, which costs less
than handing it to a worker and blocks no one.

The cache is keyed by what decides a file's bytes (:class:`RenderJob`), not by task: the same
request under the same seed gets the same task id and the same file, so after a reset (the
pytest plugin resets before each test) nothing is rendered twice. A task that expires or is
evicted takes its files out of the cache: no URL serves them any more.
The renderers load on the first download, not at start-up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import hashlib
import multiprocessing
import multiprocessing.context
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import NamedTuple

from .catalogue import Catalogue, Model
from .errors import NotFound
from .tasks import State, Task, TaskStore, observe
from .wire import clip_title

__all__ = ["FileCache", "Media", "MediaFile", "RenderJob", "file_name", "render_file", "render_job"]

#: set by a caller whose thread serves a single request and nothing else (the pytest plugin's
#: in-process bridge, for a sync client): :meth:`Media.file` renders on that thread, skipping
#: the hand-off to a worker and back (measured in benchmarks/README.md)
RENDER_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "aio_emulator_render_here", default=False
)

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


#: a cached file's key: the job that renders it (tests may use any hashable pair)
Key = Hashable


class FileCache:
    """LRU cache of rendered files keyed by what decides their bytes (:class:`RenderJob`),
    bounded by their total bytes. A file larger than the whole budget is served but not kept.
    Used from event loops only."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, MediaFile] = OrderedDict()
        self.size_bytes = 0

    def get(self, key: Key) -> MediaFile | None:
        """The cached file for ``key`` (now the most recently used), or None."""
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def put(self, key: Key, file: MediaFile) -> None:
        if len(file.body) > self.max_bytes or key in self._entries:
            return
        self._entries[key] = file
        self.size_bytes += len(file.body)
        while self.size_bytes > self.max_bytes:
            self._remove(next(iter(self._entries)))

    def discard(self, key: Key) -> None:
        """Forget the file cached for ``key``, if any."""
        if key in self._entries:
            self._remove(key)

    def clear(self) -> None:
        self._entries.clear()
        self.size_bytes = 0

    def _remove(self, key: Key) -> None:
        self.size_bytes -= len(self._entries.pop(key).body)

    def __len__(self) -> int:
        return len(self._entries)


class RenderJob(NamedTuple):
    """Everything that decides the bytes of one file: the key of the cache, so identical
    requests under an identical seed share one render, across resets and runs (a pytest
    suite resetting before every test renders each file once)."""

    kind: str  # image | video | audio
    ext: str
    media_type: str
    width: int
    height: int
    duration_s: float
    seed: int
    model: str
    prompt: str
    task_id: str
    file_index: int
    files: int
    #: a video's silent sound track, a background remover's transparency
    sound: bool = False
    transparent: bool = False
    music: bool = False


def render_job(task: Task, index: int, model: Model | None, ext: str | None = None) -> RenderJob:
    """What file ``index`` of a finished task is made of (its cover, for the extension of its
    output's cover: a music clip's PNG)."""
    if model is None:  # a model this catalogue does not know (a state file): an image
        return RenderJob("image", "png", "image/png", task.width, task.height, 0.0, task.seed,
                         task.model, task.prompt, task.id, index, task.images)  # fmt: skip
    output = model.output
    if output.cover is not None and ext == output.cover[0]:
        cover_ext, media_type, width, height = output.cover
        return RenderJob("image", cover_ext, media_type, width, height, 0.0, task.seed + index,
                         task.model, clip_title(task), task.id, index, task.images)  # fmt: skip
    ext = model.file_ext(task.params)
    route = model.route.name
    music = output.kind == "music"
    return RenderJob(
        "audio" if music else output.kind, ext, output.formats[ext], task.width, task.height,
        model.file_seconds(task.params, task.seed, index), task.seed, task.model,
        clip_title(task) if music else task.prompt, task.id, index, task.images,
        sound=_with_sound(task), transparent=route == "remove-bg", music=music,
    )  # fmt: skip


def render_file(job: RenderJob, max_pixels: int) -> MediaFile:
    """Render one file (pure: the same job gives the same bytes). Runs on a worker thread."""
    if job.kind == "video":
        from .video import VideoPlaceholder, render_mp4

        body = render_mp4(
            VideoPlaceholder(
                width=job.width, height=job.height, duration_s=job.duration_s, seed=job.seed,
                model=job.model, prompt=job.prompt, task_id=job.task_id, index=job.file_index,
                audio=job.sound,
            ),
            max_pixels=max_pixels,
        )  # fmt: skip
    elif job.kind == "audio":
        from .audio import AudioPlaceholder, render_mp3

        body = render_mp3(
            AudioPlaceholder(
                duration_s=job.duration_s, seed=job.seed,
                kind="music" if job.music else "speech", title=job.prompt[:80],
                task_id=job.task_id, index=job.file_index,
            )
        )  # fmt: skip
    else:
        from .images import Placeholder, encode_as, render_png

        placeholder = Placeholder(
            width=job.width, height=job.height, seed=job.seed, model=job.model,
            prompt=job.prompt, task_id=job.task_id, index=job.file_index, count=job.files,
        )  # fmt: skip
        body = render_png(placeholder, max_pixels=max_pixels, transparent=job.transparent)
        if job.ext != "png":
            body = encode_as(body, job.ext)
    return MediaFile(body, etag_of(body), job.media_type)


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
        self.workers = workers or min(8, _usable_cpus())
        self._threads: concurrent.futures.Executor | None = None
        self._processes: concurrent.futures.Executor | None = None
        #: renders in flight: a request for a file being rendered waits for the same render
        self._rendering: dict[RenderJob, concurrent.futures.Future[MediaFile]] = {}

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

    async def file(self, task_id: str, index: int, ext: str | None = None) -> MediaFile:
        """File ``index`` of a finished task (no key: file URLs are public, like a CDN's), as
        its scenario serves it, rendered off the event loop on first use (on this thread, where
        :data:`RENDER_HERE` is set)."""
        task = self.finished(task_id, index, ext)
        job = self._job(task, index, ext)
        found = self.cache.get(job)
        if found is None:
            found = await self._render(job)
            if self.tasks.peek(task.id) is task:  # (not one forgotten while it rendered)
                self.cache.put(job, found)
        if task.image is not None and task.image.mode == "corrupt":
            return _corrupted(found)
        return found

    async def _render(self, job: RenderJob) -> MediaFile:
        """Render `job` here where :data:`RENDER_HERE` is set, else on a worker, sharing a
        render already in flight."""
        if RENDER_HERE.get():
            return render_file(job, self.max_pixels)
        pending = self._rendering.get(job)
        if pending is None:
            pending = self._pool_of(job).submit(render_file, job, self.max_pixels)
            self._rendering[job] = pending
        try:
            return await asyncio.wrap_future(pending)
        finally:
            if self._rendering.get(job) is pending and pending.done():
                del self._rendering[job]

    def _job(self, task: Task, index: int, ext: str | None) -> RenderJob:
        """The render job of a task's file, built on the first request for it."""
        jobs = task.jobs
        if jobs is None:
            jobs = task.jobs = {}
        job = jobs.get((index, ext))
        if job is None:
            job = jobs[(index, ext)] = render_job(task, index, self.model_of(task), ext)
        return job

    def _pool_of(self, job: RenderJob) -> concurrent.futures.Executor:
        """Images render on threads (a few ms each, mostly in zlib, which releases the GIL);
        videos and audio in worker processes at the lowest CPU priority, whose Python frame
        loops hold no GIL of the server's (benchmarks/README.md: a poll's p99 while 8 videos
        render went from 12x its idle p99 on threads to 1x)."""
        if job.kind == "image":
            if self._threads is None:
                self._threads = concurrent.futures.ThreadPoolExecutor(
                    self.workers, thread_name_prefix="aio-render", initializer=_in_the_background
                )
            return self._threads
        if self._processes is None:
            self._processes = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=_process_context(), initializer=_in_the_background
            )
        return self._processes

    def forget(self, task: Task) -> None:
        """Drop the cached files of a task that left the store (expired or evicted): no URL
        serves them any more, and only a reset can create its id again. A reset clears tasks
        without forgetting them, so their files stay for the next test's identical task."""
        if task.jobs:
            for job in task.jobs.values():
                self.cache.discard(job)

    def clear(self) -> None:
        """Forget every rendered file (the cache is keyed by content: a reset keeps it)."""
        self.cache.clear()

    def close(self) -> None:
        """Stop the render threads and processes (renders in flight finish first)."""
        for pool in (self._threads, self._processes):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._threads = self._processes = None


def _process_context() -> multiprocessing.context.BaseContext:
    """forkserver where there is one (a fork of a server with threads is unsafe), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a server pinned to one core gets one
    render thread), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: the niceness of render threads: the event loop wins every contended CPU
RENDER_NICENESS = 19


def _in_the_background() -> None:
    """Run this render thread or process at the lowest CPU priority (Linux sets it per
    thread): polls and creates of other tasks keep their latency while videos render; a render
    itself only waits when the CPUs are busy (``benchmarks/render_load.py``)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: as before
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), RENDER_NICENESS)


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
