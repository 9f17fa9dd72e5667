"""One module per import source whose rows need hand-written rules (``nyc311``, ``fuzhou12345``,
``jsonl``, ``teddycup``), and ``mapped`` for the sources a YAML mapping describes."""
