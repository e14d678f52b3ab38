"""The telemedicine dashboard: a static single page (HTML, CSS, plain ES modules) that the cloud API serves.

No build step, no CDN, no external fonts: the files under :data:`STATIC_DIR` are served as they are
(``GET /`` → ``index.html``, ``GET /static/<name>`` → the file) and work offline. The page talks only
to the HTTP API (``docs``: the contract in the API module) and its Server-Sent Events feed.

- ``index.html``: the page skeleton (login form, ward table, alert lists, alert detail);
- ``api.js``: the one HTTP helper (JSON over same-origin fetches, ``ApiError``) both pages import;
- ``app.js``: login, ward overview, live alerts over ``EventSource('/api/events')``, acknowledge;
- ``strip.js``: the 12-lead ECG strip renderer (3×4 + lead II rhythm strip, 25 mm/s, 10 mm/mV);
- ``style.css``: layout and the IEC 60601-1-8 alarm colours;
- ``admin.html``, ``admin.js``, ``admin.css``: the admin page (users, patients, devices; admin role only).
"""

from __future__ import annotations

from pathlib import Path

STATIC_DIR: Path = Path(__file__).resolve().parent / "static"
"""Folder holding the dashboard's static files (``index.html`` and its assets)."""

INDEX_HTML: Path = STATIC_DIR / "index.html"
"""The page served at ``GET /``."""

__all__ = ["INDEX_HTML", "STATIC_DIR"]
