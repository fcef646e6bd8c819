"""Dataset preparation: anonymise, label, deduplicate, split and write flows as Parquet + manifest."""
