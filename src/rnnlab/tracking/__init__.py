"""MLflow setup, run metadata and artifacts. Used by entry scripts and callbacks."""
