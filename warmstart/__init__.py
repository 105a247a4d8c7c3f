"""The ``warmstart`` command: ``warmstart app`` starts the web app; every other sub-command is the engine's CLI.

Installed with ``pip install .`` (see pyproject.toml). The app's files (app.py, app_pages/, ui/ and
.streamlit/config.toml) are installed with this package under ``warmstart/app/``; in a source
checkout they are the repository root. This package never imports Streamlit: the app runs as
``python -m streamlit run .../app.py`` in a child process.
"""
