"""Home: what Warmstart does, the journey as a checklist, and the two ways to begin."""

import streamlit as st

from transfer_core import WarmstartError, prepare_sample
from ui import state

st.title("Warmstart")
st.markdown(
    "Warmstart turns a folder of labeled photos into an image classifier by starting from a network "
    "that has already learned to see on ImageNet. "
    "It walks you through each choice (what to freeze, how to augment, how to regularize) and explains what each one does. "
    "You watch it train live, inspect its mistakes, and take the trained model away."
)

HINTS = {
    "Data": "choose a sample or upload labeled images",
    "Backbone": "pick the pretrained network and what to fine-tune",
    "Settings": "choose a preset, augmentation and regularization",
    "Train": "watch the curves while it learns",
    "Evaluate": "see which classes get confused and why",
}
st.subheader("Your progress")
for number, step in enumerate(state.STEPS, start=1):
    done = state.is_done(step)
    icon = ":green[:material/check_circle:]" if done else ":gray[:material/radio_button_unchecked:]"
    st.markdown(f"{icon} **{number}. {step}**: {HINTS[step]}" + (" · done" if done else ""))


def _start_with_sample() -> None:
    try:
        folder = prepare_sample("digits", state.workspace() / "samples")
    except WarmstartError as exc:
        state.home_error.set(str(exc))
        return
    state.set_dataset(state.DatasetChoice("Handwritten digits (sample)", str(folder)))
    state.apply_preset("Quick")
    state.mark_done("Backbone")
    state.pending_page.set("pages/train.py")  # st.switch_page cannot run inside a callback


left, right = st.columns(2)
left.button("Try a sample dataset", type="primary", on_click=_start_with_sample, width="stretch",
            help="Loads 300 handwritten digits and the Quick recipe; training takes well under a minute.")
if right.button("Upload my images", width="stretch"):
    st.switch_page("pages/data.py")
if error := state.home_error.take():
    st.error(error)
if target := state.pending_page.take():
    st.switch_page(target)
