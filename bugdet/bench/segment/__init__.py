"""``bugdet bench segment``: automatic-mode throughput (``speed``) and one-click prompt accuracy
against object-ID ground truth (``clicks``); ``command`` is the CLI."""
