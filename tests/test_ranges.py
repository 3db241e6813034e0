"""Conditional and byte-range answers for files (emulator/ranges.py): every rule, then
hypothesis properties (slices, partitions, hostile headers)."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.ranges import MAX_HEADER, MAX_RANGES, file_reply
from emulator.wire import Reply

BODY = bytes(range(100))  # byte i is i: a slice shows where it came from
ETAG = '"abc123"'
MP4 = b"video/mp4"
CACHE = (b"cache-control", b"public, max-age=3600")


def get(body: bytes = BODY, method: str = "GET", /, **headers: str | bytes) -> Reply:
    raw = {
        k.replace("_", "-").encode(): v if isinstance(v, bytes) else v.encode("latin-1")
        for k, v in headers.items()
    }
    return file_reply(method, raw, body, ETAG, MP4, [CACHE])


def header(reply: Reply, name: bytes) -> bytes | None:
    values = [v for k, v in reply.headers if k == name]
    assert len(values) <= 1, f"{name!r} sent {len(values)} times"
    return values[0] if values else None


def assert_partial(reply: Reply, start: int, last: int, size: int = len(BODY)) -> None:
    assert reply.status == 206
    assert header(reply, b"content-range") == f"bytes {start}-{last}/{size}".encode()
    assert header(reply, b"content-length") == str(last - start + 1).encode()
    assert reply.body == BODY[start : last + 1]


def assert_whole(reply: Reply) -> None:
    assert reply.status == 200
    assert reply.body == BODY
    assert header(reply, b"content-length") == str(len(BODY)).encode()
    assert header(reply, b"content-range") is None


def assert_unsatisfiable(reply: Reply, size: int = len(BODY)) -> None:
    assert reply.status == 416
    assert header(reply, b"content-range") == f"bytes */{size}".encode()
    assert header(reply, b"content-type") == b"application/json"
    assert header(reply, b"content-length") == str(len(reply.body)).encode()
    error = json.loads(reply.body)["error"]
    assert error["code"] == 416
    assert error["type"] == "invalid_request_error"
    assert str(size) in error["message"]


# -- 200 --------------------------------------------------------------------------------------


def test_no_range_is_the_whole_file_with_its_validators() -> None:
    reply = get()
    assert_whole(reply)
    assert header(reply, b"etag") == ETAG.encode()
    assert header(reply, b"accept-ranges") == b"bytes"
    assert header(reply, b"content-type") == MP4
    assert header(reply, b"cache-control") == CACHE[1]


# -- 206 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "start", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=10-", 10, 99),
        ("bytes=0-", 0, 99),
        ("bytes=99-", 99, 99),
        ("bytes=-1", 99, 99),
        ("bytes=-30", 70, 99),
        ("bytes=-100", 0, 99),
        ("bytes=-5000", 0, 99),  # a suffix longer than the file: all of it
        ("bytes=90-150", 90, 99),  # a last byte past the end: clamped
        ("bytes=0-99999999999999999999999", 0, 99),
        ("bytes=-99999999999999999999999", 0, 99),
        ("bytes=0005-0007", 5, 7),  # leading zeros are digits like any other
        ("BYTES=1-2", 1, 2),  # the unit is case-insensitive
        ("Bytes=1-2", 1, 2),
        (" \tbytes=1-2 \t", 1, 2),  # optional whitespace around the value
        ("bytes= 1-2 ", 1, 2),  # ... and around list elements
        ("bytes=,1-2,", 1, 2),  # empty list elements are allowed
        ("bytes=1-2, ,", 1, 2),
    ],
)
def test_a_single_range_is_a_206_of_that_slice(value: str, start: int, last: int) -> None:
    reply = get(range=value)
    assert_partial(reply, start, last)
    assert header(reply, b"accept-ranges") == b"bytes"
    assert header(reply, b"etag") == ETAG.encode()
    assert header(reply, b"content-type") == MP4
    assert header(reply, b"cache-control") == CACHE[1]


@pytest.mark.parametrize(
    ("value", "start", "last"),
    [
        ("bytes=0-4,5-9", 0, 9),  # touching
        ("bytes=0-5,3-9", 0, 9),  # overlapping
        ("bytes=5-9,0-4", 0, 9),  # in any order
        ("bytes=10-20,12-14", 10, 20),  # one inside the other
        ("bytes=0-1,200-300", 0, 1),  # an unsatisfiable one among satisfiable ones: dropped
        ("bytes=-0,3-4", 3, 4),
        ("bytes=90-,-5", 90, 99),  # a suffix overlapping an open range
        ("bytes=0-1,3-4,2-2", 0, 4),  # a gap filled by a later one
    ],
)
def test_ranges_that_coalesce_into_one_are_a_206_of_it(value: str, start: int, last: int) -> None:
    assert_partial(get(range=value), start, last)


@pytest.mark.parametrize("value", ["bytes=0-1,5-6", "bytes=0-0,-1", "bytes=0-1,3-4,6-"])
def test_ranges_that_stay_apart_are_the_whole_file(value: str) -> None:
    # documented choice: no multipart/byteranges, the whole file (RFC 9110 allows it)
    assert_whole(get(range=value))


# -- 416 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "bytes=100-",  # first byte == size
        "bytes=100-200",
        "bytes=5000-6000",
        "bytes=99999999999999999999999-",
        "bytes=-0",  # a suffix of nothing
        "bytes=-0,100-",
        "bytes=200-300,100-",
    ],
)
def test_nothing_satisfiable_is_a_416_with_the_size(value: str) -> None:
    reply = get(range=value)
    assert_unsatisfiable(reply)
    assert header(reply, b"accept-ranges") == b"bytes"
    assert header(reply, b"cache-control") == CACHE[1]


@pytest.mark.parametrize("value", ["bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0", "bytes=5-9"])
def test_any_range_of_an_empty_file_is_a_416(value: str) -> None:
    assert_unsatisfiable(get(b"", range=value), size=0)


def test_an_empty_file_without_a_range_is_an_empty_200() -> None:
    reply = get(b"")
    assert (reply.status, reply.body, header(reply, b"content-length")) == (200, b"", b"0")


# -- ignored Range ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "bytes=-",
        "bytes=a-b",
        "bytes=1-a",
        "bytes=5-2",  # last < first: an invalid range-spec invalidates the whole set
        "bytes=0-1,5-2",
        "bytes=1 - 2",  # no whitespace inside a range-spec
        "bytes =1-2",  # nor around the "="
        "bytes=--5",
        "bytes=-5-10",
        "bytes=+5-",
        "bytes=1_0-2_0",  # int() would read these, the grammar does not
        "bytes=0x10-",
        "bytes=\u0661-\u0662",  # non-ASCII digits, never read as numbers
        "bytes=1-2;q",
        "bits=0-1",  # another unit
        "items=0-1",
        "bytes0-1",
        "=0-1",
        "bytes=1-2=3",
        "by\xe9tes=0-1",
    ],
)
def test_an_invalid_range_is_ignored(value: str) -> None:
    assert_whole(get(range=value.encode("utf-8")))


def test_too_many_ranges_are_ignored() -> None:
    many = "bytes=" + ",".join(f"{i}-{i}" for i in range(MAX_RANGES + 1))
    assert len(many) <= MAX_HEADER  # the count is what refuses it
    assert_whole(get(range=many))
    assert_partial(get(range="bytes=" + ",".join(["0-0"] * MAX_RANGES)), 0, 0)


def test_thousands_of_ranges_and_very_long_headers_are_ignored() -> None:
    assert_whole(get(range="bytes=" + ",".join(["0-0"] * 5000)))
    assert_whole(get(range="bytes=0-" + "0" * 100_000))
    assert_whole(get(range="bytes=" + " " * 100_000 + "0-1"))
    assert_whole(get(range="bytes=0-1" + "," * (MAX_HEADER + 1)))


# -- If-None-Match ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        ETAG,
        "*",
        " * ",
        f"W/{ETAG}",  # weak comparison: W/ is ignored
        f'"other", {ETAG}',
        f'W/"other",W/{ETAG}',
        f' "x,y" , {ETAG} ',  # a comma inside a tag is not a separator
    ],
)
def test_a_matching_if_none_match_is_a_304(value: str) -> None:
    reply = get(if_none_match=value)
    assert reply.status == 304
    assert reply.body == b""
    assert header(reply, b"etag") == ETAG.encode()
    assert header(reply, b"accept-ranges") == b"bytes"
    assert header(reply, b"cache-control") == CACHE[1]
    assert header(reply, b"content-length") is None
    assert header(reply, b"content-type") is None


@pytest.mark.parametrize(
    "value", ['"other"', "abc123", '"abc123 "', '"ABC123"', '"other", W/"abc"', "", "**"]
)
def test_another_if_none_match_is_the_file(value: str) -> None:
    assert_whole(get(if_none_match=value))


def test_if_none_match_wins_over_range() -> None:
    assert get(if_none_match=ETAG, range="bytes=0-1").status == 304
    assert get(if_none_match=ETAG, range="bytes=500-").status == 304  # not a 416
    assert get(if_none_match='"other"', range="bytes=0-1").status == 206


# -- If-Range ---------------------------------------------------------------------------------


def test_if_range_with_our_etag_honours_the_range() -> None:
    assert_partial(get(range="bytes=0-9", if_range=ETAG), 0, 9)
    assert_partial(get(range="bytes=0-9", if_range=f" {ETAG} "), 0, 9)
    assert_unsatisfiable(get(range="bytes=500-", if_range=ETAG))


@pytest.mark.parametrize(
    "value",
    [
        '"other"',
        f"W/{ETAG}",  # strong comparison: a weak tag never matches
        "Wed, 21 Oct 2015 07:28:00 GMT",  # a date: the file has no Last-Modified
        "",
        "*",
    ],
)
def test_if_range_with_anything_else_is_the_whole_file(value: str) -> None:
    assert_whole(get(range="bytes=0-9", if_range=value))
    assert_whole(get(range="bytes=500-", if_range=value))  # not a 416 either


def test_if_range_without_range_is_the_whole_file() -> None:
    assert_whole(get(if_range=ETAG))


def test_a_weak_etag_of_ours_matches_if_none_match_but_never_if_range() -> None:
    weak = 'W/"abc123"'
    for value in (weak, ETAG):
        assert file_reply("GET", {b"if-none-match": value.encode()}, BODY, weak, MP4).status == 304
    reply = file_reply("GET", {b"range": b"bytes=0-1", b"if-range": weak.encode()}, BODY, weak, MP4)
    assert reply.status == 200


# -- HEAD -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"range": "bytes=10-19"},
        {"range": "bytes=-5"},
        {"range": "bytes=500-"},
        {"range": "bytes=nonsense"},
        {"if_none_match": ETAG},
        {"range": "bytes=0-9", "if_range": '"other"'},
    ],
)
def test_head_is_get_without_the_body(headers: dict[str, str]) -> None:
    got, head = get(**headers), get(BODY, "HEAD", **headers)
    assert head.status == got.status
    assert head.headers == got.headers
    assert head.body == b""
    assert get(BODY, "head", **headers) == head


# -- hostile input ----------------------------------------------------------------------------


def test_non_ascii_and_control_bytes_never_raise() -> None:
    for value in [b"\xff\xfe", b"bytes=\xff-", b"bytes=0-\x00", b"\x80bytes=0-1", b"\r\n"]:
        for name in (b"range", b"if-range", b"if-none-match"):
            assert file_reply("GET", {name: value}, BODY, ETAG, MP4).status == 200


# -- properties -------------------------------------------------------------------------------

bodies = st.binary(min_size=0, max_size=2000)


@st.composite
def body_and_range(draw: st.DrawFn) -> tuple[bytes, str, int, int]:
    """A non-empty body, a valid satisfiable single Range for it, and the [start, stop) it asks."""
    body = draw(st.binary(min_size=1, max_size=2000))
    size = len(body)
    kind = draw(st.sampled_from(["closed", "open", "suffix"]))
    if kind == "suffix":
        n = draw(st.integers(1, 3 * size))
        return body, f"bytes=-{n}", max(size - n, 0), size
    start = draw(st.integers(0, size - 1))
    if kind == "open":
        return body, f"bytes={start}-", start, size
    last = draw(st.integers(start, 3 * size))
    return body, f"bytes={start}-{last}", start, min(last + 1, size)


@settings(max_examples=300, deadline=None)
@given(body_and_range(), st.sampled_from(["GET", "HEAD"]))
def test_a_206_is_the_slice_it_says(case: tuple[bytes, str, int, int], method: str) -> None:
    body, value, start, stop = case
    reply = file_reply(method, {b"range": value.encode()}, body, ETAG, MP4)
    assert reply.status == 206
    length = int(header(reply, b"content-length") or b"")
    unit, _, rest = (header(reply, b"content-range") or b"").decode().partition(" ")
    span, _, size = rest.partition("/")
    first, _, last = span.partition("-")
    assert (unit, int(first), int(last) + 1, int(size)) == ("bytes", start, stop, len(body))
    assert length == int(last) - int(first) + 1
    assert reply.body == (b"" if method == "HEAD" else body[start:stop])


@settings(max_examples=200, deadline=None)
@given(bodies.filter(len), st.data())
def test_the_206s_of_a_partition_give_the_body_back(body: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=20))
    edges = [0, *sorted(cuts - {len(body)}), len(body)]
    parts = []
    for start, stop in itertools.pairwise(edges):
        # the last part also as an open or suffix range, as players ask for it
        value = f"bytes={start}-{stop - 1}"
        if stop == len(body):
            value = data.draw(st.sampled_from([value, f"bytes={start}-", f"bytes=-{stop - start}"]))
        reply = file_reply("GET", {b"range": value.encode()}, body, ETAG, MP4)
        assert reply.status == 206
        parts.append(reply.body)
    assert b"".join(parts) == body


header_values = st.one_of(
    st.binary(max_size=300),
    st.lists(
        st.sampled_from([b"bytes", b"BYTES", b"=", b"-", b",", b" ", b"\t", b"0", b"1", b"9",
                         b"99999999999999999999", b'"', b"W/", b"*", ETAG.encode(), b"\xff"]),
        max_size=40,
    ).map(b"".join),
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(
    bodies,
    st.dictionaries(st.sampled_from([b"range", b"if-range", b"if-none-match"]), header_values),
    st.sampled_from(["GET", "HEAD"]),
)
def test_any_header_bytes_never_raise(
    body: bytes, headers: dict[bytes, bytes], method: str
) -> None:
    reply = file_reply(method, headers, body, ETAG, MP4)
    assert reply.status in (200, 206, 304, 416)
    assert header(reply, b"accept-ranges") == b"bytes"
    if reply.status == 304:
        return
    length = int(header(reply, b"content-length") or b"")
    assert len(reply.body) == (0 if method == "HEAD" else length)
    if reply.status == 200:
        assert length == len(body)
    elif reply.status == 206:
        span = (header(reply, b"content-range") or b"").decode()
        first, last = span.removeprefix("bytes ").split("/")[0].split("-")
        assert 0 <= int(first) <= int(last) < len(body)
        assert method == "HEAD" or reply.body == body[int(first) : int(last) + 1]
    else:
        assert header(reply, b"content-range") == b"bytes */%d" % len(body)
