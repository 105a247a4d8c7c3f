"""Warmstart web app: page config, sidebar and navigation (each step is a thin page in pages/)."""

import streamlit as st

from ui import sidebar, state

st.set_page_config(page_title="Warmstart", page_icon=":material/local_fire_department:", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/photo_library:"),
    st.Page("pages/backbone.py", title="Backbone", icon=":material/hub:"),
    st.Page("pages/settings.py", title="Settings", icon=":material/tune:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/evaluate.py", title="Evaluate", icon=":material/analytics:"),
    st.Page("pages/predict.py", title="Predict", icon=":material/image_search:"),
    st.Page("pages/export.py", title="Export", icon=":material/download:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
]

page = st.navigation(PAGES)
state.dataset()  # restores the dataset named in the URL after a refresh
state.keep_dataset_in_url()
sidebar.render()
page.run()
