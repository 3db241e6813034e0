"""``POST /api/v1/chat/completions``: the ASGI handler.

A straight line, in the order of every emulated endpoint (``emulator/api.py``): the method
(405), the key (401), the body's media type and size (415, 413), the scenario's general rules
(latency, error, network fault, rate limit: ``match: {endpoint: chat}``), then its ``chat:``
rules (scripted reply, tool call, error, broken stream), then the body itself (400); reserve 5
credits (402), compose the answer, send it whole or as server-sent events, settle the credits
to the usage (refunded when the call fails), and journal the call with its answer.

Everything it takes from the rest of the emulator comes through :mod:`.core`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from .core import (
    CHAT_PATH,
    CLIENT_GONE,
    APIError,
    Call,
    Core,
    Decision,
    EarlyFault,
    FaultResponse,
    InvalidRequest,
    NetworkFault,
    as_api_error,
    cut,
    json_reply,
    method_not_allowed,
    runtime,
    send_reply,
    server_error,
)
from .reply import Completion, compose, json_text, request_seed, tool_call
from .request import ChatRequest, Tool, parse_request
from .rules import DEFAULT, NO_RULE, ChatCall, ChatDecision, ChatScenario
from .usage import Usage, chat_model, credits_for, message_tokens, text_tokens
from .wire import DONE, Meta, chunks, completion_body, frame, wrapped

if TYPE_CHECKING:
    from ..service import Emulator

__all__ = ["ChatEndpoint"]

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]

Sleep = Callable[[float], Awaitable[None]]


class _Answer:
    """How one call was answered, for the journal (filled in as the call goes)."""

    __slots__ = ("charged", "completion", "completion_json", "error", "fault", "responded",
                 "sent", "status", "stream", "ttft_ms", "wrapped")  # fmt: skip

    def __init__(self) -> None:
        self.status = 500  # until a response starts
        self.responded = False
        self.error: str | None = None
        #: the chat.completion object (None: no answer was composed, an error came first)
        self.completion: dict[str, Any] | None = None
        #: the same object as the JSON the answer sent, when it sent it whole and unwrapped
        #: (the journal embeds these bytes rather than encoding the object again)
        self.completion_json: bytes | None = None
        self.stream = False
        self.wrapped = False
        self.ttft_ms: float | None = None
        self.charged = 0
        self.fault: str | None = None
        #: what a fault let through, as it was sent (None without a fault)
        self.sent: _Sent | None = None

    def response(self) -> str | None:
        """The answer as the journal keeps it (JSON text), or None when there was none."""
        if self.completion is None:
            return None
        sent = self.sent
        kept = self.completion_json
        return json_text({
            "completion": self.completion if kept is None else orjson.Fragment(kept),
            "stream": self.stream, "wrapped": self.wrapped,
            "ttft_ms": self.ttft_ms, "charged": self.charged, "fault": self.fault,
            "cut": sent is not None and not sent.ended, "sent": sent.text() if sent else None,
        })  # fmt: skip


class _Sent:
    """A ``send`` that keeps the body bytes it passes on: what a faulted answer really sent
    (only a fault's answer goes through one, so a normal answer is never copied)."""

    __slots__ = ("ended", "parts", "send")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.parts: list[bytes] = []
        self.ended = False  # the body's last part was sent (False: the connection was cut)

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self.parts.append(message.get("body", b""))
            self.ended = not message.get("more_body", False)
        await self.send(message)

    def text(self) -> str:
        """The bytes sent, as text (a character a cut split in two shows as U+FFFD)."""
        return b"".join(self.parts).decode("utf-8", "replace")


class ChatEndpoint:
    """The chat route, as an ASGI callable bound to one emulator. ``sleep`` paces streams on a
    real clock (injected by tests)."""

    def __init__(self, emulator: Emulator, *, sleep: Sleep = asyncio.sleep) -> None:
        self.core = Core(emulator)
        self.sleep = sleep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = Call(scope, receive)
        answer = _Answer()

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status, answer.responded = message["status"], True
            await send(message)

        try:
            if scope["method"] != "POST":
                raise method_not_allowed(scope["method"], CHAT_PATH, "POST")
            await self._serve(scope, receive, tracked, call, answer)
        except APIError as exc:
            answer.error = exc.message
            await send_reply(tracked, exc.reply())
        except EarlyFault as fault:  # a scripted reset or hang: nothing is answered
            await fault.response(scope, receive, tracked)
        except ClientDisconnect:
            answer.status = CLIENT_GONE
        except NetworkFault:  # in-process, a scripted cut raises into the caller
            raise
        except Exception as exc:
            self.core.record_server_error(exc)
            bug = server_error(exc)
            answer.error = bug.message
            if not answer.responded:
                await send_reply(tracked, bug.reply())
            raise
        finally:
            self.core.journal(call, answer.status, answer.error, answer.response())

    # -- the call -------------------------------------------------------------------------

    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, call: Call, answer: _Answer
    ) -> None:
        core = self.core
        key, body, general = await core.read(call)
        chat: ChatScenario = runtime(call).scenario.chat or DEFAULT
        scripted = chat.decide(ChatCall(key, call.headers, body)) if chat.rules else NO_RULE
        call.rule = scripted.rule or call.rule
        if scripted.error is not None:
            raise as_api_error(scripted.error)
        request = parse_request(body)
        model = chat_model()
        prompt_tokens = message_tokens(request.messages)
        if prompt_tokens > model.context_tokens:
            raise InvalidRequest(
                f"messages: about {prompt_tokens} tokens, over the {model.context_tokens}-token "
                "context of the model"
            )
        core.reserve(key, model.reserve_credits)
        settled = False
        try:
            seed = request_seed(core.seed, body)
            completion = _scripted(scripted, request, seed) or compose(request, seed, model.id)
            usage = Usage(prompt_tokens, text_tokens(completion.text))
            credits = credits_for(usage, model)
            shown = model.upstream if chat.wrapped else model.id
            meta = Meta(core.new_id(), int(core.now()), shown)
            whole = completion_body(meta, completion, usage, credits)
            answer.completion = whole
            answer.stream = chat.stream_default if request.stream is None else request.stream
            if answer.stream:
                done = await self._stream(scope, receive, send, answer, chat, general, scripted,
                                          chunks(meta, completion, usage, credits,
                                                 include_usage=request.include_usage))  # fmt: skip
            else:
                answer.wrapped = chat.wrapped
                done = await self._whole(scope, receive, send, answer, general, scripted,
                                         wrapped(whole) if chat.wrapped else whole)  # fmt: skip
            if done:
                core.settle(key, model.reserve_credits, credits)
                settled = True
                answer.charged = credits
        finally:
            if not settled:
                core.refund(key, model.reserve_credits)

    async def _whole(
        self, scope: Scope, receive: Receive, send: Send, answer: _Answer, general: Decision,
        scripted: ChatDecision, body: dict[str, Any],
    ) -> bool:  # fmt: skip
        """Send the whole answer; False when a fault broke it (nothing is charged)."""
        reply = json_reply(body)
        if not answer.wrapped:
            answer.completion_json = reply.body
        fault = general.fault
        if scripted.cut_after is not None:
            answer.fault, fault = "cut_after", "close_mid_body"
        elif scripted.malformed_at is not None:
            answer.fault, fault = "malformed_at", "malformed_json"
        if fault is not None:
            answer.fault = answer.fault or fault
            answer.sent = sent = _Sent(send)
            await FaultResponse(fault, reply.body, options=general.fault_options)(
                scope, receive, sent
            )
            return False
        await send_reply(send, reply)
        return True

    async def _stream(
        self, scope: Scope, receive: Receive, send: Send, answer: _Answer, chat: ChatScenario,
        general: Decision, scripted: ChatDecision, objects: list[dict[str, Any]],
    ) -> bool:  # fmt: skip
        """Send the answer as server-sent events, paced on a real clock; False when a fault
        broke it (nothing is charged)."""
        frames = [frame(o) for o in objects]
        if general.fault is not None:
            events = b"".join(frames) + DONE
            answer.fault, answer.sent = general.fault, _Sent(send)
            fault = FaultResponse(general.fault, events, options=general.fault_options,
                                  media_type="text/event-stream")  # fmt: skip
            await fault(scope, receive, answer.sent)
            return False
        if scripted.cut_after is not None or scripted.malformed_at is not None:
            answer.sent = _Sent(send)  # (kept only if the fault comes within the stream)
            send = answer.sent
        ttft = self.core.sample(chat.ttft) if chat.ttft is not None else 0.0
        answer.ttft_ms = round(ttft * 1000, 3)
        paced = self.core.real_clock
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        if paced and ttft > 0:
            await self.sleep(ttft)
        for number, (obj, data) in enumerate(zip(objects, frames, strict=True), start=1):
            if scripted.cut_after is not None and number > scripted.cut_after:
                answer.fault = "cut_after"
                cut(receive, "stream cut by the emulator (chat rule fault cut_after)")
                return False
            if scripted.malformed_at == number:
                answer.fault = "malformed_at"
                data = data[: len(data) // 2] + b"\n\n"
            if paced and chat.tokens_per_second and (tokens := _tokens(obj)):
                await self.sleep(tokens / chat.tokens_per_second)
            await send({"type": "http.response.body", "body": data, "more_body": True})
        if scripted.cut_after is not None and scripted.cut_after <= len(objects):
            answer.fault = "cut_after"  # (every chunk sent, then no [DONE])
            cut(receive, "stream cut by the emulator (chat rule fault cut_after)")
            return False
        await send({"type": "http.response.body", "body": DONE, "more_body": False})
        if answer.fault is None:  # a fault past the stream's last chunk: it went through whole
            answer.sent = None
        return answer.fault is None


def _scripted(decision: ChatDecision, request: ChatRequest, seed: int) -> Completion | None:
    """The answer a chat rule scripts, if any."""
    if decision.reply is not None:
        return Completion(decision.reply)
    if decision.tool_call is not None:
        name, arguments = decision.tool_call
        tool = request.tool(name) or Tool(name, "", {"type": "object"})
        return Completion(None, (tool_call(tool, random.Random(seed), arguments),), "tool_calls")
    return None


def _tokens(chunk: dict[str, Any]) -> int:
    """Tokens a stream chunk carries (for pacing): its content or argument piece."""
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        text = delta.get("content") or "".join(
            (c.get("function") or {}).get("arguments", "") for c in delta.get("tool_calls") or ()
        )
        return max(1, text_tokens(text)) if text else 0
    return 0
