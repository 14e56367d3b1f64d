"""The monitor: one pass over a deployment's prediction log into a ``MonitorReport``.

Offline analysis (monitoring is neither the control plane, ``loopwise.server``, nor the data
plane, ``loopwise.serving``). A pass is two steps with the I/O on one side: ``load_inputs``
reads everything from the store into a ``MonitorInputs`` value (``load``), and
``compute_report`` turns that into the report and its alerts without touching the store
(``compute``); ``monitor`` (``run``) chains them and stores the alerts.
"""

from loopwise.monitoring.monitor.compute import compute_report
from loopwise.monitoring.monitor.load import MonitorInputs, load_inputs
from loopwise.monitoring.monitor.run import monitor

__all__ = ["MonitorInputs", "compute_report", "load_inputs", "monitor"]
