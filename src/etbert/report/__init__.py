"""Reports over trained runs.

compare  the comparison rows (model, dataset, split type, anonymisation, AC/PR/RC/F1) and their rich table
plots    charts as PNG bytes (matplotlib, no pyplot)
html     the self-contained HTML page: build_report, write_report

Nothing is imported here, so `etbert compare` does not pay for matplotlib.
"""
