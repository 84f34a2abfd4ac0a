"""How a torchrun test worker ends once its results are on disk and every rank has passed the final barrier."""
from __future__ import annotations

import os
import sys


def exit_without_teardown() -> None:
    """Leave without tearing anything down: gloo's and DDP's C++ destructors at interpreter exit can abort a
    finished process ("terminate called without an active exception", seen once in CI after every check had
    run). Called after the final barrier, with the results written, so nothing is lost."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
