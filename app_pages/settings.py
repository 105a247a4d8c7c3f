"""Settings: a preset fills every control; then augmentation (with a live preview), regularization, optimization."""

import streamlit as st

from transfer_core import (
    PRESET_DESCRIPTIONS,
    PRESETS,
    AugmentConfig,
    TrainConfig,
    WarmstartError,
    augment_previews,
    find_lr,
    get_backbone,
    open_rgb,
)
from ui import busy, state
from ui.charts import lr_finder_figure
from ui.wording import OPTIMIZER_WORDS, SCHEDULE_WORDS

st.title("3 · Settings")
st.caption("Start from a preset, then adjust. Every control says what it changes in the result.")

columns = st.columns(len(PRESETS))
for column, name in zip(columns, PRESETS):
    with column:
        current = state.preset() == name
        st.button(name, key=f"preset_{name}", on_click=state.apply_preset, args=(name,),
                  type="primary" if current else "secondary", width="stretch")
        st.caption(PRESET_DESCRIPTIONS[name])
st.caption(f"Current recipe: **{state.preset() or 'custom'}**")


def control(kind, label: str, name: str, help: str, **kwargs):
    """One settings widget bound to setting ``name``."""
    return kind(label, key=state.widget_key(name), on_change=state.sync_widget, args=(name,), help=help, **kwargs)


st.subheader("Augmentation")
aug_left, aug_right = st.columns([2, 3])
with aug_left:
    control(st.slider, "Horizontal flip probability", "aug_hflip", "Mirrors images left-right; right for most photos, wrong for text or digits.", min_value=0.0, max_value=1.0, step=0.05)
    control(st.slider, "Vertical flip probability", "aug_vflip", "Flips upside down; only for images with no 'up', such as microscopy or satellite tiles.", min_value=0.0, max_value=1.0, step=0.05)
    control(st.slider, "Rotation (degrees)", "aug_rotation", "Random tilt up to this angle; teaches tolerance to camera angle.", min_value=0.0, max_value=45.0, step=1.0)
    control(st.slider, "Random crop: smallest area kept", "aug_crop_scale_min", "Below 1, trains on random zoomed crops; teaches the model to recognise parts and scales.", min_value=0.1, max_value=1.0, step=0.05)
    control(st.slider, "Colour jitter", "aug_color_jitter", "Random brightness, contrast and saturation; helps when lighting varies.", min_value=0.0, max_value=0.8, step=0.05)
    control(st.checkbox, "TrivialAugment", "aug_trivial_augment", "One random strong operation per image (posterize, shear, …); a good default for larger datasets.")
    control(st.slider, "Mixup α", "aug_mixup_alpha", "Blends pairs of images and their labels; smooths the model's confidence. 0 turns it off.", min_value=0.0, max_value=1.0, step=0.05)
    control(st.slider, "CutMix α", "aug_cutmix_alpha", "Pastes a patch of one image into another, mixing labels by area. 0 turns it off.", min_value=0.0, max_value=1.0, step=0.05)
    if state.settings()["strategy"] in ("frozen", "partial"):
        st.caption("With a frozen or partly frozen backbone and no augmentation, features are computed once and epochs take "
                   "milliseconds; augmentation means running the network on new views every epoch.")
    if state.settings()["strategy"] == "frozen":
        control(st.number_input, "Augmented views to cache (frozen backbone)", "augment_views",
                "0 makes new random views every epoch (most variety, one backbone pass per epoch). N computes N views per "
                "image once and cycles through them: N passes in all, less variety. Ignored with mixup or cutmix.",
                min_value=0, max_value=64, step=1)

values = state.settings()
augment = None
try:
    augment = AugmentConfig(**{k[4:]: v for k, v in values.items() if k.startswith("aug_")})
except WarmstartError as exc:
    st.error(str(exc))

with aug_right:
    st.markdown("**Preview: what the model sees in training**")
    indexes = state.dataset_indexes()
    if indexes is None:
        st.info("Load a dataset on the Data page to preview augmentation on your own images.")
    elif augment is not None:
        train = indexes[0]
        by_class = {}
        for record in train.records:
            by_class.setdefault(record.label, record.path)
        example = st.selectbox("Example image from class", list(by_class), key="preview_class")
        partner = next((p for c, p in by_class.items() if c != example), None)
        pre = get_backbone(values["backbone"]).preprocessing
        size = values["image_size"] or pre.input_size
        st.button("New random views", key="reshuffle", on_click=lambda: state.preview_seed.set(state.preview_seed.get() + 1))
        views = augment_previews(
            open_rgb(by_class[example]), augment, n=8, size=size, pre=pre,
            seed=state.preview_seed.get(), partner=open_rgb(partner) if partner else None,
        )
        grid = st.columns(4)
        for i, view in enumerate(views):
            grid[i % 4].image(view, width="stretch")

st.subheader("Regularization")
reg = st.columns(3)
with reg[0]:
    control(st.number_input, "Weight decay", "weight_decay", "Pulls weights toward zero; higher values fight overfitting.", min_value=0.0, max_value=1.0, step=0.005, format="%.4f")
    control(st.slider, "Dropout before the head", "dropout", "Randomly drops features while training; makes the classifier rely on many of them.", min_value=0.0, max_value=0.8, step=0.05)
with reg[1]:
    control(st.slider, "Label smoothing", "label_smoothing", "Trains toward 90 % instead of 100 % confidence (at 0.1); better-calibrated probabilities.", min_value=0.0, max_value=0.5, step=0.05)
    control(st.number_input, "L2-SP strength (λ)", "l2sp", "Pulls fine-tuned weights back toward the pretrained ones; protects what ImageNet taught when data is scarce.", min_value=0.0, max_value=1.0, step=0.001, format="%.4f")
    frozen = values["strategy"] == "frozen"
    st.checkbox("Average the weights (EMA)", key=state.ema_key(), on_change=state.sync_ema, disabled=frozen and not values["ema_decay"],
                help="Validates and keeps a moving average of recent steps' weights instead of the last step's, which is often "
                     "steadier; only when backbone layers train, since a frozen backbone trains one layer that settles on its own.")
with reg[2]:
    control(st.number_input, "Early stopping patience (epochs)", "early_stopping_patience", "Stops when validation loss has not improved for this many epochs; 0 never stops early.", min_value=0, max_value=50, step=1)
    control(st.selectbox, "Class imbalance", "balance", "Class weights or a balanced sampler give rare classes as much say as common ones.", options=["none", "class_weights", "sampler"])

st.subheader("Optimization")
opt = st.columns(3)
with opt[0]:
    control(st.selectbox, "Optimizer", "optimizer", "AdamW is a robust default; SGD with momentum can generalize slightly better with tuning.", options=["adamw", "adam", "sgd"], format_func=OPTIMIZER_WORDS.get)
    control(st.selectbox, "Learning-rate schedule", "schedule", "One-cycle warms up then anneals; cosine anneals smoothly; step drops it every few epochs.", options=["onecycle", "cosine", "step", "constant"], format_func=SCHEDULE_WORDS.get)
    if st.checkbox("Automatic learning rate", key=state.lr_auto_key(), on_change=state.sync_lr_auto,
                   help="1e-2 for a frozen backbone, 3e-3 when fine-tuning."):
        st.caption(f"Using {TrainConfig(strategy=values['strategy']).head_lr:g} for the head.")
    else:
        control(st.number_input, "Learning rate (head)", "lr", "Step size of the new layer; too high diverges, too low learns slowly.", min_value=1e-6, max_value=1.0, step=1e-4, format="%.5f")
    if st.button("Find a learning rate", key="lr_find", disabled=state.dataset() is None,
                 help="A short range test on your data: the loss as the rate grows. Seconds with a frozen backbone."):
        with busy.progress("Finding a learning rate") as on_progress:
            try:
                state.lr_finder_result.set(find_lr(state.config(), on_progress=on_progress))
            except WarmstartError as exc:
                state.lr_finder_result.set(str(exc))
with opt[1]:
    control(st.number_input, "Backbone LR factor", "backbone_lr_factor", "Backbone learning rate = head rate × this; small values keep pretrained features intact.", min_value=0.0, max_value=1.0, step=0.01, format="%.3f")
    control(st.number_input, "Gradient clipping (0 = off)", "grad_clip", "Caps the size of each update; stabilises full fine-tuning.", min_value=0.0, max_value=100.0, step=0.5)
    control(st.selectbox, "Where augmentation runs", "batch_augment",
            "auto: whole batches on the GPU when there is one (thousands of images/s), per image on the CPU otherwise. "
            "TrivialAugment always runs per image.", options=["auto", "on", "off"],
            format_func=lambda v: {"auto": "auto", "on": "batched on the training device", "off": "per image on the CPU"}[v])
    control(st.number_input, "Head warm-up epochs", "head_warmup_epochs", "Trains the new layer alone first so its random start does not disturb pretrained layers.", min_value=0, max_value=50, step=1)
with opt[2]:
    control(st.number_input, "Epochs", "epochs", "Passes over the training images; more epochs learn more and risk overfitting.", min_value=1, max_value=200, step=1)
    control(st.number_input, "Batch size", "batch_size", "Images per update; larger is faster per image on a GPU and smoother, smaller uses less memory.", min_value=1, max_value=512, step=1)
    st.selectbox(
        "Image size", [0, 128, 160, 192, 224, 240, 260, 288, 320, 384], key=state.image_size_key(),
        format_func=lambda s: "backbone default" if s == 0 else f"{s} px", on_change=state.sync_image_size,
        help="Larger inputs keep detail but cost time quadratically; 'backbone default' matches its pretraining.",
    )

gpus = state.gpu_count()
if gpus > 1:
    st.number_input(
        "GPUs for this run", min_value=1, max_value=gpus, value=state.training_processes(), step=1, key="w_devices",
        on_change=state.keep_training_processes,
        help="Several GPUs train one model together (torchrun and DistributedDataParallel): each takes a slice of every "
             "batch, so the batch size above stays the total and the result does not depend on how many you use.",
    )

found = state.lr_finder_result.get()
if isinstance(found, str):
    st.error(found)
elif found is not None:
    chart, advice = st.columns([3, 2])
    chart.plotly_chart(lr_finder_figure(found.lrs, found.losses, found.suggestion), width="stretch", key="lr_chart")
    advice.markdown(f"**Suggested head learning rate: {found.suggestion:.1e}**")
    advice.caption("Where the loss falls fastest, before it bottoms out and climbs. "
                   f"Ran {'on cached features' if found.on_features else 'on real batches'} in {found.seconds:.0f} s.")
    advice.button(f"Use {found.suggestion:.2g}", key="lr_apply", type="primary", on_click=state.use_lr, args=(found.suggestion,))

try:
    state.config()
    state.mark_done("Settings")
except WarmstartError as exc:
    st.error(str(exc))
