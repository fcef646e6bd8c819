"""etbert: encrypted traffic classification from captures to honest evaluation.

Pipeline stages, one package each:
capture (files -> frames) -> packets (frames -> decoded headers) -> flows (packets -> flow records)
-> dataset (anonymise, label, split, write Parquet) -> models -> evaluation -> report/predict.
"""

__version__ = "0.1.0"
