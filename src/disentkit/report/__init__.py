"""Reports a researcher can cite: the paper's tables, figures and one self-contained HTML page.

``build_report(folder)`` reads every ``results.json`` under a folder (one run or a sweep) and
writes ``report.html``, ``report.md`` and ``results.csv`` (Dapueto et al. 2024, §4 tables).
"""

from disentkit.report.html import Report, build_report

__all__ = ["Report", "build_report"]
