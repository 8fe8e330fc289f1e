"""Named entities: the knowledge base, alias matching, NER models and entity linking."""
