"""Classes a config names by `_target_`: the encoder (`model`) and the dataset reader (`data`)."""

from __future__ import annotations

from lmft.errors import LmftError


def target_class(target: str | None, base: type, key: str, hint: str) -> type:
    """The subclass of `base` that `target` (`package.module.Class`, the config's `key`) names;
    otherwise an error that says what went wrong and `hint`."""
    from hydra.utils import get_class

    try:
        cls = get_class(str(target))
    except Exception as e:
        raise LmftError(
            f"{key}={target!r} names no class lmft can import ({type(e).__name__}). {hint}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise LmftError(f"{key}={target!r} is not an lmft {base.__name__} ({base.__module__}).")
    return cls
