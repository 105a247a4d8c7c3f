"""Small cached previews of image files for grids and galleries."""

from __future__ import annotations

import streamlit as st
from PIL import Image, ImageOps

from transfer_core import WarmstartError, open_rgb


def _open(path: str) -> Image.Image | None:
    try:
        return open_rgb(path)
    except WarmstartError:
        return None


@st.cache_data(show_spinner=False, max_entries=3000)
def thumbnail(path: str, size: int = 180) -> Image.Image | None:
    """An upright RGB preview at most ``size`` pixels wide and high, or None if unreadable."""
    image = _open(path)
    if image is not None:
        image.thumbnail((size, size))
    return image


@st.cache_data(show_spinner=False, max_entries=3000)
def square_thumbnail(path: str, size: int = 180) -> Image.Image | None:
    """A ``size`` x ``size`` centre crop of an upright preview (for grids whose rows should line up), or None if unreadable."""
    image = _open(path)
    return None if image is None else ImageOps.fit(image, (size, size))
