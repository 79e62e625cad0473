//! `wattson report`: usage and energy over a period, per project, VM, host
//! or flavor (seed 004's os-metrics, i.e. nova's simple tenant usage, plus
//! energy, its share of the hosts' energy and carbon). Built from the very
//! records an extract over the period would deliver.

mod html;
mod output;

use std::collections::{BTreeMap, HashMap};

pub use output::{Format, write};

use crate::records::EnergyRecord;
use crate::runtime::Status;
use crate::sources::cloud::CloudInventory;
use crate::window::{Window, format_ms};

/// What rows a report has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// One row per project (id), labelled with its name.
    Project,
    /// One row per VM.
    Vm,
    /// One row per host.
    Host,
    /// One row per flavor.
    Flavor,
}

impl By {
    fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Vm => "vm",
            Self::Host => "host",
            Self::Flavor => "flavor",
        }
    }
}

/// One VM over the period (the part of it the VM lived).
#[derive(Clone, Debug, Default)]
pub struct VmUsage {
    /// VM uuid.
    pub instance_id: String,
    /// VM name.
    pub name: Option<String>,
    /// Project id.
    pub tenant_id: Option<String>,
    /// Project name.
    pub project_name: Option<String>,
    /// Host key (its last window's).
    pub host: Option<String>,
    /// Flavor.
    pub flavor: Option<String>,
    /// vCPUs (its last window's).
    pub vcpus: Option<u32>,
    /// Memory, MB (its last window's).
    pub memory_mb: Option<u64>,
    /// Disk, GB (GiB, as nova counts it; its largest in the period), where
    /// `[inventory] disk_metric` knows it.
    pub local_gb: Option<f64>,
    /// When the period first saw it, ms.
    pub started_ms: i64,
    /// When it stopped, ms, where it stopped inside the period.
    pub ended_ms: Option<i64>,
    /// `active` or `stopped`, as at the end of its last window.
    pub state: &'static str,
    /// Hours it lived in the period.
    pub hours: f64,
    /// vCPU-hours.
    pub vcpu_hours: f64,
    /// MB-hours.
    pub memory_mb_hours: f64,
    /// GB-hours of disk, where its size is known.
    pub local_gb_hours: Option<f64>,
    /// Its energy, joules.
    pub joules: f64,
    /// Its footprint, gCO2e, over the windows that had an intensity.
    pub carbon_g: Option<f64>,
    /// Its parts known only where every record has them.
    pub known: KnownParts,
    /// Whether any of its energy came from an estimate.
    pub estimated: bool,
    /// Its energy per UTC day, joules, keyed by the day's start (ms); see
    /// [`by_day`] for a window across midnight.
    pub daily_joules: BTreeMap<i64, f64>,
    /// The end of its last window, ms.
    last_end_ms: i64,
    /// Its flavor's disk, GB, where the cloud's API said.
    api_disk_gb: Option<f64>,
}

/// A sum known only when every part of it is: one unknown part leaves it
/// unknown (blank in a report, never 0).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AllOrNothing {
    sum: f64,
    parts: usize,
    unknown: bool,
}

impl AllOrNothing {
    /// Adds a part, None where it is not known.
    fn add(&mut self, part: Option<f64>) {
        match part {
            Some(value) => {
                self.sum += value;
                self.parts += 1;
            }
            None => self.unknown = true,
        }
    }

    /// The sum, where every part (and at least one) was known.
    pub fn get(&self) -> Option<f64> {
        (!self.unknown && self.parts > 0).then_some(self.sum)
    }
}

/// A VM's or a group's sums that are known only when every record's part
/// is: the operational footprint, embodied emissions and GPU energy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct KnownParts {
    /// gCO2e (the operational part of [`KnownParts::total_g`]).
    operational: AllOrNothing,
    /// Embodied gCO2e.
    embodied: AllOrNothing,
    /// GPU joules.
    gpu: AllOrNothing,
}

impl KnownParts {
    /// Adds another VM's parts.
    fn add(&mut self, other: &KnownParts) {
        self.operational.add(other.operational.get());
        self.embodied.add(other.embodied.get());
        self.gpu.add(other.gpu.get());
    }

    /// Embodied emissions, gCO2e, where every record has them.
    pub fn embodied_g(&self) -> Option<f64> {
        self.embodied.get()
    }

    /// GPU energy, kWh, where every record has `gpu_j`.
    pub fn gpu_kwh(&self) -> Option<f64> {
        self.gpu.get().map(|j| j / 3.6e6)
    }

    /// Operational plus embodied gCO2e, where every record has both.
    pub fn total_g(&self) -> Option<f64> {
        Some(self.operational.get()? + self.embodied_g()?)
    }
}

impl VmUsage {
    /// Energy, kWh.
    pub fn kwh(&self) -> f64 {
        self.joules / 3.6e6
    }

    fn add(&mut self, r: &EnergyRecord) {
        let hours = r.wall_s / 3600.0;
        let first = self.instance_id.is_empty();
        if first {
            self.instance_id = r.vm_uuid.clone();
            self.started_ms = match r.status {
                Status::Started => r.end_ms - (r.wall_s * 1000.0) as i64,
                _ => r.start_ms,
            };
        }
        // What the latest window knows wins; a name known once is kept.
        for (mine, theirs) in [
            (&mut self.name, &r.vm_name),
            (&mut self.tenant_id, &r.project_id),
            (&mut self.project_name, &r.project_name),
            (&mut self.host, &r.host),
            (&mut self.flavor, &r.flavor),
        ] {
            if theirs.is_some() {
                mine.clone_from(theirs);
            }
        }
        self.vcpus = r.vcpus.or(self.vcpus);
        self.memory_mb = r.memory_mb.or(self.memory_mb);
        self.hours += hours;
        self.vcpu_hours += f64::from(r.vcpus.unwrap_or(0)) * hours;
        self.memory_mb_hours += r.memory_mb.unwrap_or(0) as f64 * hours;
        self.joules += r.joules;
        for (day, joules) in by_day(r.start_ms, r.end_ms, r.joules) {
            *self.daily_joules.entry(day).or_default() += joules;
        }
        if let Some(g) = r.cfp_g {
            *self.carbon_g.get_or_insert(0.0) += g;
        }
        self.known.operational.add(r.cfp_g);
        self.known.embodied.add(r.embodied_g);
        self.known.gpu.add(r.gpu_j);
        self.estimated |= r.quality.kind == crate::runtime::Quality::Estimated;
        self.last_end_ms = r.end_ms;
        (self.state, self.ended_ms) = match r.status {
            Status::Completed => {
                // It stopped inside this window: seen wall_s of it, from its
                // start (or from when it started, where that was this window).
                let from = if first { self.started_ms } else { r.start_ms };
                ("stopped", Some(from + (r.wall_s * 1000.0) as i64))
            }
            _ => ("active", None),
        };
    }
}

/// The sums of a group of VMs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// VMs.
    pub vms: usize,
    /// vCPU-hours.
    pub vcpu_hours: f64,
    /// MB-hours.
    pub memory_mb_hours: f64,
    /// Disk GB-hours of the VMs whose disk size is known.
    pub local_gb_hours: Option<f64>,
    /// Hours.
    pub hours: f64,
    /// Joules.
    pub joules: f64,
    /// gCO2e, where any window had an intensity.
    pub carbon_g: Option<f64>,
    /// Its parts known only where every VM's every record has them.
    pub known: KnownParts,
    /// Joules per UTC day, keyed by the day's start (ms).
    pub daily_joules: BTreeMap<i64, f64>,
}

impl Totals {
    fn add(&mut self, vm: &VmUsage) {
        self.vms += 1;
        self.vcpu_hours += vm.vcpu_hours;
        self.memory_mb_hours += vm.memory_mb_hours;
        if let Some(h) = vm.local_gb_hours {
            *self.local_gb_hours.get_or_insert(0.0) += h;
        }
        self.hours += vm.hours;
        self.joules += vm.joules;
        if let Some(g) = vm.carbon_g {
            *self.carbon_g.get_or_insert(0.0) += g;
        }
        self.known.add(&vm.known);
        for (&day, &joules) in &vm.daily_joules {
            *self.daily_joules.entry(day).or_default() += joules;
        }
    }

    /// Energy, kWh.
    pub fn kwh(&self) -> f64 {
        self.joules / 3.6e6
    }
}

/// One row of a report: a project, VM, host or flavor, and its VMs.
#[derive(Clone, Debug)]
pub struct Group {
    /// Project id, VM uuid, host key or flavor (`""` where unknown).
    pub key: String,
    /// A project's name (where any of its VMs knows it), a VM's name.
    pub label: Option<String>,
    /// Its VMs, by uuid.
    pub vms: Vec<VmUsage>,
    /// Their sums.
    pub totals: Totals,
}

/// A whole report.
#[derive(Clone, Debug)]
pub struct Report {
    /// The period.
    pub period: Window,
    /// What the rows are.
    pub by: By,
    /// The rows, by key.
    pub groups: Vec<Group>,
    /// Everything.
    pub totals: Totals,
    /// The hosts' metered energy over the period, joules (None: no model
    /// read a host meter).
    pub host_joules: Option<f64>,
}

impl Report {
    /// A group's share of the hosts' metered energy.
    pub fn share(&self, totals: &Totals) -> Option<f64> {
        self.host_joules
            .filter(|h| *h > 0.0)
            .map(|h| totals.joules / h)
    }
}

/// Adds up records, window after window, into a [`Report`].
#[derive(Debug, Default)]
pub struct Aggregator {
    vms: HashMap<String, VmUsage>,
    host_joules: Option<f64>,
}

impl Aggregator {
    /// Adds one window's records (in window order).
    pub fn records(&mut self, records: &[EnergyRecord]) {
        for r in records {
            self.vms.entry(r.vm_uuid.clone()).or_default().add(r);
        }
    }

    /// Adds a window's host energy (the model's host meter).
    pub fn host_energy(&mut self, joules: f64) {
        *self.host_joules.get_or_insert(0.0) += joules;
    }

    /// Takes each VM's usage from the cloud's API, as nova's
    /// os-simple-tenant-usage counts it: hours from launched/terminated
    /// within `period`, vCPU-, memory- and disk-hours from its (current)
    /// flavor, every VM that lived in the period included (one without
    /// energy with 0 J) but those never launched, as nova leaves them out;
    /// energy and carbon stay the records'. Nova sets `launched_at` again
    /// at a resize (and rebuild, unshelve), so a resized VM counts from then,
    /// as in nova's own report.
    pub fn lifetimes(&mut self, cloud: &CloudInventory, period: Window) {
        for vm in cloud.vms.values().filter(|vm| vm.launched_ms.is_some()) {
            let usage = self.vms.entry(vm.uuid.clone()).or_default();
            let hours = crate::energy::status::lifetime_s(vm.launched_ms, vm.terminated_ms, period)
                / 3600.0;
            let o = &vm.owner;
            usage.instance_id.clone_from(&vm.uuid);
            for (mine, api) in [
                (&mut usage.name, &o.name),
                (&mut usage.tenant_id, &o.project_id),
                (&mut usage.project_name, &o.project_name),
                (&mut usage.host, &vm.host),
                (&mut usage.flavor, &o.flavor),
            ] {
                if api.is_some() {
                    mine.clone_from(api);
                }
            }
            usage.vcpus = vm.vcpus.or(usage.vcpus);
            usage.memory_mb = vm.memory_mb.or(usage.memory_mb);
            usage.hours = hours;
            usage.vcpu_hours = f64::from(vm.vcpus.unwrap_or(0)) * hours;
            usage.memory_mb_hours = vm.memory_mb.unwrap_or(0) as f64 * hours;
            usage.api_disk_gb = vm.disk_gb.map(|gb| gb as f64);
            usage.started_ms = vm
                .launched_ms
                .unwrap_or(period.start_ms)
                .max(period.start_ms);
            usage.ended_ms = vm.terminated_ms.filter(|&t| t <= period.end_ms);
            usage.state = if vm.terminated_ms.is_some() {
                "terminated"
            } else {
                "active"
            };
            usage.last_end_ms = period.end_ms;
        }
    }

    /// The report, rows by `by`; `disks` is each VM's disk size in bytes
    /// (by uuid), where known.
    pub fn finish(self, period: Window, by: By, disks: &HashMap<String, f64>) -> Report {
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let mut totals = Totals::default();
        let mut vms: Vec<VmUsage> = self.vms.into_values().collect();
        vms.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        for mut vm in vms {
            // Running at the end of a window, and in no later one: it stopped
            // at that window's end (its series ended with the window).
            if vm.ended_ms.is_none() && vm.last_end_ms < period.end_ms {
                (vm.state, vm.ended_ms) = ("stopped", Some(vm.last_end_ms));
            }
            vm.local_gb = vm
                .api_disk_gb
                .or_else(|| disks.get(&vm.instance_id).map(|bytes| bytes / GIB));
            vm.local_gb_hours = vm.local_gb.map(|gb| gb * vm.hours);
            totals.add(&vm);
            let (key, label) = match by {
                By::Project => (vm.tenant_id.clone(), vm.project_name.clone()),
                By::Vm => (Some(vm.instance_id.clone()), vm.name.clone()),
                By::Host => (vm.host.clone(), None),
                By::Flavor => (vm.flavor.clone(), None),
            };
            let key = key.unwrap_or_default();
            let group = groups.entry(key.clone()).or_insert_with(|| Group {
                key,
                label: None,
                vms: Vec::new(),
                totals: Totals::default(),
            });
            if group.label.is_none() {
                group.label = label;
            }
            group.totals.add(&vm);
            group.vms.push(vm);
        }
        Report {
            period,
            by,
            groups: groups.into_values().collect(),
            totals,
            host_joules: self.host_joules,
        }
    }
}

/// Bytes in a GB as nova counts disks (GiB).
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Milliseconds in a (UTC) day.
const DAY_MS: i64 = 86_400_000;

/// The start (ms) of the UTC day `ms` falls in.
fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

/// `joules` of a record whose window is `[start_ms, end_ms)`, per UTC day
/// (keyed by the day's start, ms). A record's energy is known only for its
/// whole window, so a window across midnight is split between its days in
/// proportion to the time it spends in each, as if its power were even.
fn by_day(start_ms: i64, end_ms: i64, joules: f64) -> Vec<(i64, f64)> {
    let first = day_of(start_ms);
    if end_ms <= start_ms {
        return vec![(first, joules)];
    }
    let span = (end_ms - start_ms) as f64;
    (0..)
        .map(|i| first + i * DAY_MS)
        .take_while(|&day| day < end_ms)
        .map(|day| {
            let overlap = end_ms.min(day + DAY_MS) - start_ms.max(day);
            (day, joules * overlap as f64 / span)
        })
        .collect()
}

/// `2025-06-01T00:00:00Z`.
fn time(ms: i64) -> String {
    format_ms(ms).replace(".000Z", "Z")
}

/// The last whole calendar month (UTC) before `now_ms`.
pub fn last_month(now_ms: i64) -> Window {
    use chrono::{Datelike as _, TimeZone as _, Utc};
    let now = Utc
        .timestamp_millis_opt(now_ms)
        .single()
        .unwrap_or_else(Utc::now);
    let (year, month) = (now.year(), now.month());
    let (prev_year, prev_month) = if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    };
    let at = |y: i32, m: u32| {
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .map_or(0, |t| t.timestamp_millis())
    };
    Window {
        start_ms: at(prev_year, prev_month),
        end_ms: at(year, month),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn record(
        uuid: &str,
        project: &str,
        start_ms: i64,
        joules: f64,
        status: Status,
    ) -> EnergyRecord {
        EnergyRecord {
            id: format!("{uuid}-{start_ms}"),
            site: "S".into(),
            cloud_type: "OpenStack".into(),
            compute_service: "nova".into(),
            vm_uuid: uuid.into(),
            vm_name: None,
            project_id: Some(project.into()),
            project_name: (project == "p1").then(|| "astro".to_owned()),
            user_id: None,
            user_name: None,
            user_dn: None,
            fqan: None,
            host: Some("cmp-01".into()),
            flavor: None,
            start_ms,
            end_ms: start_ms + 3_600_000,
            joules,
            wall_s: 3600.0,
            cpu_s: None,
            vcpus: Some(2),
            memory_mb: Some(1024),
            status,
            quality: crate::runtime::RecordQuality {
                kind: crate::runtime::Quality::Measured,
                meters: Vec::new(),
                covered_s: None,
            },
            pue: None,
            ci_g: Some(100.0),
            cfp_g: Some(joules / 3.6e6 * 100.0),
            ci_covered_s: None,
            model: "m".into(),
            model_version: "1".into(),
            gpu_j: None,
            embodied_g: None,
            embodied_source: None,
        }
    }

    #[test]
    fn projects_add_up_their_vms_and_their_share_of_the_hosts_energy() {
        let h = 3_600_000;
        let mut agg = Aggregator::default();
        let embodied = |mut r: EnergyRecord, g: Option<f64>| {
            r.embodied_g = g;
            r
        };
        agg.records(&[
            embodied(record("a", "p1", 0, 3.6e6, Status::Running), Some(1.0)),
            record("b", "p2", 0, 1.8e6, Status::Running),
        ]);
        agg.host_energy(7.2e6);
        agg.records(&[embodied(
            record("a", "p1", h, 3.6e6, Status::Completed),
            Some(1.5),
        )]);
        agg.host_energy(7.2e6);
        let disks = HashMap::from([("a".to_owned(), 20.0 * GIB)]);
        let report = agg.finish(
            Window {
                start_ms: 0,
                end_ms: 3 * h,
            },
            By::Project,
            &disks,
        );
        assert_eq!(report.groups.len(), 2);
        let p1 = &report.groups[0];
        assert_eq!(
            (p1.key.as_str(), p1.label.as_deref()),
            ("p1", Some("astro"))
        );
        assert_eq!(p1.totals.kwh(), 2.0);
        assert_eq!(p1.totals.hours, 2.0);
        assert_eq!(p1.totals.vcpu_hours, 4.0);
        assert_eq!(p1.totals.carbon_g, Some(200.0));
        assert_eq!(
            p1.totals.known.embodied_g(),
            Some(2.5),
            "every record of p1 has it"
        );
        assert_eq!(p1.totals.known.total_g(), Some(202.5));
        assert_eq!(
            report.groups[1].totals.known.embodied_g(),
            None,
            "b's first record lacks it"
        );
        assert_eq!(report.groups[1].totals.known.total_g(), None);
        assert_eq!(report.totals.known.embodied_g(), None);
        assert_eq!(p1.totals.local_gb_hours, Some(40.0));
        assert_eq!(
            report.groups[1].totals.local_gb_hours, None,
            "b's disk is not known"
        );
        assert_eq!(report.share(&p1.totals), Some(0.5));
        assert_eq!(report.share(&report.totals), Some(9.0e6 / 1.44e7));
        // a stopped in its second window; b was not seen after the first.
        assert_eq!(p1.vms[0].state, "stopped");
        assert_eq!(p1.vms[0].ended_ms, Some(2 * h));
        let b = &report.groups[1].vms[0];
        assert_eq!((b.state, b.ended_ms), ("stopped", Some(h)));
    }

    #[test]
    fn energy_per_day_splits_a_window_across_midnight_by_time() {
        let h = 3_600_000;
        let mut agg = Aggregator::default();
        // 23:00..01:00 (a two-hour window), then 01:00..02:00 of the second day.
        let mut across = record("a", "p1", DAY_MS - h, 4.0e6, Status::Running);
        across.end_ms = DAY_MS + h;
        agg.records(&[
            across,
            record("b", "p2", DAY_MS - h, 1.0e6, Status::Running),
        ]);
        agg.records(&[record("a", "p1", DAY_MS + h, 3.0e6, Status::Running)]);
        let report = agg.finish(
            Window {
                start_ms: 0,
                end_ms: 2 * DAY_MS,
            },
            By::Project,
            &HashMap::new(),
        );
        let p1 = &report.groups[0].totals;
        assert_eq!(
            p1.daily_joules,
            BTreeMap::from([(0, 2.0e6), (DAY_MS, 2.0e6 + 3.0e6)])
        );
        assert_eq!(p1.daily_joules.values().sum::<f64>(), p1.joules);
        assert_eq!(
            report.totals.daily_joules,
            BTreeMap::from([(0, 3.0e6), (DAY_MS, 5.0e6)])
        );
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(-1), -DAY_MS);
    }

    #[test]
    fn last_month_is_the_whole_calendar_month_before() {
        let w = last_month(crate::window::parse_time("2026-01-15T10:00:00Z").unwrap());
        assert_eq!(time(w.start_ms), "2025-12-01T00:00:00Z");
        assert_eq!(time(w.end_ms), "2026-01-01T00:00:00Z");
        let w = last_month(crate::window::parse_time("2026-03-01T00:00:00Z").unwrap());
        assert_eq!(time(w.start_ms), "2026-02-01T00:00:00Z");
        assert_eq!(time(w.end_ms), "2026-03-01T00:00:00Z");
    }
}
