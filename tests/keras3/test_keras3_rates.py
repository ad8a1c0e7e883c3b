"""The rate rules of lth_keras.rates, for any set of layers (property tests; no training)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from lth_keras.rates import assign_rates

NAMES = [f"l{i}" for i in range(6)]
rates = st.floats(min_value=0.0, max_value=0.99, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(
    prunable=st.lists(st.sampled_from(NAMES), unique=True),
    data=st.data(),
    pruning_rate=rates,
    output_rate=st.none() | rates,
    conv_rate=st.none() | rates,
)
def test_each_prunable_layer_not_excluded_gets_the_rate_of_the_first_rule_that_names_it(
    prunable, data, pruning_rate, output_rate, conv_rate
):
    subset = st.sets(st.sampled_from(prunable)) if prunable else st.just(set())
    outputs, convs, excluded = data.draw(subset), data.draw(subset), data.draw(subset)
    given_rates = data.draw(st.dictionaries(st.sampled_from(prunable), rates) if prunable else st.just({}))
    got = assign_rates(
        {name: "Dense" for name in NAMES},
        prunable,
        outputs,
        convs,
        pruning_rate,
        output_rate,
        conv_rate,
        given_rates,
        sorted(excluded),
    )
    assert list(got) == [name for name in prunable if name not in excluded]
    for name, rate in got.items():
        if name in given_rates:
            assert rate == given_rates[name]
        elif name in outputs:
            assert rate == (pruning_rate / 2 if output_rate is None else output_rate)
        elif name in convs:
            assert rate == (pruning_rate if conv_rate is None else conv_rate)
        else:
            assert rate == pruning_rate
