"""The files of finished tasks, as their public URLs serve them: which file a URL names, the
scenario's image effects (404, expire, corrupt), and the cache of rendered images, keyed by
what determines their bytes (`images.Placeholder`), so it outlives tasks and resets.

Rendering (Pillow) loads on the first download, not at start-up, and never runs on the
event loop: in a worker thread by default (in-process use, the pytest plugin's live server),
or, for a process that only serves (``aio-emulator serve``), in a pool of processes started
on the first render and sized to the CPUs the process may use (Pillow's drawing holds the
GIL, so threads would share one core). A request for an image that is being rendered waits
for that render only; every other request goes on meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from .errors import NotFound
from .tasks import State, Task, TaskStore, observe

if TYPE_CHECKING:
    from .images import ImageCache, Placeholder, RenderedImage

__all__ = ["Media", "file_index"]

#: ``{n}.png``: ASCII decimal digits, no leading zero (``00.png`` and ``².png`` name nothing)
_FILE_NAME = re.compile(r"(0|[1-9][0-9]{0,2})\.png", re.ASCII)


def file_index(name: str) -> int:
    """The image index a file name (``{n}.png``) names, or 404 saying what a name looks like."""
    found = _FILE_NAME.fullmatch(name)
    if found is None:
        raise NotFound(
            f"No image at this URL: expected /files/{{task_id}}/{{n}}.png, got {name[:80]!r}"
        )
    return int(found.group(1))


class Media:
    """The images of one emulator's tasks."""

    def __init__(
        self, tasks: TaskStore, clock: Callable[[], float], cache_bytes: int, max_pixels: int
    ) -> None:
        self.tasks = tasks
        self.clock = clock
        self.cache_bytes = cache_bytes
        self.max_pixels = max_pixels
        self._cache: ImageCache | None = None
        #: renders under way: the loop they run on, and the task every request for that
        #: image awaits (a loop's task cannot be awaited from another loop)
        self._rendering: dict[
            Placeholder, tuple[asyncio.AbstractEventLoop, asyncio.Task[RenderedImage]]
        ] = {}
        self._pool: Executor | None = None
        self._use_pool = False

    @property
    def cache(self) -> ImageCache:
        if self._cache is None:  # Pillow loads on the first download, not at start-up
            from .images import ImageCache

            self._cache = ImageCache(self.cache_bytes)
        return self._cache

    def use_process_pool(self) -> None:
        """Render in a pool of processes (started on the first render); :meth:`close` stops it."""
        self._use_pool = True

    def close(self) -> None:
        """Stop the render pool, if one started (renders under way finish first: milliseconds)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    async def image(self, task_id: str, index: int) -> RenderedImage:
        """Image ``index`` of a finished task (no key: image URLs are public, like a CDN's),
        as the task's scenario serves it; 404 saying why when there is none."""
        task = self.tasks.get(task_id)
        now = self.clock()
        if task is None or not 0 <= index < task.images:
            raise NotFound(f"No image at this URL: task {task_id!r} has no image {index}")
        if observe(task, now).state is not State.SUCCEEDED:
            raise NotFound(f"Task {task_id!r} has not completed: it has no images yet")
        effect = task.image
        if effect is not None and effect.mode == "404":
            raise NotFound(f"No image at this URL (scenario: image 404) for task {task_id!r}")
        if effect is not None and effect.mode == "expire":
            ended = task.finished_at if task.finished_at is not None else now
            if now >= ended + effect.after_s:
                raise NotFound(f"The image of task {task_id!r} has expired")
        # a placeholder's fields as a plain tuple: built in C, equal to the cache's keys
        fields = (task.width, task.height, task.seed, task.model, task.prompt, task.id, index,
                  task.images)  # fmt: skip
        image = self.cache.get(fields)
        if image is None:
            image = await self._render(placeholder(task, index))
        if effect is not None and effect.mode == "corrupt":
            return _corrupted(image)
        return image

    async def _render(self, key: Placeholder) -> RenderedImage:
        loop = asyncio.get_running_loop()
        under_way = self._rendering.get(key)
        if under_way is None or under_way[0] is not loop:
            task = loop.create_task(self._render_once(key))
            entry = self._rendering[key] = (loop, task)
            task.add_done_callback(lambda _: self._done_rendering(key, entry))
        else:
            task = under_way[1]
        # shielded: a client that goes away does not cancel a render others may be awaiting
        return await asyncio.shield(task)

    def _done_rendering(
        self, key: Placeholder, entry: tuple[asyncio.AbstractEventLoop, asyncio.Task[RenderedImage]]
    ) -> None:
        if self._rendering.get(key) is entry:  # not another loop's render of the same image
            del self._rendering[key]

    async def _render_once(self, key: Placeholder) -> RenderedImage:
        from concurrent.futures.process import BrokenProcessPool

        from .images import render_image

        loop = asyncio.get_running_loop()
        pool = self._process_pool() if self._use_pool else None  # None: a worker thread
        try:
            image = await loop.run_in_executor(pool, render_image, key, self.max_pixels)
        except BrokenProcessPool:  # a worker died (killed, out of memory): the next starts anew
            if self._pool is pool:
                self.close()
            raise
        return self.cache.put(key, image)

    def _process_pool(self) -> Executor:
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # forkserver: workers fork from a clean process that has imported the renderer
            # (not from this one, whose threads fork must not copy); spawn where it is missing
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context(
                "forkserver" if "forkserver" in methods else "spawn"
            )
            if context.get_start_method() == "forkserver":
                context.set_forkserver_preload(["emulator.images"])
            self._pool = ProcessPoolExecutor(max_workers=_cpus(), mp_context=context)
        return self._pool

    def forget(self, task_id: str) -> None:
        """Drop the cached images of a task that left the store."""
        if self._cache is not None:
            self._cache.discard(task_id)

    def clear(self) -> None:
        """On a reset: the cache stays, as it is keyed by what determines the bytes (the same
        seed gives the next test the same tasks, and their images are already rendered)."""


def _cpus() -> int:
    """The CPUs this process may run on (its affinity, which ``taskset`` narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def placeholder(task: Task, index: int) -> Placeholder:
    """What determines the bytes of image ``index`` of ``task``."""
    from .images import Placeholder

    return Placeholder(
        task.width, task.height, task.seed, task.model, task.prompt, task.id, index, task.images
    )


def _corrupted(image: RenderedImage) -> RenderedImage:
    """The image with bytes 64-255 flipped (a PNG no decoder accepts), under its own ETag."""
    from .images import RenderedImage

    body = image.body[:64] + bytes(b ^ 0x5A for b in image.body[64:256])
    return RenderedImage(body, '"corrupt-' + image.etag.strip('"') + '"')
