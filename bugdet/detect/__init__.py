"""The train stage: the bug detector — model, training modes, calibration and evaluation."""
