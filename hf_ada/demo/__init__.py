"""The main job (``hf-ada demo``; its arguments live in :mod:`hf_ada.commands.demo`) and the demo's data
and models (a room of its own, outside the methods).

* :mod:`.runner` -- runs the stages, assembles ``report.md``;
* :mod:`.adan_stage`, :mod:`.adanns_stage`, :mod:`.adanpc_stage` -- one comparison each;
* :mod:`.digits` -- rotated sklearn digits and a small ResNet; :mod:`.pretrained` -- the pip-shipped MiniLM;
  :mod:`.plots` -- recall-vs-FLOPs tables and plots.

This room may import every method; no method imports it. ``benchmarks/`` reuse its data and models.
"""

from __future__ import annotations

__all__: list[str] = []
