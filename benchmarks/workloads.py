"""The requests the benchmarks send: one home for the bodies ``bench.py`` loads the servers with
and ``count.py`` counts, so that both measure the same request."""

from __future__ import annotations

import json

CREATE_PATH = "/api/v1/images/generations"
#: an image create (cogview-4 at 1024x1024)
CREATE_BODY = json.dumps(
    {
        "model": "cogview-4",
        "prompt": "A futuristic robot assistant helping in a modern kitchen, clean design",
        "size": "1024*1024",
        "quality": "hd",
    }
)
VIDEO_PATH = "/api/v1/videos/generations"
#: a video create (kling-3: the most fields, cross-field checks, a priced duration)
VIDEO_BODY = json.dumps(
    {
        "model": "kling-3",
        "prompt": "A red fox running through fresh snow at dusk, cinematic, slow motion",
        "duration": 5,
        "mode": "std",
    }
)
CHAT_PATH = "/api/v1/chat/completions"
CHAT_MESSAGES = [{"role": "user", "content": "Summarise the plot of Hamlet in three sentences."}]
#: a non-streamed chat completion
CHAT_BODY = json.dumps({"model": "gemini", "stream": False, "messages": CHAT_MESSAGES})
