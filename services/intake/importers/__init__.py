"""Import files of reports: read a source's file row by row into ``ReportIn`` or ``RowError`` rows.

- ``formats.py``: the format names, their default zones and ``iter_records``, the one entry
  point (it picks the source's reader).
- ``readers.py``: what every CSV format shares (header check, row loop, building a report).
- ``mapping.py``: the column-mapping language (YAML) that describes a CSV source declaratively.
- ``codes.py``: how a source's department and category names become gridcase codes.
- ``sources/``: one module per hand-written source (``nyc311``, ``fuzhou12345``, ``jsonl``,
  ``teddycup``) and ``mapped.py`` for the sources described by a mapping.
- ``mappings/<format>.yaml``: the built-in mappings (``sf311``, ``baltimore311``, ``boston311``,
  ``teddycup_messages``, ``teddycup_replies``), in the mapping language.
"""
