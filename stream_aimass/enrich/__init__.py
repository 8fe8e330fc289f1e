"""The enrich role: the document hot path (``service``), the model step (``enricher``) and
hot swap of classifiers (``reload``)."""
