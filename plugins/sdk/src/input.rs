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

    /// Each VM's reading of the per-VM measurement `name` times `factor`, as
    /// the energy of its first assigned placement; VMs without a reading get
    /// no entry (so no record, never 0).
    pub fn per_vm_energy(&self, name: &str, factor: f64) -> Result<Vec<PlacementEnergy>, String> {
        let measured = self.measured(name)?;
        if measured.vms.len() != self.vms.len() {
            return Err(format!(
                "measurement `{name}` has {} VM entries for {} VMs",
                measured.vms.len(),
                self.vms.len()
            ));
        }
        let first = self.first_placements();
        Ok(measured
            .vms
            .iter()
            .enumerate()
            .filter_map(|(vm, reading)| {
                Some(PlacementEnergy {
                    placement: first.of(vm)?,
                    joules: reading.as_ref()?.value * factor,
                })
            })
            .collect())
    }
}
