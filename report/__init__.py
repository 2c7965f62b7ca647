"""The report: reads a run folder, draws the figures, renders the site and the PDF.

Matplotlib draws off-screen here (the Agg backend), chosen before any report
module imports pyplot, so rendering works on a machine without a display.
"""

import matplotlib

matplotlib.use("Agg")
