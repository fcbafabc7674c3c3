"""Progress bars that print their final state once.

tqdm prints a bar again when it closes. On a terminal the two overwrite each other, but a log (CI, a piped
run) keeps both, so an update that reaches the total showed `100%` twice; [`advance`] leaves that last print
to `close`.
"""

from __future__ import annotations

from tqdm.auto import tqdm

__all__ = ["advance"]


def advance(bar: tqdm, n: int) -> None:
    """`bar.update(n)`, except that the update which completes the bar only counts (its `close` prints it)."""
    if bar.total is not None and bar.n + n >= bar.total:
        bar.n += n
    else:
        bar.update(n)
