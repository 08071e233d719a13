"""Models and how they are chosen: specs, preprocessing, cross-validation, tuning, metrics, selection, the gate."""
