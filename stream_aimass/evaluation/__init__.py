"""Evaluations: classification and NER metrics, entity linking, recommendations, their plots."""
