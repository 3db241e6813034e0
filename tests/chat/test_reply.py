"""The default reply: a seeded placeholder quoting the last message, 20 to 60 words."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from emulator.chat.reply import EXCERPT_CHARS, EXCERPT_WORDS, MAX_WORDS, MIN_WORDS, placeholder
from emulator.chat.request import parse_request


def reply_to(content: str, seed: int = 7) -> str:
    request = parse_request({"model": "gemini", "messages": [{"role": "user", "content": content}]})
    return placeholder(request, seed, "gemini")


def quoted(reply: str) -> str:
    return reply.split("“", 1)[1].split("”", 1)[0]


def test_a_short_message_is_quoted_whole_and_single_spaced() -> None:
    assert quoted(reply_to("  Summarise\tHamlet \n in three   sentences. ")) == (
        "Summarise Hamlet in three sentences."
    )


def test_a_long_message_is_quoted_by_its_first_words_with_an_ellipsis() -> None:
    words = [f"w{i}" for i in range(5000)]
    assert quoted(reply_to(" ".join(words))) == " ".join(words[:EXCERPT_WORDS]) + "…"
    assert quoted(reply_to(" ".join(words[:EXCERPT_WORDS]))) == " ".join(words[:EXCERPT_WORDS])


def test_long_words_are_cut_at_the_character_limit_with_an_ellipsis() -> None:
    excerpt = quoted(reply_to("x" * 50 + " " + "y" * 50))
    assert excerpt == ("x" * 50 + " " + "y" * 50)[:EXCERPT_CHARS] + "…"


@given(
    words=st.lists(st.text(alphabet="ab.,; \t\nü", min_size=1, max_size=12), max_size=40),
    seed=st.integers(0, 2**64 - 1),
)
def test_the_reply_has_its_seeded_length_and_ends_a_sentence(words: list[str], seed: int) -> None:
    content = " ".join(words) or "hi"
    reply = reply_to(content, seed)
    assert reply == reply_to(content, seed)
    intro = reply.split("”.", 1)[0] + "”."
    target = max(MIN_WORDS + seed % (MAX_WORDS - MIN_WORDS + 1), len(intro.split()))
    assert len(reply.split()) == target
    assert reply.endswith(".")
