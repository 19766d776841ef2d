"""``explore``: hypothesis searches a probe's declared domains for the smallest input whose
result differs between settings (or between values of an invariance parameter).

Modules: :mod:`.workers` (persistent workers, one per setting), :mod:`.strategies` (domains
to hypothesis strategies, ``--param``), :mod:`.search` (the hypothesis loop and the trials it
ran), :mod:`.structure` (pure: trials to the boundary statement), :mod:`.render` (text, JSON).
Host side: hypothesis is imported here, never by a worker.
"""
