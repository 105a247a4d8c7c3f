"""Small cached previews of image files for grids and galleries."""

from __future__ import annotations

import streamlit as st
from PIL import Image, ImageOps

from transfer_core import WarmstartError, open_rgb


@st.cache_data(show_spinner=False, max_entries=3000)
def thumbnail(path: str, size: int = 180) -> Image.Image | None:
    """An upright RGB preview at most ``size`` pixels wide and high, or None if unreadable."""
    try:
        image = open_rgb(path)
    except WarmstartError:
        return None
    image.thumbnail((size, size))
    return image


@st.cache_data(show_spinner=False, max_entries=3000)
def square_thumbnail(path: str, size: int = 180) -> Image.Image | None:
    """A ``size`` x ``size`` centre crop of an upright preview (for grids whose rows should line up), or None if unreadable."""
    try:
        image = open_rgb(path)
    except WarmstartError:
        return None
    return ImageOps.fit(image, (size, size))
