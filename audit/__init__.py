"""determinism-audit: where seeded random streams and ops stop being reproducible.

Importing the package imports nothing heavy: the worker must run in environments that
hold only the libraries under test, and ``--help`` must be instant.
"""

__version__ = "0.1.0"
