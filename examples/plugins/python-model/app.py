"""A wattson attribution model in Python (componentize-py), against
wattson:plugin@0.2.0: each VM's placement gets the C1 increase of its own
energy counter, times 2 when the `mode` choice says `double`.

componentize-py (0.25) generates the `wit_world` package from the WIT; the
exported world is implemented by a class named `WitWorld` in this module.

Mode `sleep` sleeps an hour first: the host's clocks do not move and their
waits return at once, so the call still ends within its time limit.
"""
import time
from typing import List

import wit_world
from wit_world.imports import host, model, types
from componentize_py_types import Err

ENERGY = "energy"


class WitWorld(wit_world.WitWorld):
    def describe(self) -> model.ModelInfo:
        counter = types.CounterSpec(
            name=ENERGY,
            selector="${metric}",
            key_label="uuid",
            key=types.KeyKind.UUID,
            unit=types.Unit.JOULES,
            wrap_range=None,
        )
        metric = types.ParamSpec(
            name="metric",
            description="Per-VM energy counter (joules)",
            kind=types.ParamKind_Text(),
            default=types.ParamValue_Text(
                "libvirt_domain_info_energy_consumption_joules_total"
            ),
        )
        mode = types.ParamSpec(
            name="mode",
            description="exact: the counter's increase; double: twice that; "
            "sleep: sleep an hour, then exact",
            kind=types.ParamKind_Choice(
                types.ChoiceSpec(values=["exact", "double", "sleep"], or_number=None)
            ),
            default=types.ParamValue_Choice("exact"),
        )
        return model.ModelInfo(
            name="py-counter",
            version="0.2.0",
            description="Each VM's own energy counter (Python guest)",
            measurements=[types.Measurement_Counter(counter)],
            params=[metric, mode],
            conservation=None,
            quality=types.Quality.MEASURED,
        )

    def attribute(
        self, input: model.AttributionInput, params: List[types.Param]
    ) -> model.Attribution:
        # `result<attribution, string>`: return the ok value, raise Err(str) for the error.
        measured = next((m for m in input.measurements if m.name == ENERGY), None)
        if measured is None:
            raise Err(f"no '{ENERGY}' measurement in the input")
        mode = next(p.value.value for p in params if p.name == "mode")
        factor = 2.0 if mode == "double" else 1.0
        if mode == "sleep":
            time.sleep(3600)
        first = {}
        for i, p in enumerate(input.placements):
            if p.assigned and p.vm not in first:
                first[p.vm] = i
        placements = [
            model.PlacementEnergy(placement=first[vm], joules=reading.value * factor)
            for vm, reading in enumerate(measured.vms)
            if reading is not None and vm in first
        ]
        host.log(types.Level.DEBUG, f"attributed {len(placements)} of {len(input.vms)} VMs")
        return model.Attribution(placements=placements, unattributed=[])
