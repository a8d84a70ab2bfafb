"""``bugdet bench quality``: the paper's low-label protocol (``protocol``), its HTML report
(``report``) and the command (``command``)."""
