"""Corpora, tokenizers and batching: one module per `data=` option."""
