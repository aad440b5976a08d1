"""Train page: queue DP-SGD runs of the current plan; watch them live; stop or resume."""

import streamlit as st
from components import (
    accuracy_frame,
    format_epsilon,
    load_user_task,
    phase_one_notice,
    plain,
    quality,
    run_label,
    start_worker,
    store,
    task_field,
)

import dpplan
from dpplan.errors import AccountingError, PlanError
from dpplan.run_policy import epoch_epsilon
from dpplan.train.specs import DEFAULT_THREADS

st.title("Train")
plan = st.session_state.get("plan")
phase_one_notice("trains")
if plan is None:
    st.info("Fix the highlighted field in the sidebar first.")
    st.stop()

st.caption(
    "Runs train in a background process and are kept in the run store, so they "
    "survive page reloads and closed browsers. Queue several; they run one at a time. "
    "MNIST by default; name your own task (MODULE:FUNCTION) to train your model on your "
    "data: the fields marked MNIST are then not used."
)

with st.form("train_form"):
    task_text = task_field("train_task")
    cols = st.columns(3)
    model = cols[0].selectbox(
        "Model (MNIST)",
        ["seed", "tempered"],
        key="train_model",
        help="seed: the super-convergence study's CNN; tempered: Papernot et al.'s CNN",
    )
    activation = cols[1].selectbox("Activation (MNIST)", ["relu", "tanh"], key="train_activation")
    schedule_kind = cols[2].selectbox(
        "Schedule",
        ["one_cycle", "plateau", "constant"],
        key="train_schedule",
        format_func={
            "one_cycle": "one-cycle (super-convergence)",
            "plateau": "reduce on plateau (×0.1)",
            "constant": "constant",
        }.get,
    )
    cols = st.columns(3)
    lr = cols[0].number_input(
        "Learning rate (peak for one-cycle)", value=4.0, step=0.5, format="%.3f", key="train_lr"
    )
    seed = cols[1].number_input("Seed", value=0, step=1, format="%d", key="train_seed")
    device = cols[2].selectbox(
        "Device",
        ["auto", "cpu", "cuda"],
        key="train_device",
        help="auto: the GPU when there is one",
    )
    plateau_every = st.number_input(
        "Plateau: evaluate every N steps (0 = once per epoch)",
        value=0,
        step=1,
        format="%d",
        key="train_plateau_every",
        help="Plateau only: step the schedule on the validation loss every N optimizer steps "
        "(patience counts these evaluations), so it can act within a short run; "
        "`dpplan train --plateau-every N`.",
    )
    cols = st.columns(3)
    validation_size = cols[0].number_input(
        "MNIST validation examples", value=5000, step=500, format="%d", key="train_validation"
    )
    subset = cols[1].number_input(
        "MNIST training examples N (0 = all left after validation)",
        value=0,
        step=1000,
        format="%d",
        key="train_subset",
    )
    target = cols[2].number_input(
        "Stop before ε exceeds (0 = never)", value=0.0, step=0.5, key="train_target"
    )
    cols = st.columns(3)
    private = cols[0].checkbox(
        "Private (DP-SGD)",
        value=True,
        key="train_private",
        help="Unchecked: the non-private baseline, no clipping or noise, ε = ∞",
    )
    engine = cols[1].selectbox(
        "Engine",
        ["fused", "opacus"],
        key="train_engine",
        help="How each DP-SGD step is computed; the mechanism and ε are the same. fused: "
        "per-example gradients with torch.func (compiled on a GPU); opacus: Opacus' hooks.",
    )
    threads = cols[2].number_input(
        "CPU threads",
        value=DEFAULT_THREADS,
        min_value=1,
        step=1,
        format="%d",
        key="train_threads",
        help="torch threads of the run: one is fastest on a machine shared with other "
        "work (BENCHMARKS.md). Speed only, never ε.",
    )
    submitted = st.form_submit_button("Queue run", type="primary")

if submitted:
    from dpplan.train.runs import queue_run
    from dpplan.train.specs import Constant, OneCycle, Plateau, RunOptions, training_set_size

    try:
        task = load_user_task(task_text)
        options = RunOptions(
            model=model,
            activation=activation,
            device=device,
            seed=int(seed),
            validation_size=int(validation_size),
            subset=int(subset) or None,
            target_epsilon=float(target) or None,
            private=private,
            engine=engine,
            threads=int(threads),
        )
        if plateau_every and schedule_kind != "plateau":
            raise PlanError(
                "plateau_every",
                int(plateau_every),
                "0 unless the schedule is plateau",
                "Only the plateau schedule is stepped on the validation loss.",
            )
        schedule = {
            "one_cycle": lambda: OneCycle(max_lr=lr),
            "plateau": lambda: Plateau(lr=lr, evaluate_every=int(plateau_every) or None),
            "constant": lambda: Constant(lr=lr),
        }[schedule_kind]()
        # The data decide dataset_size: the sidebar plan's is replaced by the training set
        # size (MNIST's, or the task's), and the note below says so with the ε it gives.
        size = training_set_size(options) if task is None else task.dataset_size
        trained = plan.replace(dataset_size=size)
        run_store = store()
        run_id = queue_run(trained, schedule, options, store=run_store, task=task)
        start_worker(run_store)
        st.session_state["train_last"] = run_id
        if trained != plan:
            headline = dpplan.compare(trained)  # the smallest bound, as on every page
            source = "MNIST" if task is None else f"Task {plain(task.name)}"
            st.info(
                f"{source} gives {trained.dataset_size:,} training examples (the sidebar "
                f"plan has {plan.dataset_size:,}), so run #{run_id} trains "
                f"dataset_size={trained.dataset_size:,} "
                f"(ε = {format_epsilon(headline.headline_epsilon)}, "
                f"{headline.headline_method.upper()})."
            )
        st.success(
            f"Queued run #{run_id}"
            + ("." if task is None else f" of task {plain(task.name)} ({plain(task.spec)}).")
        )
    except (PlanError, AccountingError) as error:
        st.error(str(error))


@st.fragment(run_every="2s")
def live_runs() -> None:
    """Progress of queued and running runs, refreshed every two seconds."""
    runs = store().list_runs()
    active = [r for r in runs if r.status in ("queued", "running")]
    st.subheader("Active runs")
    if not active:
        st.caption("No run is queued or running.")
    for run in active:
        cols = st.columns([5, 1])
        done = len(run.records)
        last = run.records[-1] if run.records else None
        text = run_label(run)
        if last is not None:
            text += (
                f" · ε = {format_epsilon(epoch_epsilon(last, run.method)[0])} "
                f"({epoch_epsilon(last, run.method)[1].upper()})"
                f" · {quality(last)}"
            )
        cols[0].progress(done / run.plan.epochs, text=text)
        if cols[1].button("Stop", key=f"stop_{run.id}"):
            store().request_stop(run.id)
    shown = active or [r for r in runs if r.records][:1]
    frame = accuracy_frame(shown)
    if not frame.empty:
        # A task that is not a classification has no accuracy: its test loss is drawn.
        measure = "test accuracy" if frame["test accuracy"].notna().any() else "test loss"
        st.markdown(f"**{measure.capitalize()} against ε, per epoch**")
        st.line_chart(frame.dropna(subset=["ε"]), x="ε", y=measure, color="run")
    stopped = [r for r in runs if r.status in ("interrupted", "stopped", "failed")]
    if stopped:
        st.subheader("Interrupted, stopped or failed runs")
        for run in stopped[:10]:
            cols = st.columns([5, 1])
            cols[0].write(run_label(run) + (f" · {run.error}" if run.error else ""))
            if cols[1].button("Resume", key=f"resume_{run.id}"):
                run_store = store()
                run_store.requeue(run.id)
                start_worker(run_store)


live_runs()
