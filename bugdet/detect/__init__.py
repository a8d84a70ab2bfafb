"""Stage 5: the bug detector — model, training modes, calibration and evaluation."""
