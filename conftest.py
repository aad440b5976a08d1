"""Doctest namespace for ``pytest --doctest-modules dpplan`` (like Opacus' conftest)."""

import pytest


@pytest.fixture(autouse=True)
def _dpplan_doctest_namespace(doctest_namespace):
    import dpplan

    doctest_namespace.update(
        dpplan=dpplan,
        TrainingPlan=dpplan.TrainingPlan,
        epsilon=dpplan.epsilon,
        epsilon_curve=dpplan.epsilon_curve,
    )
