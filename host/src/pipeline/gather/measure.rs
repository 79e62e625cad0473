//! Every measurement of a window, made: the I/O of gathering (Prometheus
//! and libvirt), nothing else. What the answers mean for the model's input
//! is [`super::assemble`]'s.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::TryFutureExt;

use super::plan::{GatherPlan, HostKey, IdleMeter, MeterKind, RaplCounters, RaplZone, Slot};
use super::{KeyedResult, Readings, SeriesReading};
use crate::energy::counter::{Sample, c1_across_boots};
use crate::energy::{idle, rapl as zones};
use crate::pipeline::PipelineError;
use crate::runtime::{KeyKind, TemplateSpec, Unit, to_base};
use crate::sources::libvirt::{Domain, Libvirt, LibvirtError};
use crate::sources::prometheus::{
    Client, PrometheusError, Series, SeriesIncrease, VmVars, counter_samples, gauge_samples,
    matching_any, measure_counter, measure_gauge, measure_template, measure_vm_gauge, vm_metadata,
    vm_sizes,
};
use crate::window::Window;

/// Makes every per-window measurement of `plan` and reads the inventory,
/// all at once: the queries overlap in Prometheus.
pub async fn window(plan: &GatherPlan<'_>, window: Window) -> Result<Readings, PipelineError> {
    let (client, inventory) = (plan.client, &plan.policy.inventory);
    let host_key = &plan.resolved.host_key;
    let slots = plan
        .resolved
        .slots
        .iter()
        .map(|slot| measure(client, slot, window, host_key));
    let cloud = async {
        match &plan.cloud {
            Some(api) => Ok(Some(api.inventory(window).await?)),
            None => Ok::<_, PipelineError>(None),
        }
    };
    let gpus = async {
        match &plan.resolved.gpu {
            Some(gpu) => super::gpus::measure(client, gpu, host_key, window).await,
            None => Ok((Vec::new(), 0)),
        }
    };
    let ((results, metadata, sizes, domains), cloud, (gpus, gpu_raw)) = futures::future::try_join3(
        futures::future::try_join4(
            futures::future::try_join_all(slots),
            vm_metadata(
                client,
                &inventory.meta_metric,
                &inventory.meta_uuid_label,
                window,
            )
            .map_err(PipelineError::from),
            vm_sizes(
                client,
                &inventory.vcpus_metric,
                &inventory.memory_metric,
                &inventory.meta_uuid_label,
                window,
            )
            .map_err(PipelineError::from),
            libvirt_domains(inventory.libvirt_uri.as_deref()),
        ),
        cloud,
        gpus,
    )
    .await?;
    let raw_fetched = results.iter().map(|(_, raw)| raw).sum::<usize>() + gpu_raw;
    let mut keyed: Vec<KeyedResult> = results.into_iter().map(|(r, _)| r).collect();
    let implicit_cpu = if plan.resolved.implicit_cpu {
        keyed.pop()
    } else {
        None
    };
    Ok(Readings {
        cloud,
        keyed,
        implicit_cpu,
        metadata,
        sizes,
        domains,
        raw_fetched,
        gpus,
    })
}

/// The per-VM templates of `plan`, one query per VM of `vars`.
pub async fn per_vm_templates(
    plan: &GatherPlan<'_>,
    vars: &[VmVars],
    window: Window,
) -> Result<Vec<KeyedResult>, PipelineError> {
    let client = plan.client;
    let mut templated = Vec::with_capacity(plan.resolved.per_vm_templates.len());
    for (spec, template) in &plan.resolved.per_vm_templates {
        let readings = measure_template(
            client,
            template,
            "uuid",
            vars,
            window,
            client.config.concurrency,
        )
        .await?;
        if readings.empty > 0 {
            tracing::warn!(
                measurement = %spec.name,
                "{} of {} VMs have no value from the template in {window}: they get no reading (never 0)",
                readings.empty,
                readings.queries
            );
        }
        templated.push(template_result(spec, "uuid", readings.values, window));
    }
    Ok(templated)
}

/// Makes one slot's measurement; also returns how many series needed raw samples.
async fn measure(
    client: &Client,
    slot: &Slot<'_>,
    window: Window,
    host_key: &HostKey,
) -> Result<(KeyedResult, usize), PipelineError> {
    match slot {
        Slot::Idle(meter) => Ok((measure_idle(client, meter, window, host_key).await?, 0)),
        Slot::Rapl(rapl) => {
            let zones = rapl
                .zones
                .iter()
                .map(|z| measure_counter(client, &z.selector, rapl.host_label, window, z.wrap_j));
            let (fetched, boots) = futures::future::try_join(
                futures::future::try_join_all(zones),
                boots(client, rapl, window),
            )
            .await?;
            let mut series = Vec::new();
            let mut raw = 0;
            for (mut readings, zone) in fetched.into_iter().zip(&rapl.zones) {
                raw += readings.raw_fetched;
                if zone.wrap_j.is_some() && !boots.is_empty() {
                    raw += across_boots(client, rapl, zone, &boots, window, &mut readings.series)
                        .await?;
                }
                series.extend(increases(readings.series, Unit::Joules).map(|s| {
                    let host = s.labels.get(rapl.host_label).map(|h| host_key.normalise(h));
                    (zone.kind.as_str(), host.unwrap_or_default(), s)
                }));
            }
            let series = host_energy_zones(rapl.by_default, series);
            let result = KeyedResult {
                name: rapl.name.to_owned(),
                key: KeyKind::Host,
                key_label: rapl.host_label.to_owned(),
                series,
                stopped: Vec::new(),
            };
            Ok((result, raw))
        }
        Slot::Template(spec, template) => {
            let key_label = spec.key_label.as_deref().unwrap_or("uuid");
            let readings = measure_template(client, template, key_label, &[], window, 1).await?;
            Ok((template_result(spec, key_label, readings.values, window), 0))
        }
        Slot::Counter(c) => {
            let readings =
                measure_counter(client, &c.selector, &c.key_label, window, c.wrap_range).await?;
            let result = KeyedResult {
                name: c.name.clone(),
                key: c.key,
                key_label: c.key_label.clone(),
                series: increases(readings.series, c.unit).collect(),
                stopped: readings.stopped,
            };
            Ok((result, readings.raw_fetched))
        }
        Slot::Gauge(g) => {
            let max_gap_ms = crate::energy::max_gap_ms(g.max_gap_s);
            // One series per host: all its samples. Thousands of VMs: edges only.
            let (integrals, raw) = if g.key == KeyKind::Host {
                let integrals = measure_gauge(client, &g.selector, window, max_gap_ms).await?;
                let raw = integrals.len();
                (integrals, raw)
            } else {
                let r =
                    measure_vm_gauge(client, &g.selector, &g.key_label, window, max_gap_ms).await?;
                (r.series, r.raw_fetched)
            };
            let series: Vec<SeriesReading> = integrals
                .into_iter()
                .map(|s| SeriesReading {
                    labels: s.labels,
                    value: to_base(g.unit, s.integral.value),
                    span_s: s.integral.covered_s,
                    covered_s: s.integral.covered_s,
                    times: None,
                })
                .collect();
            let result = KeyedResult {
                name: g.name.clone(),
                key: g.key,
                key_label: g.key_label.clone(),
                series,
                stopped: Vec::new(),
            };
            Ok((result, raw))
        }
    }
}

/// node_exporter's boot time of each host: a changed value is a reboot.
const BOOT_TIME: &str = "node_boot_time_seconds";

/// The hosts (by `rapl.host_label` value) whose boot time changed in the
/// window or the lookback before it, with the first sample time of each new
/// boot; none when no zone has a wrap range (C1 takes every drop as a reset
/// anyway) or no host rebooted. `docs/ENERGY.md#a-reboot-is-not-a-wrap`.
async fn boots(
    client: &Client,
    rapl: &RaplCounters<'_>,
    window: Window,
) -> Result<HashMap<String, Vec<i64>>, PrometheusError> {
    let mut boots = HashMap::new();
    if rapl.zones.iter().all(|z| z.wrap_j.is_none()) {
        return Ok(boots);
    }
    let range_ms = window.len_ms() + client.config.lookback_secs as i64 * 1000;
    let changed = client
        .query(
            &format!("changes({BOOT_TIME}[{range_ms}ms]) > 0"),
            window.end_ms,
        )
        .await?;
    let hosts: Vec<&str> = changed
        .iter()
        .filter_map(|s| s.labels.get(rapl.host_label))
        .collect();
    if hosts.is_empty() {
        return Ok(boots);
    }
    let selector = matching_any(BOOT_TIME, rapl.host_label, &hosts);
    for series in counter_samples(client, &selector, window).await? {
        let Some(host) = series.labels.get(rapl.host_label) else {
            continue;
        };
        let times: Vec<i64> = series
            .samples
            .windows(2)
            .filter(|pair| pair[1].value != pair[0].value)
            .map(|pair| pair[1].t_ms)
            .collect();
        if !times.is_empty() {
            boots
                .entry(host.to_owned())
                .or_insert_with(Vec::new)
                .extend(times);
        }
    }
    Ok(boots)
}

/// Measures again, from raw samples, the series of `zone` on the hosts that
/// booted (`boots`), so that a drop across a boot counts as a reset, not a
/// wrap; replaces their readings in `series`. Returns the series fetched.
async fn across_boots(
    client: &Client,
    rapl: &RaplCounters<'_>,
    zone: &RaplZone,
    boots: &HashMap<String, Vec<i64>>,
    window: Window,
    series: &mut [SeriesIncrease],
) -> Result<usize, PipelineError> {
    let hosts: Vec<&str> = boots.keys().map(String::as_str).collect();
    let selector = matching_any(&zone.selector, rapl.host_label, &hosts);
    let raw = counter_samples(client, &selector, window).await?;
    for fetched in &raw {
        let Some(host) = fetched.labels.get(rapl.host_label) else {
            continue;
        };
        let Some(reading) = series.iter_mut().find(|s| s.labels == fetched.labels) else {
            continue;
        };
        if let Some(increase) = c1_across_boots(&fetched.samples, window, zone.wrap_j, &boots[host])
        {
            if increase.value != reading.increase.value {
                tracing::warn!(
                    host,
                    zone = zone.kind,
                    %window,
                    "the host rebooted: its RAPL counters' drop is counted as a reset, not a \
                     wrap (the energy between its last sample and the shutdown is lost)"
                );
            }
            reading.increase = increase;
        }
    }
    Ok(raw.len())
}

/// node_exporter's CPU time per core and mode.
const CPU_SECONDS: &str = "node_cpu_seconds_total";

/// Each host's CPU utilisation (0 to 1) per whole UTC minute of `window`
/// from node_exporter's CPU time, by host key: the busy seconds (every mode
/// but idle and iowait, summed over cores) between two minute edges, over
/// 60 s × its cores. A minute in which the sum drops (a reboot) is left out.
async fn utilisation(
    client: &Client,
    key_label: &str,
    window: Window,
    host_key: &HostKey,
) -> Result<HashMap<String, HashMap<i64, f64>>, PrometheusError> {
    let range_ms = window.len_ms() + idle::BUCKET_MS;
    let busy = format!(
        "sum by ({key_label}) ({CPU_SECONDS}{{mode!~\"idle|iowait\"}})[{range_ms}ms:{}ms]",
        idle::BUCKET_MS
    );
    let cores = format!("count by ({key_label}) ({CPU_SECONDS}{{mode=\"idle\"}})");
    let (busy, cores) = futures::future::try_join(
        client.query(&busy, window.end_ms),
        client.query(&cores, window.end_ms),
    )
    .await?;
    let cores: HashMap<String, f64> = cores
        .iter()
        .filter_map(|s| {
            let host = host_key.normalise(s.labels.get(key_label)?);
            Some((host, s.samples.first()?.value))
        })
        .collect();
    let mut hosts = HashMap::new();
    for series in busy {
        let Some(host) = series.labels.get(key_label).map(|h| host_key.normalise(h)) else {
            continue;
        };
        let Some(&n) = cores.get(&host).filter(|n| **n > 0.0) else {
            continue;
        };
        let minutes: HashMap<i64, f64> = series
            .samples
            .windows(2)
            .filter(|p| p[1].t_ms - p[0].t_ms == idle::BUCKET_MS && p[1].value >= p[0].value)
            .map(|p| (p[0].t_ms, (p[1].value - p[0].value) / (60.0 * n)))
            .collect();
        hosts.insert(host, minutes);
    }
    Ok(hosts)
}

/// Idle power per host from its meter's samples. Series are grouped by host
/// key (an exporter may label one host two ways), so a host's idle power is
/// the least minute of all its meters together, not a sum of separate minima.
async fn measure_idle(
    client: &Client,
    meter: &IdleMeter<'_>,
    window: Window,
    host_key: &HostKey,
) -> Result<KeyedResult, PipelineError> {
    // Each series as (RAPL zone kind, host key, (label value, samples in
    // watts or joules)).
    let mut meters = Vec::new();
    let mut add = |series: Vec<Series>, unit: Unit, kind: &str| {
        for s in series {
            let Some(host) = s.labels.get(&meter.key_label) else {
                continue;
            };
            let samples: Vec<Sample> = s
                .samples
                .into_iter()
                .map(|x| Sample {
                    t_ms: x.t_ms,
                    value: to_base(unit, x.value),
                })
                .collect();
            let key = host_key.normalise(host);
            meters.push((kind.to_owned(), key, (host.to_owned(), samples)));
        }
    };
    let mut by_default = false;
    match &meter.kind {
        MeterKind::Gauge {
            selector,
            unit,
            max_gap_ms,
        } => add(
            gauge_samples(client, selector, window, *max_gap_ms).await?,
            *unit,
            "",
        ),
        MeterKind::Counters {
            zones,
            unit,
            by_default: default,
        } => {
            by_default = *default;
            let fetched = futures::future::try_join_all(
                zones
                    .iter()
                    .map(|z| counter_samples(client, &z.selector, window)),
            )
            .await?;
            for (series, zone) in fetched.into_iter().zip(zones) {
                add(series, *unit, &zone.kind);
            }
        }
    }
    // Per host key: a label value naming it, and the samples of each series
    // its energy is made of.
    let mut hosts: BTreeMap<String, (String, Vec<Vec<Sample>>)> = BTreeMap::new();
    let kept = host_energy_zones(
        by_default,
        meters
            .into_iter()
            .map(|(kind, key, labelled)| (kind, key.clone(), (key, labelled)))
            .collect(),
    );
    for (key, (host, samples)) in kept {
        hosts
            .entry(key)
            .or_insert_with(|| (host, Vec::new()))
            .1
            .push(samples);
    }
    let utilisation = if meter.fit {
        utilisation(client, &meter.key_label, window, host_key).await?
    } else {
        HashMap::new()
    };
    let mut unfit: Vec<String> = Vec::new();
    let series = hosts
        .into_iter()
        .filter_map(|(key, (host, meters))| {
            let samples: Vec<&[Sample]> = meters.iter().map(|s| &s[..]).collect();
            let minutes = match &meter.kind {
                MeterKind::Gauge { max_gap_ms, .. } => {
                    idle::gauge_minutes(&samples, window, *max_gap_ms)
                }
                MeterKind::Counters { .. } => idle::counter_minutes(&samples, window),
            };
            let fitted = utilisation
                .get(&key)
                .and_then(|u| idle::fit(&minutes, u))
                .or_else(|| {
                    if meter.fit {
                        unfit.push(key.clone());
                    }
                    None
                });
            let idle = fitted.or_else(|| idle::least(&minutes));
            if idle.is_none() {
                tracing::warn!(
                    measurement = meter.name,
                    host,
                    %window,
                    "no whole minute of the window could be measured: no idle power for this host"
                );
            }
            let idle = idle?;
            Some(SeriesReading {
                labels: [(meter.key_label.as_str(), host)].into_iter().collect(),
                value: idle.watts,
                span_s: idle.measured_s,
                covered_s: idle.measured_s,
                times: None,
            })
        })
        .collect();
    if meter.fit && utilisation.is_empty() && !unfit.is_empty() {
        tracing::warn!(
            measurement = meter.name,
            %window,
            "idle_power = \"fit\" (the default) needs the hosts' CPU utilisation, and \
             Prometheus has no {CPU_SECONDS} series labelled `{}`: each host's least minute is \
             its idle power. Scrape node_exporter's cpu collector on the hosts, or set \
             idle_power = \"auto\" in [model.params]",
            meter.key_label
        );
    } else if let Some(first) = unfit.first() {
        tracing::warn!(
            measurement = meter.name,
            %window,
            "idle_power = \"fit\": {} host(s) (e.g. {first}) have no line of power against CPU \
             utilisation in this window (no {CPU_SECONDS} series, fewer than {} minutes, or a \
             load too steady to fit): their least minute is their idle power",
            unfit.len(),
            idle::FIT_MIN_MINUTES
        );
    }
    Ok(KeyedResult {
        name: meter.name.to_owned(),
        key: KeyKind::Host,
        key_label: meter.key_label.clone(),
        series,
        stopped: Vec::new(),
    })
}

/// Keeps, of the zone series `(kind, host key, series)` of every host, those
/// each host's energy is made of: all where the measurement names its zones,
/// else the default ones ([`zones::counts_by_default`]).
fn host_energy_zones<K: AsRef<str>, T>(by_default: bool, series: Vec<(K, String, T)>) -> Vec<T> {
    let with_package: HashSet<String> = series
        .iter()
        .filter(|(kind, _, _)| kind.as_ref() == "package")
        .map(|(_, host, _)| host.clone())
        .collect();
    series
        .into_iter()
        .filter(|(kind, host, _)| {
            !by_default || zones::counts_by_default(kind.as_ref(), with_package.contains(host))
        })
        .map(|(_, _, s)| s)
        .collect()
}

/// A template's values as a keyed result: the value over the whole window.
/// A query's value carries no span, so its span is the window's length.
fn template_result(
    spec: &TemplateSpec,
    key_label: &str,
    values: Vec<crate::sources::prometheus::template::TemplateValue>,
    window: Window,
) -> KeyedResult {
    let length_s = window.len_ms() as f64 / 1000.0;
    KeyedResult {
        name: spec.name.clone(),
        key: KeyKind::Uuid,
        key_label: key_label.to_owned(),
        series: values
            .into_iter()
            .map(|v| SeriesReading {
                labels: [(key_label, v.key)].into_iter().collect(),
                value: to_base(spec.unit, v.value),
                span_s: length_s,
                covered_s: length_s,
                times: None,
            })
            .collect(),
        stopped: Vec::new(),
    }
}

/// Counter increases as readings in joules (or seconds); a counter's span is its covered time.
fn increases(series: Vec<SeriesIncrease>, unit: Unit) -> impl Iterator<Item = SeriesReading> {
    series.into_iter().map(move |s| SeriesReading {
        labels: s.labels,
        value: to_base(unit, s.increase.value),
        span_s: s.increase.span_s,
        covered_s: s.increase.span_s,
        times: Some((s.increase.first_ms, s.increase.last_ms)),
    })
}

/// Every domain of libvirt at `uri` by uuid (none without a URI), read on a
/// blocking thread: libvirt's calls block.
async fn libvirt_domains(uri: Option<&str>) -> Result<HashMap<String, Domain>, PipelineError> {
    let Some(uri) = uri.map(str::to_owned) else {
        return Ok(HashMap::new());
    };
    let reading = uri.clone();
    let domains = tokio::task::spawn_blocking(move || Libvirt::open(&reading)?.domains())
        .await
        .map_err(|e| LibvirtError::Call {
            uri,
            what: "reading domains".into(),
            message: e.to_string(),
        })??;
    Ok(domains.into_iter().map(|d| (d.uuid.clone(), d)).collect())
}
