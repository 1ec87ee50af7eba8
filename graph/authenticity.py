"""Fake-engagement signals (刷量 / 互赞群) from the arrays of an :class:`~graph.projection.EngagementGraph`.

Two per-author signals, each the *share of the interactions an author received* that look
manufactured, and one combination of them:

* :func:`reciprocal_ring_share` -- like rings (互赞群): groups of accounts that repeatedly
  like and comment on each other's content to inflate each other's numbers.
* :func:`young_burst_share` -- bursts from brand-new accounts: many interactions within a
  short window, all from accounts that joined days ago (bought or scripted accounts).
* :func:`suspicion` -- the two shares combined into one number in ``[0, 1]``, used by
  :func:`domain.influence.score_influence` to discount a member's influence score.

All functions are pure and vectorised (no Python loop over interactions); the tests hold a
simple loop-based reference for each and compare them on random inputs.

Interaction rows follow :class:`~graph.projection.EngagementGraph`: ``inter_src[e]`` is the
member who acted (liked, commented, shared, favorited), ``inter_dst[e]`` the author of the
content acted on, ``inter_at[e]`` the time in microseconds since the epoch.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["reciprocal_ring_share", "suspicion", "young_burst_share"]

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_US_PER_DAY = 86_400_000_000


def _check_members(n: int, **columns: npt.NDArray[np.integer]) -> None:
    """Raise ``ValueError`` unless every column holds member numbers in ``0..n-1``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    for name, col in columns.items():
        if col.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional")
        if col.size and (int(col.min()) < 0 or int(col.max()) >= n):
            raise ValueError(f"{name} holds member numbers outside 0..{n - 1}")


def _check_same_length(**columns: npt.NDArray[np.generic]) -> None:
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"interaction columns differ in length: {lengths}")


def _share(part: F64, whole: F64) -> F64:
    """``part / whole`` per author, 0 where the author received nothing."""
    out = np.zeros_like(whole)
    np.divide(part, whole, out=out, where=whole > 0)
    return out


def reciprocal_ring_share(n: int, inter_src: I32, inter_dst: I32, *, min_mutual: int = 3) -> F64:
    """Share of each author's received interactions that come from like-ring partners.

    In plain words: of all the likes, comments, shares and favorites a member's content
    received, the fraction given by accounts the member has a *mutual back-scratching*
    relationship with -- the member interacted with that account's content at least
    ``min_mutual`` times **and** that account interacted with the member's content at least
    ``min_mutual`` times. Tight groups that like each other over and over (互赞群) score
    close to 1; an author whose audience does not get likes back scores 0.

    Parameters
    ----------
    n : int
        Number of members; member numbers are ``0..n-1``.
    inter_src, inter_dst : int32 arrays, shape (m,)
        Interaction rows: ``inter_src[e]`` acted on content authored by ``inter_dst[e]``.
    min_mutual : int, default 3
        Interactions needed in *each* direction for a pair to count as reciprocal.

    Returns
    -------
    float64 array, shape (n,)
        Per author, in ``[0, 1]``; 0 for authors who received no interactions.
        Self-interactions (which the projection removes anyway) never count as a ring.

    Raises
    ------
    ValueError
        If the columns differ in length, hold member numbers outside ``0..n-1``, or
        ``min_mutual < 1``.

    Notes
    -----
    Each interaction is packed into one int64 key per *unordered* pair,
    ``min(actor, author) * n + max(actor, author)``; one :func:`numpy.unique` groups the
    pairs, and two bincounts give the interactions in each direction. O(m log m).
    """
    if min_mutual < 1:
        raise ValueError(f"min_mutual must be >= 1, got {min_mutual}")
    src = np.asarray(inter_src, dtype=np.int64)
    dst = np.asarray(inter_dst, dtype=np.int64)
    _check_same_length(inter_src=src, inter_dst=dst)
    _check_members(n, inter_src=src, inter_dst=dst)
    received = np.bincount(dst, minlength=n).astype(np.float64)
    if src.size == 0:
        return received  # all zeros

    # one key per unordered pair {a, b}; the direction says who acted
    low, high = np.minimum(src, dst), np.maximum(src, dst)
    pairs, row_pair = np.unique(low * n + high, return_inverse=True)
    row_pair = row_pair.reshape(-1)  # numpy 2.0-2.1 returned the input's shape; keep it flat
    upward = np.bincount(row_pair, weights=(src < dst).astype(np.float64), minlength=len(pairs))
    downward = np.bincount(row_pair, minlength=len(pairs)) - upward
    mutual = (upward >= min_mutual) & (downward >= min_mutual) & (pairs % n != pairs // n)

    from_ring = np.bincount(dst, weights=mutual[row_pair].astype(np.float64), minlength=n).astype(np.float64)
    return _share(from_ring, received)


def young_burst_share(
    n: int,
    inter_src: I32,
    inter_dst: I32,
    inter_at: I64,
    joined_at: I64,
    *,
    young_days: float = 7.0,
    window_us: int = 3_600_000_000,
    burst_min: int = 10,
) -> F64:
    """Share of each author's received interactions that are bursts from brand-new accounts.

    In plain words: of all the interactions a member's content received, the fraction that
    (a) came from accounts younger than ``young_days`` when they acted, and (b) arrived in a
    burst -- within some window of ``window_us`` (default one hour) in which the author
    received at least ``burst_min`` (default 10) interactions from such young accounts.
    Scripted or bought engagement typically looks like this; a slow trickle of likes from
    new members, or a burst from established members, does not count.

    Parameters
    ----------
    n : int
        Number of members; member numbers are ``0..n-1``.
    inter_src, inter_dst : int32 arrays, shape (m,)
        Interaction rows: ``inter_src[e]`` acted on content authored by ``inter_dst[e]``.
    inter_at : int64 array, shape (m,)
        Interaction time, microseconds since the epoch.
    joined_at : int64 array, shape (n,)
        Join time of each member, microseconds since the epoch.
    young_days : float, default 7.0
        An account is *young* at an interaction if ``inter_at - joined_at[actor]`` is less
        than this many days.
    window_us : int, default 3_600_000_000 (one hour)
        Burst window length in microseconds; windows are half-open, ``[t, t + window_us)``.
    burst_min : int, default 10
        Young-account interactions an author must receive within one window for them to
        form a burst.

    Returns
    -------
    float64 array, shape (n,)
        Per author, in ``[0, 1]``; 0 for authors who received no interactions.

    Raises
    ------
    ValueError
        On mismatched lengths, member numbers outside ``0..n-1``, ``young_days < 0``,
        ``window_us <= 0`` or ``burst_min < 1``.

    Notes
    -----
    Young interactions are sorted by (author, time). For each one, a binary search finds how
    many of the same author's young interactions fall in ``[t, t + window_us)``; every
    window holding at least ``burst_min`` marks its interactions as burst (a difference
    array and a cumulative sum take the union). Any window with ``burst_min`` interactions
    can be slid right to start at its first interaction, so checking windows that start at
    an interaction finds every burst. To search within one author at a time, times are
    replaced by their dense rank and packed with the author into one int64 key.
    O(m log m).
    """
    if young_days < 0:
        raise ValueError(f"young_days must be >= 0, got {young_days}")
    if window_us <= 0:
        raise ValueError(f"window_us must be > 0, got {window_us}")
    if burst_min < 1:
        raise ValueError(f"burst_min must be >= 1, got {burst_min}")
    src = np.asarray(inter_src, dtype=np.int64)
    dst = np.asarray(inter_dst, dtype=np.int64)
    at = np.asarray(inter_at, dtype=np.int64)
    joined = np.asarray(joined_at, dtype=np.int64)
    _check_same_length(inter_src=src, inter_dst=dst, inter_at=at)
    _check_members(n, inter_src=src, inter_dst=dst)
    if joined.shape != (n,):
        raise ValueError(f"joined_at must have shape ({n},), got {joined.shape}")
    received = np.bincount(dst, minlength=n).astype(np.float64)

    young = (at - joined[src]) < young_days * _US_PER_DAY
    y_dst, y_at = dst[young], at[young]
    m = y_dst.size
    if m < burst_min:
        return np.zeros(n, dtype=np.float64)

    order = np.lexsort((y_at, y_dst))
    y_dst, y_at = y_dst[order], y_at[order]
    times, rank = np.unique(np.concatenate([y_at, y_at + window_us]), return_inverse=True)
    rank = rank.reshape(-1)  # numpy 2.0-2.1 returned the input's shape; keep it flat
    stride = np.int64(len(times))
    key = y_dst * stride + rank[:m]  # sorted: by author, then time
    window_end = np.searchsorted(key, y_dst * stride + rank[m:], side="left")
    starts = np.arange(m)
    opens = starts[(window_end - starts) >= burst_min]
    closes = window_end[(window_end - starts) >= burst_min]
    depth = np.cumsum(
        np.bincount(opens, minlength=m + 1) - np.bincount(closes, minlength=m + 1)
    )[:m]
    in_burst = (depth > 0).astype(np.float64)

    from_burst = np.bincount(y_dst, weights=in_burst, minlength=n).astype(np.float64)
    return _share(from_burst, received)


def suspicion(ring_share: F64, burst_share: F64) -> F64:
    """Combined fake-engagement suspicion per member, in ``[0, 1]``.

    ``1 - (1 - ring_share) * (1 - burst_share)``: the probability that an interaction is
    suspicious if the two signals were independent chances. In plain words: 0 means none
    of the member's received engagement looks manufactured; 1 means all of it does; it is
    never lower than either signal alone, and two moderate signals add up to more than
    either (0.5 and 0.5 give 0.75).

    Parameters
    ----------
    ring_share : float64 array, shape (n,)
        From :func:`reciprocal_ring_share`.
    burst_share : float64 array, shape (n,)
        From :func:`young_burst_share`.

    Returns
    -------
    float64 array, shape (n,)

    Raises
    ------
    ValueError
        If the shapes differ or a value lies outside ``[0, 1]`` (or is NaN).
    """
    a = np.asarray(ring_share, dtype=np.float64)
    b = np.asarray(burst_share, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ring_share and burst_share differ in shape: {a.shape} vs {b.shape}")
    for name, values in (("ring_share", a), ("burst_share", b)):
        if not np.all((values >= 0.0) & (values <= 1.0)):
            raise ValueError(f"{name} must lie in [0, 1]")
    return 1.0 - (1.0 - a) * (1.0 - b)
