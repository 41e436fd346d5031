"""What a `data.train_size` value asks for: `all` or a count of labeled examples. Plain
config parsing, without torch, so that a cell or a sweep refuses a malformed size before it
reads any data or imports torch."""

from __future__ import annotations

from lmft.errors import LmftError


def is_all(value) -> bool:
    """Whether a `data.train_size` value asks for every labeled example (`all`)."""
    return isinstance(value, str) and value.strip().lower() == "all"


def requested_size(value) -> int | None:
    """The number of labeled examples a `data.train_size` value asks for (None: `all`), checked
    before any data is read: an integer, 2 or more (at least one example per label)."""
    if is_all(value):
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise LmftError(f"data.train_size={value!r} is not an integer; use e.g. 1000 or 'all'.")
    if value < 2:
        raise LmftError(
            f"data.train_size={value}: use 2 or more (one example per label), or 'all'."
        )
    return value


def parse_train_size(value, pool_size: int) -> int:
    """`all` or an integer in 2..pool_size."""
    n = requested_size(value)
    if n is None:
        return pool_size
    if n > pool_size:
        raise LmftError(
            f"data.train_size={n} is outside 2..{pool_size} (the labeled training pool "
            "after the validation split); use a size in that range or 'all'."
        )
    return n
