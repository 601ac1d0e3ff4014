"""HOD: rewrite short egocentric narrations into hand-object-dynamics narrations.

``clips + videos -> hand-object detections (100DOH fields) -> dynamics summary -> narrator ->
validated narrations``, sharded and resumable, plus an ego-style filter for web videos.
Entry points: ``egohod hod run|merge|features|style-train|style-apply`` (see :mod:`.cli`).
Library pieces: :mod:`.detectors`, :mod:`.dynamics`, :mod:`.narrators`, :mod:`.pipeline`,
:mod:`.runner`, :mod:`.style_filter`.
"""
