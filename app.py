"""Warmstart web app entry point: page config and navigation."""

import streamlit as st

from transfer_core import list_backbones

st.set_page_config(page_title="Warmstart", page_icon="🔥", layout="wide")


def home() -> None:
    st.title("Warmstart")
    st.write(
        "Guided transfer learning for images: bring a folder of labeled photos, start from a network "
        "pretrained on ImageNet, and get a good classifier in minutes on a laptop."
    )
    st.info(
        "The guided pages (Data, Backbone, Settings, Train, Evaluate) are being built. Until then, the "
        "same engine is available from the command line: `python -m transfer_core train DATA --out RUN_DIR`."
    )
    rows = [spec.to_dict() for spec in list_backbones()]
    st.subheader("Backbones on this machine")
    st.dataframe(rows, hide_index=True, use_container_width=True)


st.navigation([st.Page(home, title="Home", icon="🏠", default=True)]).run()
