"""Release history: bisect released versions, the committed results/history, advise.

Host side.  ``releases`` lists versions, ``search`` is the pure bisect, ``changes`` turns
run files into changes, ``archive`` reads the committed history, ``advise`` answers from it,
``plan`` says what the history audits, ``render`` and ``document`` write it for people.
"""
