"""A call that waits once entered: to stop a service's background task while its thread is
inside the call, as a shutdown can."""
import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest


class Held:
    """Wraps `call`; every call waits, once entered, until the task has been cancelled."""

    def __init__(self, call: Callable[..., Any]):
        self.call = call
        self.entered, self.gate = threading.Event(), threading.Event()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.entered.set()
        self.gate.wait(10)
        return self.call(*args, **kwargs)

    def cancel_inside(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Start the task `run()`, cancel it once its thread is inside the call, let the call
        go on 0.2 s later, and see the task end cancelled."""
        async def stop() -> None:
            task = asyncio.create_task(run())
            await asyncio.to_thread(self.entered.wait, 10)
            task.cancel()
            asyncio.get_running_loop().call_later(0.2, self.gate.set)
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(stop())
