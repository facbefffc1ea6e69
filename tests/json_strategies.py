"""Hypothesis strategies for JSON-ish values near flowqueue's limits: nesting around
MAX_JSON_DEPTH, integers at the 64-bit edges, non-finite floats and lone surrogates."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from flowqueue.model.validation import INT_MAX, INT_MIN, MAX_JSON_DEPTH

EDGE_INTS = st.sampled_from([INT_MIN - 1, INT_MIN, -1, 0, 1, 2**53 + 1, INT_MAX, INT_MAX + 1])
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 1e308, 5e-324])
# Text with surrogates sometimes (Hypothesis leaves them out unless asked).
TEXT = st.text(max_size=12) | st.text(
    st.characters(exclude_categories=()), max_size=4
)  # may hold "\ud800"
LEAVES = st.none() | st.booleans() | st.integers() | EDGE_INTS | FLOATS | TEXT
SMALL = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def near_the_limit(draw: st.DrawFn) -> Any:
    """A small value wrapped in lists and objects to a depth around the limit."""
    value = draw(SMALL)
    for _ in range(draw(st.integers(MAX_JSON_DEPTH - 4, MAX_JSON_DEPTH + 3))):
        value = [value] if draw(st.booleans()) else {draw(st.text(max_size=3)): value}
    return value


JSON_VALUES = SMALL | near_the_limit()


def as_json_text(value: Any) -> str:
    """The JSON text a client would send for ``value`` (NaN literals and ``\\ud800``
    escapes included: exactly what a careless client sends)."""
    return json.dumps(value, allow_nan=True)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON documents, types included (1, 1.0 and True differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
