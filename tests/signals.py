"""Children that tests interrupt start with SIGINT as a terminal gives it.

A shell that starts a command in the background without job control (``cmd &`` in a
script, a CI runner's wrapper) makes SIGINT ignored, and an ignored signal stays ignored
across exec: the audited command would never see the tests' Ctrl-C.  Pass
``preexec_fn=sigint_as_in_a_terminal`` to Popen to test what a user's Ctrl-C does.
:func:`process_state` tells whether a child (or what it started) is still there.
"""

import signal
from typing import Optional


def sigint_as_in_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def process_state(pid: int) -> Optional[str]:
    """The state letter of ``pid`` in /proc (``"Z"`` for a zombie); None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
