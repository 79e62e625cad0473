//! Helpers on a model's input.

use crate::{AttributionInput, Measured, PlacementEnergy};

/// Each VM's first placement assigned to this model, by VM index.
pub struct FirstPlacements(Vec<Option<u32>>);

impl FirstPlacements {
    /// The first assigned placement of VM `vm`, if it has one.
    pub fn of(&self, vm: usize) -> Option<u32> {
        self.0.get(vm).copied().flatten()
    }
}

impl AttributionInput {
    /// The results of the declared measurement `name`, or an error naming it
    /// when the host sent none (a bug: the host measures everything declared).
    pub fn measured(&self, name: &str) -> Result<&Measured, String> {
        self.measurements
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| format!("the host sent no results for measurement `{name}`"))
    }

    /// Each VM's first placement that this model attributes.
    pub fn first_placements(&self) -> FirstPlacements {
        let mut first = vec![None; self.vms.len()];
        for (i, p) in self.placements.iter().enumerate() {
            if let Some(slot) = first.get_mut(p.vm as usize)
                && slot.is_none()
                && p.assigned
            {
                *slot = u32::try_from(i).ok();
            }
        }
        FirstPlacements(first)
    }

    /// The energy of the VM-keyed measurement `name` times `factor`, per
    /// assigned placement: the part of its VM's reading measured on the
    /// placement's host (`docs/ENERGY.md#live-migration`), so a VM that moved
    /// gets its energy on each host; placements without a reading get no
    /// entry (a VM without one gets no record, never 0).
    pub fn per_vm_energy(&self, name: &str, factor: f64) -> Result<Vec<PlacementEnergy>, String> {
        let measured = self.per_placement(name)?;
        Ok(self
            .placements
            .iter()
            .zip(&measured.placements)
            .enumerate()
            .filter_map(|(i, (p, reading))| {
                Some(PlacementEnergy {
                    placement: u32::try_from(i).ok().filter(|_| p.assigned)?,
                    joules: reading.as_ref()?.value * factor,
                    gpu_joules: 0.0,
                })
            })
            .collect())
    }

    /// The results of the VM-keyed measurement `name`, checked to hold one
    /// reading per placement (`Measured::placements`), or an error saying
    /// what the host sent instead.
    pub fn per_placement(&self, name: &str) -> Result<&Measured, String> {
        let measured = self.measured(name)?;
        if measured.placements.len() != self.placements.len() {
            return Err(format!(
                "measurement `{name}` has {} placement entries for {} placements (is it keyed \
                 by host?)",
                measured.placements.len(),
                self.placements.len()
            ));
        }
        Ok(measured)
    }
}
