"""The annotation web app (``hvsa serve``): a person does what the simulated annotator does.

Layers, top down: :mod:`hvsa.web.server` (uvicorn, loopback or token) -> :mod:`hvsa.web.app`
(Starlette routes, request checks) -> :mod:`hvsa.web.project` (one session, a worker thread,
phases) -> :mod:`hvsa.web.drawing` and :mod:`hvsa.web.payloads` (pure: requests parsed into
typed values, drawings rasterised and priced with :mod:`hvsa.cost`). The page lives in
``static/`` (hand-written JavaScript and CSS, no build step, nothing fetched from elsewhere).
The core never imports this package.
"""

from hvsa.web.app import create_app
from hvsa.web.drawing import drawing_labels, mask_runs
from hvsa.web.payloads import Drawing, Limits, parse_annotation
from hvsa.web.project import Activity, Project, open_session
from hvsa.web.server import serve

__all__ = [
    "Activity",
    "Drawing",
    "Limits",
    "Project",
    "create_app",
    "drawing_labels",
    "mask_runs",
    "open_session",
    "parse_annotation",
    "serve",
]
