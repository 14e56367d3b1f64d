"""The monitoring report: a ``MonitorReport`` drawn as one standalone HTML page.

Offline analysis (monitoring is neither the control plane, ``loopwise.server``, nor the data
plane, ``loopwise.serving``): it reads a finished report and writes a file, nothing else.
``page`` lays out the sections (``render_report``, ``write_report``); ``charts`` and
``feature_charts`` build the Plotly specs; ``html`` holds the escaping, tables, formats and
stylesheet that every page (the autopilot's report too) is built from.
"""

from loopwise.monitoring.report.page import render_report, write_report

__all__ = ["render_report", "write_report"]
