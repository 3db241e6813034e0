"""The files of finished tasks, as their public URLs serve them: which file a URL names, the
scenario's image effects (404, expire, corrupt), and the cache of rendered images, keyed by
what determines their bytes (`images.Placeholder`), so it outlives tasks and resets.

Rendering (Pillow) loads on the first download, not at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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

    @property
    def cache(self) -> ImageCache:
        if self._cache is None:  # Pillow loads on the first download, not at start-up
            from .images import ImageCache

            self._cache = ImageCache(self.cache_bytes)
        return self._cache

    def image(self, task_id: str, index: int) -> RenderedImage:
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
        image = self.cache.get_or_render(placeholder(task, index), max_pixels=self.max_pixels)
        if effect is not None and effect.mode == "corrupt":
            return _corrupted(image)
        return image

    def forget(self, task_id: str) -> None:
        """Drop the cached images of a task that left the store."""
        if self._cache is not None:
            self._cache.discard(task_id)

    def clear(self) -> None:
        """On a reset: the cache stays, as it is keyed by what determines the bytes (the same
        seed gives the next test the same tasks, and their images are already rendered)."""


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
