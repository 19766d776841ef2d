"""``python -m audit``: the CLI (:mod:`audit.cli`).

A Ctrl-C that arrives while the CLI is still being imported ends the command with exit
130 and one line, like one that arrives later, rather than with a traceback.
"""

import sys

try:
    from audit.cli import main

    code = main()
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    code = 130
sys.exit(code)
