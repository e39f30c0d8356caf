"""The schema's string patterns, checked once per distinct value instead of once per car.

msgspec tests a string field's `Meta(pattern=...)` with Python's `re` on every value it
decodes. For a 1,000-car batch that is 3,000 searches (brand, model, colour): 1.6 ms of the
2.3 ms decode (0.74 ms without the patterns; one core, 2026-12-07), about 7 % of what such a
request costs the server. Requests repeat a few thousand brands, models and colours, so:

* `unpatterned` makes the Struct the server decodes into: a subclass of the schema's Struct
  whose pattern-bearing string fields keep their lengths but not their patterns, everything
  else unchanged (a pattern inside a union stays with msgspec);
* `PatternMemo.check` then tests those fields against the same patterns, read from the
  schema's type info (not written again), remembering each value that matched: a value seen
  before costs a set lookup, an unseen one `re.search` as msgspec runs it. A mismatch is a
  `msgspec.ValidationError` in msgspec's own words and path.

The same values are accepted and refused as when msgspec checks them itself. `PatternMemo`
alone differs in which fault a body with several is refused for (the server does not show it:
`inference.decode` has a refused body decoded again by the schema's own decoder, whose error
it returns):

* the patterns are tested after the rest of the body decoded (and, for a batch, after its
  length is checked), so a body with a pattern fault and another fault is refused naming the
  other one (msgspec names whichever comes first in the document);
* among pattern faults, the first car's is named, and within a car the first in the schema's
  field order (brand, model_name, color), whatever the order of the keys in the body;
* a key sent twice is decoded as its last value, and only that one is tested (msgspec tests
  each value as it reads it, so it refuses a bad first value that a good second one replaces).

Each field remembers at most `MEMO_LIMIT` values, so a client sending made-up values cannot
grow a worker's memory by more than a few megabytes; past it, unseen values are still checked,
just not remembered.
"""

import re
from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated, Any, Final, TypeVar

import msgspec
from msgspec import Meta

S = TypeVar("S", bound=msgspec.Struct)

#: The most values one field remembers (the 2020 listings have 36 brands, about 1,000 models
#: and 16 colours); beyond it a value is checked every time it comes. At most 60 characters a
#: value (`shared_schema.car`), so the three fields hold a few megabytes at most.
MEMO_LIMIT: Final = 4096


def unpatterned(struct: type[S]) -> tuple[type[S], dict[str, str]]:
    """A subclass of `struct` without its fields' string patterns, and those patterns by field.

    The subclass has the same fields in the same order, the same configuration and the same
    lengths, ranges and types; only a field whose type is a string with a `pattern` loses the
    pattern, which `PatternMemo` then checks. Its instances are `struct`s, but msgspec compares
    Structs of one type only: one never equals a `struct` with the same values.
    """
    overrides: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    patterns: dict[str, str] = {}
    for field in msgspec.inspect.type_info(struct).fields:  # type: ignore[attr-defined]
        kind = field.type.type if isinstance(field.type, msgspec.inspect.Metadata) else field.type
        if not isinstance(kind, msgspec.inspect.StrType) or kind.pattern is None:
            continue
        bare = Annotated[str, Meta(min_length=kind.min_length, max_length=kind.max_length)]
        overrides.append(
            (field.name, bare) if field.required else (field.name, bare, field.default)
        )
        patterns[field.name] = kind.pattern
    # A field redefined in a subclass is positional unless the subclass says keyword-only.
    kw_only = not any(name in struct.__match_args__ for name in patterns)
    twin = msgspec.defstruct(
        f"Unpatterned{struct.__name__}", overrides, bases=(struct,), kw_only=kw_only
    )
    return twin, patterns  # type: ignore[return-value]


class PatternMemo:
    """Checks decoded Structs' fields against their patterns, each distinct value once."""

    def __init__(self, patterns: dict[str, str], limit: int = MEMO_LIMIT) -> None:
        self._fields = tuple(
            (name, attrgetter(name), re.compile(pattern), set[str]())
            for name, pattern in patterns.items()
        )
        self._limit = limit

    def remembered(self) -> dict[str, int]:
        """How many values each field remembers."""
        return {name: len(seen) for name, _, _, seen in self._fields}

    def check(self, items: Sequence[Any], path: str) -> None:
        """Test every item's pattern fields; `path` with `{}` for the item's index, if a list.

        Raises:
            msgspec.ValidationError: The first value, in document order, that does not match
                its field's pattern, worded and placed as msgspec words it.
        """
        if all(seen.issuperset(map(get, items)) for _, get, _, seen in self._fields):
            return
        for index, item in enumerate(items):
            for name, get, pattern, seen in self._fields:
                value = get(item)
                if value in seen:
                    continue
                if pattern.search(value) is None:
                    where = f"{path.format(index)}.{name}"
                    raise msgspec.ValidationError(
                        f"Expected `str` matching regex {pattern.pattern!r} - at `{where}`"
                    )
                if len(seen) < self._limit:
                    seen.add(value)
