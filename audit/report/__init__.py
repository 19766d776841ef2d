"""Presenting a comparison: plain text, markdown, JSON and a self-contained HTML page.

Only these modules format; they take a :class:`audit.compare.model.Comparison` and return
text (the CLI prints or writes it).
"""
