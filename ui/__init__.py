"""Streamlit-side helpers: session state, forms, charts, the training job manager.

``jobs`` and ``charts`` import no Streamlit, so they are testable as plain Python.
"""
