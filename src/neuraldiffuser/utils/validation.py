"""Checks at the array boundary, in the spirit of scikit-learn's ``check_array``.

Every public function that takes arrays from a user runs them through these first, so a wrong
input fails with one line that names the argument and what was expected (a ``DataError``), not
with a traceback from deep inside torch, numpy.linalg or scikit-image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, ModelLoadError


def check_array(
    x: Any,
    name: str,
    *,
    ndim: int | Sequence[int] | None = None,
    shape: Sequence[int | None] | None = None,
    dtype: Any = np.float32,
    finite: bool = True,
    min_rows: int = 1,
    value_range: tuple[float, float] | None = None,
    integer: bool = False,
) -> np.ndarray:
    """``x`` as a numpy array of ``dtype`` after checking it.

    ``ndim``: allowed number of dimensions; ``shape``: expected trailing shape (None = any size);
    ``finite``: refuse NaN/Inf; ``min_rows``: rows along axis 0; ``value_range``: inclusive bounds;
    ``integer``: the values must be integers (e.g. image indices). ``dtype=None`` keeps the dtype.
    """
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise DataError(f"'{name}' is not an array ({exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise DataError(f"'{name}' must be numeric, got dtype {arr.dtype}")
    dims = (ndim,) if isinstance(ndim, int) else tuple(ndim or ())
    if dims and arr.ndim not in dims:
        want = " or ".join(f"{d}-D" for d in dims)
        raise DataError(f"'{name}' must be {want}, got shape {arr.shape}")
    if shape is not None:
        tail = arr.shape[arr.ndim - len(shape) :] if arr.ndim >= len(shape) else None
        if tail is None or any(s is not None and s != t for s, t in zip(shape, tail, strict=True)):
            want = "(…, " + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise DataError(f"'{name}' has shape {arr.shape}, expected trailing shape {want}")
    if arr.ndim >= 1 and arr.shape[0] < min_rows:
        raise DataError(f"'{name}' has {arr.shape[0]} rows, needs at least {min_rows}")
    if integer and arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0):
        raise DataError(f"'{name}' must hold integers")
    if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise DataError(f"'{name}' holds {bad} NaN or Inf value(s)", fix="drop or impute them first")
    if value_range is not None and arr.size:
        lo, hi = value_range
        if arr.min() < lo or arr.max() > hi:
            raise DataError(f"'{name}' values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    return arr


def check_consistent_rows(**arrays: Any) -> int:
    """All arrays have the same number of rows (axis 0); returns it."""
    rows = {name: len(a) for name, a in arrays.items() if a is not None}
    if len(set(rows.values())) > 1:
        listing = ", ".join(f"'{n}' {r}" for n, r in rows.items())
        raise DataError(
            f"inputs have different numbers of rows: {listing}",
            fix="give one row per trial or image in every input",
        )
    return next(iter(rows.values()), 0)


def check_positive(value: float, name: str, *, strict: bool = False) -> float:
    """A number ≥ 0 (> 0 with ``strict``), as a float."""
    v = float(value)
    if not np.isfinite(v) or v < 0 or (strict and v == 0):
        raise ConfigError(f"'{name}' must be {'> 0' if strict else '>= 0'}, got {value!r}")
    return v


def check_is_fitted(estimator: Any, attribute: str) -> None:
    """``estimator.attribute`` is set (by ``fit`` or ``load``)."""
    if getattr(estimator, attribute, None) is None:
        name = type(estimator).__name__
        raise ModelLoadError(
            f"this {name} is not fitted yet", fix=f"call {name}.fit(X, Y) (or load a fitted one) first"
        )


def pydantic_message(exc: Exception) -> str:
    """One line from a pydantic ValidationError: the key, what is wrong, and the value given."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0]
    err = errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ())) or "value"
    return f"key '{loc}': {err['msg']} (got {err.get('input')!r})"
