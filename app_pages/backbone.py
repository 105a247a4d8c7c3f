"""Backbone: pick the pretrained network and how much of it to fine-tune."""

import time

import pandas as pd
import streamlit as st

from transfer_core import (
    AUTO_BACKBONE,
    WeightsSource,
    auto_candidates,
    backbone_shootout,
    get_backbone,
    list_backbones,
    rank,
    recommend,
    shootout_verdict,
)
from ui import busy, insight, state

STRATEGY_HELP = {
    "frozen": "Feature extraction: the backbone stays as ImageNet trained it and only a new final layer learns. Fastest; best with few images.",
    "partial": "Fine-tune the last blocks: the most task-specific layers adapt to your images, the generic early layers stay fixed.",
    "full": "Fine-tune everything at a lower learning rate: most flexible, slowest, and needs the most images to avoid overfitting.",
    "gradual": "Start with the new layer alone, then unfreeze one more block every few epochs, from the top down.",
}

st.title("2 · Backbone")
st.caption("A backbone is a network pretrained on ImageNet's 1.3 million photos; its features are the starting point.")

rows = []
for spec in list_backbones():
    if spec.source is WeightsSource.LOCAL:
        continue
    row = spec.to_dict()
    rows.append(
        {
            "backbone": row["name"],
            "parameters (M)": row["params_millions"],
            "ImageNet top-1 %": row["imagenet_top1"],
            "input size": row["input_size"],
            "availability": row["availability"],
            "source": row["source"],
            "about": row["description"],
        }
    )
table = pd.DataFrame(rows)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "ImageNet top-1 %": st.column_config.NumberColumn(format="%.1f"),
        "parameters (M)": st.column_config.NumberColumn(format="%.1f"),
        "about": st.column_config.TextColumn(width="large"),
    },
)
st.caption("'bundled' weights ship with Warmstart and work offline; 'cached' were downloaded before; 'needs download' requires an internet connection on first use.")

values = state.settings()
names = list(table["backbone"]) + ([values["backbone"]] if values["backbone"] not in set(table["backbone"]) else [])
left, right = st.columns(2)
with left:
    st.selectbox(
        "Backbone", [AUTO_BACKBONE, *names], key=state.backbone_key(), on_change=state.sync_backbone,
        format_func=lambda name: "auto: a shoot-out picks one when training starts" if name == AUTO_BACKBONE else name,
        help="Bigger backbones are usually more accurate and always slower. 'auto' compares the backbones on this "
             "machine on your training images when training starts and trains the winner.",
    )
    if state.auto_backbone():
        st.caption(f"Auto is on. Until a run chooses, previews, counts and the learning-rate finder use {values['backbone']}.")
    st.radio(
        "Strategy", list(STRATEGY_HELP), key=state.widget_key("strategy"), on_change=state.sync_widget, args=("strategy",),
        horizontal=True, help="How much of the pretrained network is allowed to change.",
    )
    strategy = state.settings()["strategy"]
    st.info(STRATEGY_HELP[strategy])
    if strategy == "partial":
        st.number_input("Blocks to fine-tune", 1, 20, key=state.widget_key("trainable_blocks"),
                        on_change=state.sync_widget, args=("trainable_blocks",),
                        help="More blocks adapt more of the network to your data, at the cost of speed and overfitting risk.")
    if strategy == "gradual":
        st.number_input("Epochs between unfreezing steps", 1, 10, key=state.widget_key("unfreeze_every"),
                        on_change=state.sync_widget, args=("unfreeze_every",),
                        help="Fewer epochs unfreeze the network sooner.")


with right:
    values = state.settings()
    indexes = state.dataset_indexes()
    n_classes = len(indexes[0].classes) if indexes else 2
    counts = insight.strategy_parameters(values["backbone"], values["strategy"], values["trainable_blocks"],
                                         values["unfreeze_every"], values["epochs"], n_classes)
    trainable = counts.last_epoch.trainable
    st.metric("Trainable parameters", f"{trainable:,}")
    st.metric("Frozen parameters", f"{counts.last_epoch.frozen:,}")
    st.caption(f"The backbone has {counts.groups} blocks. Its ImageNet classifier is replaced by a new layer for "
               f"your {n_classes} classes, which always trains.")
    if values["strategy"] == "gradual":
        st.caption(f"At the first epoch only {counts.first_epoch.trainable:,} parameters train; by the last epoch {trainable:,}.")
    availability = get_backbone(values["backbone"]).availability().value
    if availability == "needs download":
        st.warning("This backbone's weights are not on this machine; training will try to download them.")

st.subheader("Shoot-out on your data")
st.caption(
    "Fits a quick linear classifier on each bundled backbone's frozen features and measures it on your "
    "validation images, so you choose with evidence; LogME estimates the same from the training features alone. "
    "Features are cached: a frozen run afterwards starts at once."
)
candidates = auto_candidates()  # the backbones 'auto' chooses among: the same comparison
indexes = state.dataset_indexes(quiet=True)  # already reported above
if st.button("Run shoot-out", key="shootout", disabled=indexes is None, help="Needs a dataset (Data page)."):
    started = time.perf_counter()
    with busy.progress("Shoot-out") as on_progress:
        results = backbone_shootout(indexes[0], indexes[1], candidates, on_progress=on_progress)
    ranking = [{"backbone": r.backbone, "validation accuracy": r.val_accuracy, "LogME (estimate)": r.logme,
                "ms / image": float("nan") if r.seconds_per_image is None else round(r.seconds_per_image * 1000, 1),
                "seconds": round(r.seconds, 1), "note": r.error or ""} for r in rank(results)]  # best first, by the rule
    choice = recommend(results)
    state.shootout_result.set(state.dataset(), state.ShootoutOutcome(
        ranking, time.perf_counter() - started, choice.backbone if choice else None, choice.reason if choice else None))
outcome = state.shootout_result.get(state.dataset())
if outcome is not None:
    st.dataframe(
        pd.DataFrame(outcome.rows),
        hide_index=True,
        width="stretch",
        column_config={
            "validation accuracy": st.column_config.ProgressColumn(
                min_value=0.0, max_value=1.0, format="percent",
                help="Measured: a linear classifier on the frozen features, scored on your validation images."),
            "LogME (estimate)": st.column_config.NumberColumn(
                format="%.3f", help="An estimate, not an accuracy: how well the training features fit your labels "
                                    "(LogME, You et al. 2021). Higher is better; compare backbones, not datasets."),
            "ms / image": st.column_config.NumberColumn(
                help="Measured time per image through the frozen backbone on this machine: the fastest pass so far "
                     "(other work only slows a pass down), kept for when its features come from the cache."),
        },
    )
    n_val = len(indexes[1]) if indexes else 0
    st.caption(f"{len(outcome.rows)} backbones compared in {outcome.seconds:.0f} s on {n_val} validation images.")
    if verdict := shootout_verdict({row["backbone"]: row["validation accuracy"] for row in outcome.rows}, n_val):
        st.info(verdict)
    if outcome.recommended is not None:
        st.success(f"**Recommended:** {outcome.reason}", icon=":material/recommend:")
        st.caption("The rule: among the backbones within noise of the best validation accuracy, the fastest measured "
                   "per image; then the higher accuracy, then the higher LogME.")
        if outcome.recommended != values["backbone"] or state.auto_backbone():
            st.button(f"Use {outcome.recommended}", key="use_recommended", on_click=state.use_backbone,
                      args=(outcome.recommended,))

state.mark_done("Backbone")
