"""Progress of a running step, published to whoever listens: the CLI's progress bar, Prefect's artifact."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    label: str
    done: int
    total: int
    changed: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0


_listeners: list[Callable[[ProgressEvent], None]] = []


def subscribe(listener: Callable[[ProgressEvent], None]) -> Callable[[], None]:
    """Call `listener` with every event of this process; returns the function that stops it."""
    _listeners.append(listener)
    return lambda: _listeners.remove(listener)


def publish(event: ProgressEvent) -> None:
    for listener in list(_listeners):
        listener(event)
