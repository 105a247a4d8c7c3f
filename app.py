"""Warmstart web app: page config, sidebar and navigation (each step is a thin page in app_pages/).

The page files live in ``app_pages/``, not ``pages/``: Streamlit lists a ``pages/`` folder on its
own before ``st.navigation`` runs, which showed a second, raw page list on a cold server's first load.
"""

import streamlit as st

from ui import auth, sidebar, state

st.set_page_config(page_title="Warmstart", page_icon=":material/local_fire_department:", layout="wide")

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/data.py", title="Data", icon=":material/photo_library:"),
    st.Page("app_pages/backbone.py", title="Backbone", icon=":material/hub:"),
    st.Page("app_pages/settings.py", title="Settings", icon=":material/tune:"),
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("app_pages/predict.py", title="Predict", icon=":material/image_search:"),
    st.Page("app_pages/export.py", title="Export", icon=":material/download:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
]

auth.gate()  # classroom mode: nothing renders before sign-in (single-user server: does nothing)
page = st.navigation(PAGES)
state.sync_recipe()  # the open project (from the URL after a refresh) and any recipe another tab saved
state.keep_project_in_url()
sidebar.render()
page.run()
