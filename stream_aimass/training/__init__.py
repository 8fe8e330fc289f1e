"""Fine-tuning support: labelled CSV data, classification metrics and report plots."""
