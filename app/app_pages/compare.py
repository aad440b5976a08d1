"""Compare page: test accuracy against ε for stored runs, one line per schedule."""

import streamlit as st
from components import (
    accuracy_frame,
    accuracy_vs_epsilon_chart,
    best_at,
    grouped_accuracy,
    load_user_task,
    parse_numbers,
    plain,
    run_label,
    store,
    task_field,
)

import dpplan
from dpplan.errors import DpplanError
from dpplan.train.specs import DEFAULT_ONE_CYCLE_LRS, DEFAULT_PLATEAU_LRS

st.title("Compare")
st.caption(
    "One-cycle against plateau at equal ε: each line is a schedule and learning rate, "
    "the band is the range (lowest to highest) over seeds. Compare lines of the same plan; "
    "every run of a plan has the same ε after each epoch."
)

runs = [r for r in store().list_runs() if r.records]
if not runs:
    st.info(
        "No stored runs with records yet. Train some on the Train page or launch a "
        "comparison below."
    )
else:
    groups = sorted({r.group_id for r in runs if r.group_id})
    default = [r.id for r in runs if groups and r.group_id == groups[-1]] or [runs[0].id]
    chosen = st.multiselect(
        "Runs",
        [r.id for r in runs],
        default=default,
        format_func=lambda i: run_label(next(r for r in runs if r.id == i)),
        key="compare_runs",
    )
    selected = [r for r in runs if r.id in chosen]
    plans = {r.plan for r in selected}
    if len(plans) > 1:
        st.warning(
            "The selected runs use different plans, so their ε differ; compare "
            "accuracy at the same ε on the x-axis."
        )
    frame = accuracy_frame(selected)
    grouped = grouped_accuracy(frame)
    if not frame.empty and frame["test accuracy"].isna().all():
        # A task that is not a classification (a regression) has no accuracy.
        st.info(
            "The selected runs have no accuracy (their task is not a classification): "
            "test loss against ε, per epoch."
        )
        st.line_chart(frame.dropna(subset=["ε"]), x="ε", y="test loss", color="run")
    elif grouped.empty or grouped["epsilon"].isna().all():
        st.info("Select private runs with records to plot accuracy against ε.")
    else:
        st.altair_chart(
            accuracy_vs_epsilon_chart(grouped.dropna(subset=["epsilon"])), width="stretch"
        )
        st.markdown(
            "**Test accuracy at ε ≤ x**: mean over seeds, at the epoch with the best mean "
            "validation accuracy (the test set never selects)"
        )
        st.dataframe(best_at(grouped.dropna(subset=["epsilon"])), hide_index=True, width="stretch")
        tried = len({r.id for r in selected})
        st.caption(
            f"{tried} runs selected. Choosing a learning rate among runs touches the "
            "data too; that selection is not covered by the plan's ε."
        )

st.subheader("Launch a fair comparison")
plan = st.session_state.get("plan")
phased = st.session_state.get("phased_plan")
if phased is not None and len(phased.phases) == 1 and not phased.phase_steps:
    phased = None  # one phase, all its epochs: the sidebar plan itself
if phased is not None and plan is not None:
    st.caption(
        f"Every run trains the sidebar's phased plan ({len(phased.phases)} phases, "
        f"{phased.total_steps:,} steps), so the schedules are compared at its ε after each "
        "(possibly partial) epoch."
    )


def _with_dataset_size(chosen, size: int):
    """``chosen`` (a TrainingPlan or a PhasedPlan) over ``size`` training examples."""
    if isinstance(chosen, dpplan.PhasedPlan):
        return dpplan.PhasedPlan(
            phases=[phase.replace(dataset_size=size) for phase in chosen.phases],
            phase_steps=chosen.phase_steps,
        )
    return chosen.replace(dataset_size=size)


with st.form("compare_form"):
    task_text = task_field("cmp_task")
    one_cycle = st.text_input(
        "One-cycle peak learning rates",
        ", ".join(f"{lr:g}" for lr in DEFAULT_ONE_CYCLE_LRS),
        key="cmp_oc",
    )
    plateau = st.text_input(
        "Plateau starting learning rates",
        ", ".join(f"{lr:g}" for lr in DEFAULT_PLATEAU_LRS),
        key="cmp_plateau",
    )
    plateau_every = st.number_input(
        "Plateau: evaluate every N steps (0 = once per epoch)",
        value=0,
        step=1,
        format="%d",
        key="cmp_plateau_every",
        help="Every plateau run steps its schedule on the validation loss every N optimizer "
        "steps (patience counts these evaluations), so it can act within a short run; "
        "`dpplan compare --plateau-every N`.",
    )
    seeds = st.text_input("Seeds", "0, 1, 2", key="cmp_seeds")
    subset = st.number_input(
        "Use first N MNIST training examples (0 = all; not used with a task)",
        value=0,
        step=1000,
        format="%d",
        key="cmp_subset",
    )
    launch = st.form_submit_button("Launch the comparison", disabled=plan is None)
if launch and plan is not None:
    from dpplan.train.compare import grid_for, launch_comparison, planned_runs
    from dpplan.train.specs import RunOptions, training_set_size

    try:
        grids = {
            "one_cycle": grid_for("one_cycle", parse_numbers("one_cycle_lrs", one_cycle)),
            "plateau": grid_for("plateau", parse_numbers("plateau_lrs", plateau)),
        }
        seed_list = parse_numbers("seeds", seeds)
        # Loaded here, in the app's process, so a bad spec is refused in the form; the
        # background process imports it again by its MODULE:FUNCTION.
        task = load_user_task(task_text)
        options = RunOptions(subset=int(subset) or None)
        size = training_set_size(options) if task is None else task.dataset_size
        chosen = phased if phased is not None else plan
        trained = _with_dataset_size(chosen, size)
        pid, log, group = launch_comparison(
            trained,
            grids=grids,
            seeds=seed_list,
            options=options,
            task=None if task is None else task.spec,
            plateau_every=plateau_every or None,
        )
        if trained.dataset_size != plan.dataset_size:
            source = "MNIST" if task is None else f"Task {plain(task.name)}"
            st.info(
                f"{source} gives {size:,} training examples (the sidebar plan has "
                f"{plan.dataset_size:,}), so every run of the comparison trains "
                f"dataset_size={size:,}."
            )
        st.success(
            f"Comparison started in the background (process {pid}; log {log}), run group "
            f"{group}: each schedule's learning rates with seed {seed_list[0]}, then the rate "
            "with the best validation accuracy with the other seeds "
            f"({planned_runs(grids, seed_list)} runs, the same protocol as `dpplan compare`). "
            "Select the group's runs above as they finish."
        )
    except DpplanError as error:
        st.error(plain(error))
