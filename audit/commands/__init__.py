"""One module per CLI command (asv's layout): ``add_parser`` and ``execute``."""
